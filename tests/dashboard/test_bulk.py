"""Bulk retry, cancel and delete: confirm with the exact count, frozen; run in chunks; report."""

from datetime import timedelta

import pytest
from django.urls import reverse

from jobs.models import AuditEntry, BackgroundTaskRecord, Status

from .conftest import hx

pytestmark = pytest.mark.django_db(transaction=True)


def confirm(client, **data):
    response = client.post(reverse("job_bulk"), data, **hx("bulk-panel"))
    assert response.status_code == 200, response.content
    return response, response.context["selection"]


def test_all_matching_is_counted_frozen_and_excludes_later_arrivals(operator, make_record, redis_conn):
    for _ in range(3):
        make_record("failed")
    make_record("completed")
    response, selection = confirm(operator, action="retry", scope="all", filter="state=failed")
    assert selection.count == 3 and b"Retry 3 jobs" in response.content
    late = make_record("failed", age=timedelta(0))  # arrives after the confirmation was shown
    done = operator.post(reverse("job_bulk"), {"token": selection.token}, **hx("bulk-panel"))
    assert done.status_code == 200 and b"3 of 3 jobs retried" in done.content
    assert "jobs-changed" in done["HX-Trigger"]
    assert BackgroundTaskRecord.objects.filter(status=Status.PENDING).count() == 3
    late.refresh_from_db()
    assert late.status == Status.FAILED
    assert AuditEntry.objects.filter(action="retry").count() == 3
    assert AuditEntry.objects.get(action="bulk-retry").detail["succeeded"] == 3


def test_selected_rows_with_skips_and_reasons_without_htmx(operator, make_record, redis_conn):
    failed, completed = make_record("failed"), make_record("completed")
    page = operator.post(reverse("job_bulk"), {"action": "retry", "ids": [failed.pk, completed.pk],
                                               "next": "/jobs/"})
    assert page.status_code == 200 and b"<html" in page.content and b"Retry 2 jobs" in page.content
    token = page.context["selection"].token
    response = operator.post(reverse("job_bulk"), {"token": token, "next": "/jobs/"}, follow=True)
    assert response.redirect_chain[-1][0] == "/jobs/"
    text = response.content.decode()
    assert "1 of 2 jobs retried" in text and "Skipped 1: 1 × only failed or cancelled jobs can be retried" in text


def test_work_runs_in_chunks_up_to_the_cap(operator, make_record, redis_conn, settings):
    settings.DASHBOARD_BULK_CHUNK, settings.DASHBOARD_BULK_MAX = 2, 5
    for m in range(7):
        make_record("completed", age=timedelta(minutes=m))
    response, selection = confirm(operator, action="delete", scope="all", filter="state=completed")
    assert selection.count == 7 and b"Only the newest 5" in response.content
    done = operator.post(reverse("job_bulk"), {"token": selection.token}, **hx("bulk-panel"))
    assert b"5 of 5 jobs deleted" in done.content
    assert BackgroundTaskRecord.objects.count() == 2  # the two oldest remain


def test_bulk_cancel_pending_jobs(operator, redis_conn):
    from jobs import api, demo

    records = [api.enqueue(demo.add, i, i) for i in range(3)]
    _, selection = confirm(operator, action="cancel", scope="all", filter="state=pending")
    assert selection.count == 3
    done = operator.post(reverse("job_bulk"), {"token": selection.token}, **hx("bulk-panel"))
    assert b"3 of 3 jobs cancelled" in done.content
    assert {r.status for r in BackgroundTaskRecord.objects.filter(pk__in=[r.pk for r in records])} == {"cancelled"}


def test_bad_selections_and_forged_tokens_are_400(operator, readonly_user, make_record, client):
    record = make_record("failed")
    assert operator.post(reverse("job_bulk"), {"action": "retry"}, **hx("bulk-panel")).status_code == 400
    assert operator.post(reverse("job_bulk"), {"action": "explode", "ids": [record.pk]}).status_code == 400
    assert operator.post(reverse("job_bulk"), {"action": "retry", "ids": ["nope"]}).status_code == 400
    assert operator.post(reverse("job_bulk"), {"action": "retry", "scope": "all",
                                               "filter": "state=exploded"}).status_code == 400
    forged = operator.post(reverse("job_bulk"), {"token": "forged"}, **hx("bulk-panel"))
    assert forged.status_code == 400 and b"not valid or has expired" in forged.content
    record.refresh_from_db()
    assert record.status == Status.FAILED


def test_a_token_is_bound_to_its_user(operator, make_record, django_user_model, client, redis_conn):
    from django.contrib.auth.models import Permission

    record = make_record("failed")
    _, selection = confirm(operator, action="retry", ids=[record.pk])
    other = django_user_model.objects.create_user("other", password="pw", is_staff=True)
    other.user_permissions.add(*Permission.objects.filter(codename__in=["view_backgroundtaskrecord",
                                                                         "operate_backgroundtaskrecord"]))
    client.force_login(other)
    assert client.post(reverse("job_bulk"), {"token": selection.token}).status_code == 400


def test_retry_this_group_from_the_failures_page(operator, make_record, redis_conn):
    make_record("failed"), make_record("failed")
    make_record("failed", func_path="jobs.demo.flaky", error_type="ConnectionError")
    body = operator.get(reverse("failure_list")).content.decode()
    assert body.count("Retry this group") == 2
    _, selection = confirm(operator, action="retry", scope="all",
                           filter="state=failed&function=jobs.demo.add&error_type=ValueError")
    assert selection.count == 2
