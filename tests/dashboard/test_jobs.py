"""The job list (filters, search, keyset pages), the job page, and single-job actions."""

from datetime import timedelta
from urllib.parse import parse_qs, urlparse

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from jobs import api, demo
from jobs.models import AuditEntry, BackgroundTaskRecord, Status

from .conftest import HX, hx

pytestmark = pytest.mark.django_db(transaction=True)


def row_ids(response) -> list[str]:
    return [r.pk for r in response.context["page"].rows] if response.context else []


def test_newest_first_with_keyset_pages(reader, make_record, settings):
    settings.DASHBOARD_PAGE_SIZE = 3
    records = [make_record("completed", age=timedelta(minutes=m)) for m in range(8)]
    seen, url, pages = [], reverse("job_list"), 0
    while url:
        with CaptureQueriesContext(connection) as queries:
            response = reader.get(url)
        assert response.status_code == 200
        assert not any(" OFFSET " in q["sql"].upper() for q in queries.captured_queries)
        seen += row_ids(response)
        cursor = response.context["page"].next_cursor
        url = f"{reverse('job_list')}?cursor={cursor}" if cursor else None
        pages += 1
    assert seen == [r.pk for r in records] and pages == 3


def test_rows_with_the_same_enqueued_at_are_neither_lost_nor_repeated(reader, make_record, settings):
    settings.DASHBOARD_PAGE_SIZE = 2
    at = timezone.now() - timedelta(minutes=1)
    records = [make_record("completed", enqueued_at=at) for _ in range(5)]
    seen, url = [], reverse("job_list")
    while url:
        response = reader.get(url)
        seen += row_ids(response)
        cursor = response.context["page"].next_cursor
        url = f"{reverse('job_list')}?cursor={cursor}" if cursor else None
    assert sorted(map(str, seen)) == sorted(str(r.pk) for r in records) and len(seen) == 5


@pytest.mark.parametrize("cursor", ["garbage", "W10:1tampered:abc", ""])
def test_a_tampered_cursor_is_a_clear_400(reader, make_record, cursor):
    make_record("completed")
    response = reader.get(reverse("job_list"), {"cursor": cursor + "x"})
    assert response.status_code == 400
    assert b"This page link is not valid" in response.content
    fragment = reader.get(reverse("job_list"), {"cursor": "x"}, **HX)
    assert fragment.status_code == 400 and b"<html" not in fragment.content


def test_nonsense_filters_are_a_clear_400(reader):
    for params in ({"state": "exploded"}, {"queue": "nope"}, {"since": "yesterday-ish"},
                   {"since": "2026-01-02T00:00", "until": "2026-01-01T00:00"}):
        response = reader.get(reverse("job_list"), params)
        assert response.status_code == 400, params
        assert b"Some filters are not valid" in response.content


def test_filters_by_state_queue_function_and_time(reader, make_record):
    failed = make_record("failed", queue="high")
    make_record("failed", queue="low")
    done = make_record("completed", func_path="jobs.demo.noop", age=timedelta(hours=3))
    later = make_record("pending", scheduled_for=timezone.now() + timedelta(hours=1))
    get = lambda **params: set(row_ids(reader.get(reverse("job_list"), params)))  # noqa: E731
    assert get(state="failed", queue="high") == {failed.pk}
    assert get(function="jobs.demo.noop") == {done.pk}
    assert get(state="scheduled") == {later.pk}
    assert get(state="pending") == set()
    until = (timezone.now() - timedelta(hours=2)).strftime("%Y-%m-%dT%H:%M:%S")
    assert get(until=until) == {done.pk}


def test_search_over_id_function_args_and_error(reader, make_record):
    a = make_record("failed", args=["invoice-4711"], error_message="card declined by bank")
    b = make_record("completed", func_path="jobs.demo.long_report")
    get = lambda q: set(row_ids(reader.get(reverse("job_list"), {"q": q})))  # noqa: E731
    assert get("invoice-4711") == {a.pk}
    assert get("declined") == {a.pk}
    assert get("long_rep") == {b.pk}
    assert get(str(b.pk)) == {b.pk}


