"""Scheduled jobs: an operator runs one now or moves it to another time; audited, permission-checked, 4xx on bad input."""

import calendar
import re
from datetime import timedelta
from html import unescape

import pytest
from django.urls import reverse
from django.utils import timezone
from rq.registry import ScheduledJobRegistry

from jobs import api, demo
from jobs.connection import get_queue
from jobs.models import AuditEntry, BackgroundTaskRecord, Status

from .conftest import _user, hx

pytestmark = pytest.mark.django_db(transaction=True)


def registry():
    return ScheduledJobRegistry(queue=get_queue("default"))


def in_an_hour(redis_conn) -> BackgroundTaskRecord:
    record = api.enqueue(demo.add, 1, 2, delay=3600)
    assert str(record.pk) in registry().get_job_ids()
    return record


def local_input(at) -> str:
    return timezone.localtime(at).strftime("%Y-%m-%dT%H:%M")


def form_action(page: str, verb: str) -> str:
    """The action URL of the page's form for `verb` (what a click posts to)."""
    match = re.search(rf'<form method="post" action="([^"]*/{verb}/)"', page)
    assert match, f"no {verb} form on the page"
    return unescape(match.group(1))


# --- jobs.api ----------------------------------------------------------------------

def test_run_now_queues_the_job_at_once_and_the_worker_runs_it(redis_conn, operator_user, drain):
    record = in_an_hour(redis_conn)
    assert api.run_now(record, operator_user) == "queued to run now"
    assert str(record.pk) not in registry().get_job_ids()
    assert get_queue("default").get_job_ids() == [str(record.pk)]
    record.refresh_from_db()
    assert record.status == Status.PENDING and record.scheduled_for is None
    entry = AuditEntry.objects.get(action="run-now", record_id=record.pk)
    assert entry.username == "operator" and entry.detail["to"] == "now"
    drain()
    record.refresh_from_db()
    assert record.status == Status.COMPLETED and record.result == 3


def test_reschedule_moves_the_one_copy_in_redis(redis_conn, operator_user):
    record = in_an_hour(redis_conn)
    later = timezone.now() + timedelta(hours=5)
    api.reschedule(record, operator_user, at=later)
    assert registry().get_job_ids() == [str(record.pk)]  # moved, not copied
    assert registry().connection.zscore(registry().key, str(record.pk)) == calendar.timegm(later.utctimetuple())
    assert get_queue("default").count == 0
    record.refresh_from_db()
    assert abs((record.scheduled_for - later).total_seconds()) < 1
    assert AuditEntry.objects.filter(action="reschedule", record_id=record.pk).count() == 1


def test_a_retry_waiting_for_its_backoff_can_be_run_now(redis_conn, operator_user, drain):
    record = api.enqueue(demo.fail, "x", retries=1, retry_intervals=[3600])
    drain()
    record.refresh_from_db()
    assert record.status == Status.PENDING and record.scheduled_for is not None
    api.run_now(record, operator_user)
    drain()
    record.refresh_from_db()
    assert record.status == Status.FAILED and record.attempts == 2


@pytest.mark.parametrize("when, words", [(timedelta(minutes=-5), "in the past"), (timedelta(0), "in the past")])
def test_a_time_in_the_past_is_refused_and_nothing_changes(redis_conn, operator_user, when, words):
    record = in_an_hour(redis_conn)
    before = registry().connection.zscore(registry().key, str(record.pk))
    with pytest.raises(ValueError, match=words):
        api.reschedule(record, operator_user, at=timezone.now() + when)
    assert registry().connection.zscore(registry().key, str(record.pk)) == before
    assert not AuditEntry.objects.filter(record_id=record.pk).exists()


def test_a_job_no_longer_scheduled_is_refused(redis_conn, operator_user, drain):
    now_job = api.enqueue(demo.add, 1, 2)
    with pytest.raises(api.ActionNotAllowed, match="no longer scheduled"):
        api.run_now(now_job, operator_user)
    drain()
    now_job.refresh_from_db()
    with pytest.raises(api.ActionNotAllowed, match="no longer scheduled"):
        api.reschedule(now_job, operator_user, at=timezone.now() + timedelta(hours=1))
    assert not AuditEntry.objects.filter(record_id=now_job.pk).exists()


