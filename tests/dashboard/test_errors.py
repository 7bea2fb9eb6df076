"""Bad input answers 4xx with a clear message, never 500, on PostgreSQL and SQLite alike."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from django.urls import reverse

from jobs.models import BackgroundTaskRecord, Status

from .conftest import hx

pytestmark = pytest.mark.django_db

UTC = UTC


def test_an_offset_beyond_postgresqls_range_is_applied_not_refused(reader, make_record):
    # 2024-01-01T00:00+20:00 is 2023-12-31T04:00 UTC
    before = make_record("completed", enqueued_at=datetime(2023, 12, 31, 3, 0, tzinfo=UTC))
    after = make_record("completed", enqueued_at=datetime(2023, 12, 31, 5, 0, tzinfo=UTC))
    for extra in ({}, hx("job-table")):
        response = reader.get(reverse("job_list"), {"since": "2024-01-01T00:00:00+20:00"}, **extra)
        assert response.status_code == 200
        assert [r.pk for r in response.context["page"].rows] == [after.pk]
    assert before.pk  # listed above only if the offset had been dropped


@pytest.mark.parametrize("value", ["9999-12-31T23:00:00-15:00", "0001-01-01T00:00:00+20:00"])
def test_a_time_past_the_calendar_is_a_clear_400(reader, value):
    response = reader.get(reverse("job_list"), {"until": value})
    assert response.status_code == 400 and b"between the years 1 and 9999" in response.content


def test_the_bulk_forms_sealed_filter_with_a_far_offset(operator, make_record, redis_conn):
    make_record("failed", enqueued_at=datetime(2023, 12, 31, 5, 0, tzinfo=UTC))
    make_record("failed", enqueued_at=datetime(2023, 12, 31, 3, 0, tzinfo=UTC))
    step1 = operator.post(reverse("job_bulk"), {"action": "retry", "scope": "all",
                                                "filter": "state=failed&since=2024-01-01T00:00:00%2B20:00"},
                          **hx("bulk-panel"))
    assert step1.status_code == 200 and step1.context["selection"].count == 1
    step2 = operator.post(reverse("job_bulk"), {"token": step1.context["selection"].token}, **hx("bulk-panel"))
    assert step2.status_code == 200 and b"1 of 1 jobs retried" in step2.content
    bad = operator.post(reverse("job_bulk"), {"action": "retry", "scope": "all",
                                              "filter": "until=9999-12-31T23:00:00-15:00"}, **hx("bulk-panel"))
    assert bad.status_code == 400 and b"filter of this selection is not valid" in bad.content


def test_confirming_a_selection_whose_queue_was_removed_is_a_clear_400(operator, make_record, redis_conn,
                                                                        settings):
    record = make_record("failed", queue="low")
    step1 = operator.post(reverse("job_bulk"), {"action": "retry", "scope": "all", "filter": "queue=low"},
                          **hx("bulk-panel"))
    token = step1.context["selection"].token
    settings.RQ_QUEUES = {name: config for name, config in settings.RQ_QUEUES.items() if name != "low"}
    for extra in (hx("bulk-panel"), {}):
        response = operator.post(reverse("job_bulk"), {"token": token, "next": "/jobs/"}, **extra)
        assert response.status_code == 400
        assert b"The filter of this selection is no longer valid (queue:" in response.content
    record.refresh_from_db()
    assert record.status == Status.FAILED


@pytest.mark.parametrize("query", ["enqueued_at__year=9999", "enqueued_at__year=9999&enqueued_at__month=12",
                                   "status__exact=%00", "queue_name__exact=%00", "q=%00"])
def test_the_admin_changelist_answers_a_bad_lookup_without_a_500(admin_client, make_record, query):
    make_record("completed")
    url = reverse("admin:jobs_backgroundtaskrecord_changelist")
    response = admin_client.get(f"{url}?{query}")
    assert response.status_code == 302 and response["Location"].endswith("?e=1")
    assert admin_client.get(response["Location"]).status_code == 200
    assert BackgroundTaskRecord.objects.count() == 1


def test_actions_on_a_job_of_a_removed_queue_answer_4xx_or_work(operator, make_record, redis_conn, settings):
    failed = make_record("failed", queue="low")
    pending = make_record("pending", queue="low")
    settings.RQ_QUEUES = {name: config for name, config in settings.RQ_QUEUES.items() if name != "low"}
    for extra in ({}, hx("job-live")):
        response = operator.post(reverse("job_retry", args=[failed.pk]), **extra)
        assert response.status_code == 409
        assert "no longer configured" in response.content.decode() or "no longer configured" in response.get(
            "HX-Trigger", "")
    failed.refresh_from_db()
    assert failed.status == Status.FAILED  # refused before the row changed: never stuck pending
    cancelled = operator.post(reverse("job_cancel", args=[pending.pk]), {"confirmed": "1"})
    assert cancelled.status_code == 302
    assert BackgroundTaskRecord.objects.get(pk=pending.pk).status == Status.CANCELLED
    deleted = operator.post(reverse("job_delete", args=[failed.pk]), {"confirmed": "1"})
    assert deleted.status_code == 302 and not BackgroundTaskRecord.objects.filter(pk=failed.pk).exists()