def test_the_job_table_fragment_polls_and_the_page_keeps_filters_in_links(reader, make_record):
    make_record("pending")
    fragment = reader.get(reverse("job_list"), {"state": "pending"}, **hx("job-table")).content.decode()
    assert fragment.lstrip().startswith('<section id="job-table"')
    assert 'hx-get="/jobs/?state=pending"' in fragment and "every 3s" in fragment


def test_a_closed_range_of_finished_jobs_stops_polling(reader, make_record):
    make_record("completed", age=timedelta(hours=2))
    until = (timezone.now() - timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%S")
    response = reader.get(reverse("job_list"), {"until": until}, **HX)
    assert response.status_code == 286 and b"every 3s" not in response.content


def test_job_detail_shows_everything_escaped(reader, make_record):
    record = make_record("failed", kwargs={"password": "hunter2", "user": "<b>ann</b>"})
    body = reader.get(reverse("job_detail", args=[record.pk])).content.decode()
    assert "jobs.demo." in body and "add" in body
    assert "hunter2" not in body and "••••••" in body
    assert "&lt;b&gt;ann&lt;/b&gt;" in body
    assert "&lt;script&gt;alert(" in body and "<script>alert" not in body
    assert "attempt 1 started" in body and "w1 · host-a · pid 4242" in body
    assert "attempt 1 failed" in body


def test_long_tracebacks_are_collapsible(reader, make_record):
    long = "Traceback (most recent call last):\n" + "\n".join(f'  File "x.py", line {i}, in f' for i in range(40))
    record = make_record("failed", traceback=long + "\nValueError: deep")
    body = reader.get(reverse("job_detail", args=[record.pk])).content.decode()
    assert '<details class="tb"' in body and "Traceback (42 lines)" in body


def test_job_detail_polls_while_running_and_stops_once_final(reader, make_record):
    running = make_record("running", progress=0.25)
    fragment = reader.get(reverse("job_detail", args=[running.pk]), **HX)
    assert fragment.status_code == 200 and b"every 3s" in fragment.content and b"<html" not in fragment.content
    assert b'<progress max="1" value="0.25"' in fragment.content
    running.mark_completed(result={"ok": True})
    final = reader.get(reverse("job_detail", args=[running.pk]), **HX)
    assert final.status_code == 286 and b"every 3s" not in final.content
    assert b"&quot;ok&quot;: true" in final.content


def test_buttons_show_only_when_they_apply(operator, make_record):
    cases = {"failed": ("Retry", "Cancel</button>"), "pending": ("Cancel</button>", "Retry</button>"),
             "completed": ("Delete", "Cancel</button>")}
    for status, (shown, hidden) in cases.items():
        record = make_record(status)
        body = operator.get(reverse("job_detail", args=[record.pk])).content.decode()
        assert shown in body and hidden not in body, status


# --- actions: real RQ through jobs.api ------------------------------------------------

@pytest.fixture
def failed_job(redis_conn, drain):
    record = api.enqueue(demo.fail, "broken on purpose")
    drain()
    record.refresh_from_db()
    assert record.status == Status.FAILED
    return record


def test_retry_without_htmx_acts_messages_and_redirects(operator, failed_job, drain):
    url = reverse("job_retry", args=[failed_job.pk])
    response = operator.post(url, {"next": "/jobs/?state=failed"}, follow=True)
    assert response.redirect_chain[-1][0] == "/jobs/?state=failed"
    assert b"queued again (attempt 2)" in response.content
    failed_job.refresh_from_db()
    assert failed_job.status == Status.PENDING
    assert AuditEntry.objects.filter(action="retry", record_id=failed_job.pk, username="operator").exists()
    drain()
    failed_job.refresh_from_db()
    assert failed_job.status == Status.FAILED and failed_job.attempts == 2


def test_retry_with_htmx_returns_the_row_and_raises_events(operator, failed_job):
    response = operator.post(reverse("job_retry", args=[failed_job.pk]), **hx(f"job-{failed_job.pk}"))
    assert response.status_code == 200
    body = response.content.decode()
    assert body.startswith(f'<tr id="job-{failed_job.pk}"') and "pending" in body and "<html" not in body
    assert "jobs-changed" in response["HX-Trigger"] and "queued again" in response["HX-Trigger"]


def test_retry_from_the_job_page_returns_the_live_region(operator, failed_job):
    response = operator.post(reverse("job_retry", args=[failed_job.pk]), **hx("job-live"))
    assert response.status_code == 200
    assert response.content.decode().lstrip().startswith('<section id="job-live"')
    assert b"every 3s" in response.content  # live again: the job will run


def test_retry_that_no_longer_applies_is_a_409_with_the_reason(operator, make_record, redis_conn):
    record = make_record("completed")
    response = operator.post(reverse("job_retry", args=[record.pk]), **hx(f"job-{record.pk}"))
    assert response.status_code == 409 and "only failed or cancelled" in response["HX-Trigger"]
    response = operator.post(reverse("job_retry", args=[record.pk]), follow=True)
    assert b"only failed or cancelled jobs can be retried" in response.content


def test_cancel_asks_for_confirmation_without_javascript(operator, redis_conn):
    record = api.enqueue(demo.add, 1, 2)
    url = reverse("job_cancel", args=[record.pk])
    confirm = operator.post(url)
    assert confirm.status_code == 200 and b"Yes, cancel it" in confirm.content
    record.refresh_from_db()
    assert record.status == Status.PENDING
    response = operator.post(url, {"confirmed": "1"}, follow=True)
    assert b"cancelled" in response.content
    record.refresh_from_db()
    assert record.status == Status.CANCELLED
    assert AuditEntry.objects.filter(action="cancel", record_id=record.pk, outcome="cancelled").exists()


def test_cancel_with_htmx(operator, redis_conn, drain):
    record = api.enqueue(demo.add, 1, 2)
    response = operator.post(reverse("job_cancel", args=[record.pk]), {"confirmed": "1"}, **hx(f"job-{record.pk}"))
    assert response.status_code == 200 and b"cancelled" in response.content
    drain()
    record.refresh_from_db()
    assert record.status == Status.CANCELLED  # the worker did not run it


def test_delete_with_and_without_htmx(operator, failed_job, make_record, redis_conn):
    response = operator.post(reverse("job_delete", args=[failed_job.pk]), {"confirmed": "1"}, **hx(f"job-{failed_job.pk}"))
    assert response.status_code == 200 and response.content == b""
    assert not BackgroundTaskRecord.objects.filter(pk=failed_job.pk).exists()
    other = make_record("completed")
    response = operator.post(reverse("job_delete", args=[other.pk]), {"confirmed": "1"})
    assert response.status_code == 302 and response["Location"] == reverse("job_list")
    other2 = make_record("completed")
    response = operator.post(reverse("job_delete", args=[other2.pk]), {"confirmed": "1"}, **hx("job-live"))
    assert response["HX-Redirect"] == reverse("job_list")
    assert AuditEntry.objects.filter(action="delete").count() == 3


def test_next_must_stay_on_this_site(operator, failed_job):
    response = operator.post(reverse("job_retry", args=[failed_job.pk]), {"next": "https://evil.example/"})
    assert response["Location"] == reverse("job_detail", args=[failed_job.pk])


def test_pending_filter_link_from_chart_parses(reader):
    url = "/jobs/?queue=default&since=2026-01-01T10:00:00&until=2026-01-01T10:01:00&state=completed&on=finished"
    assert reader.get(url).status_code == 200
    assert parse_qs(urlparse(url).query)["on"] == ["finished"]