def test_a_job_already_due_in_redis_is_left_to_the_scheduler(redis_conn, operator_user):
    """Its row still says later, but Redis has it due: a scheduler may be queueing it now; never twice."""
    record = in_an_hour(redis_conn)
    redis_conn.zadd(registry().key, {str(record.pk): calendar.timegm(timezone.now().utctimetuple()) - 5})
    with pytest.raises(api.ActionNotAllowed):
        api.run_now(record, operator_user)
    record.refresh_from_db()
    assert record.scheduled_for is not None  # rolled back with the refusal
    assert get_queue("default").count == 0


def test_each_action_needs_its_permission(redis_conn, django_user_model):
    record = in_an_hour(redis_conn)
    reader = _user(django_user_model, "reader", "view_backgroundtaskrecord")
    with pytest.raises(api.NotPermitted):
        api.run_now(record, reader)
    with pytest.raises(api.NotPermitted):
        api.reschedule(record, reader, at=timezone.now() + timedelta(hours=2))
    retry_only = _user(django_user_model, "retrier", "view_backgroundtaskrecord", "retry_job")
    with pytest.raises(api.NotPermitted, match="schedule_job"):
        api.run_now(record, retry_only)
    scheduler = _user(django_user_model, "scheduler", "view_backgroundtaskrecord", "schedule_job")
    api.reschedule(record, scheduler, at=timezone.now() + timedelta(hours=2))


# --- the job page -----------------------------------------------------------------------

def test_the_job_page_offers_run_now_and_move_and_both_work(operator, redis_conn):
    record = in_an_hour(redis_conn)
    page = operator.get(reverse("job_detail", args=[record.pk])).content.decode()
    assert 'type="datetime-local" name="at"' in page and "Run now" in page and "Move to" in page
    later = timezone.now() + timedelta(days=1)
    response = operator.post(form_action(page, "reschedule"), {"at": local_input(later)}, follow=True)
    assert response.status_code == 200 and b"moved to" in response.content
    record.refresh_from_db()
    assert local_input(record.scheduled_for) == local_input(later)
    response = operator.post(form_action(page, "run-now"), **hx("job-live"))
    assert response.status_code == 200
    body = response.content.decode()
    assert body.lstrip().startswith('<section id="job-live"') and "<html" not in body
    assert "queued to run now" in response["HX-Trigger"]
    assert get_queue("default").get_job_ids() == [str(record.pk)]


@pytest.mark.parametrize("value, words", [("tomorrow-ish", "not a date and time"), ("", "Give the new time"),
                                          ("2001-01-01T00:00", "in the past")])
def test_bad_input_is_a_400_with_the_reason(operator, redis_conn, value, words):
    record = in_an_hour(redis_conn)
    url = reverse("job_reschedule", args=[record.pk])
    response = operator.post(url, {"at": value})
    assert response.status_code == 400 and words in response.content.decode()
    response = operator.post(url, {"at": value}, **hx("job-live"))
    assert response.status_code == 400 and words in response["HX-Trigger"]
    assert not AuditEntry.objects.filter(record_id=record.pk).exists()


def test_a_job_no_longer_scheduled_is_a_409(operator, redis_conn):
    record = api.enqueue(demo.add, 1, 2)
    response = operator.post(reverse("job_run-now", args=[record.pk]))
    assert response.status_code == 409 and b"no longer scheduled" in response.content


def test_anonymous_get_no_permission_and_missing(client, reader, redis_conn):
    record = in_an_hour(redis_conn)
    url = reverse("job_run-now", args=[record.pk])
    page = reader.get(reverse("job_detail", args=[record.pk])).content.decode()
    assert "Run now" not in page and 'name="at"' not in page
    assert reader.post(url).status_code == 403
    assert reader.get(url).status_code == 405
    reader.logout()
    response = client.post(url)
    assert response.status_code == 302 and "login" in response["Location"]
    record.refresh_from_db()
    assert record.scheduled_for is not None


def test_a_missing_job_is_a_404(operator, redis_conn):
    import uuid

    assert operator.post(reverse("job_run-now", args=[uuid.uuid4()])).status_code == 404


def test_the_job_list_row_offers_run_now_but_not_the_time_field(operator, redis_conn):
    record = in_an_hour(redis_conn)
    body = operator.get(reverse("job_list")).content.decode()
    row = body[body.index(f'id="job-{record.pk}"'):]
    row = row[:row.index("</tr>")]
    assert "Run now" in row and 'name="at"' not in row
