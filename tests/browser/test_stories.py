"""Operator stories in a real browser: retry, cancel, a row that flips while the page polls,
bulk retry of everything matching, and the charts drawn."""

import re
from datetime import timedelta

import pytest
from django.utils import timezone
from playwright.sync_api import expect

from jobs import api, demo
from jobs.models import BackgroundTaskRecord, QueueSample, Status

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_retry_from_the_failed_list(page, redis_conn, drain):
    record = api.enqueue(demo.fail, "card declined")
    drain()
    page.goto("/jobs/?state=failed")
    row = page.locator(f"#job-{record.pk}")
    expect(row).to_contain_text("failed")
    expect(row).to_contain_text("card declined")
    row.get_by_role("button", name="Retry").click()
    expect(row).to_contain_text("pending")
    expect(page.locator("#flash")).to_contain_text("queued again (attempt 2)")
    record.refresh_from_db()
    assert record.status == Status.PENDING
    # the table polls: with the state=failed filter the retried row leaves the list
    expect(page.locator("#job-table")).to_contain_text("No jobs match this filter")


def test_cancel_a_running_job(page, start_worker):
    worker = start_worker()
    record = api.enqueue(demo.sleep, 60)
    page.on("dialog", lambda dialog: dialog.accept())
    page.goto(f"/jobs/{record.pk}/")
    live = page.locator("#job-live")
    expect(live.locator(".jobhead .badge")).to_have_text("running", timeout=30_000)
    expect(live).to_contain_text("attempt 1 started")
    live.get_by_role("button", name="Cancel").click()
    expect(live.locator(".jobhead .badge")).to_have_text("cancelled", timeout=30_000)
    expect(page.locator("#job-live[hx-trigger]")).to_have_count(0)  # final: polling stopped
    expect(live.get_by_role("button", name="Retry")).to_be_visible()
    assert worker.process.poll() is None


def test_a_row_flips_from_pending_to_completed_while_the_page_polls(page, start_worker):
    record = api.enqueue(demo.add, 2, 3)
    page.goto("/jobs/")
    row = page.locator(f"#job-{record.pk}")
    expect(row.locator(".badge")).to_have_text("pending")
    start_worker()
    expect(row.locator(".badge")).to_have_text("completed", timeout=30_000)
    page.goto(f"/jobs/{record.pk}/")
    expect(page.locator("#job-live")).to_contain_text("5")


def test_bulk_retry_of_all_matching(page, redis_conn, drain):
    records = [api.enqueue(demo.fail, f"boom {i}") for i in range(3)]
    drain()
    ok = api.enqueue(demo.add, 1, 1)
    drain()
    page.goto("/jobs/?state=failed")
    expect(page.locator("#job-table tbody tr")).to_have_count(3)
    page.get_by_label("or all jobs matching this filter").check()
    page.locator("#bulk-form").get_by_role("button", name="Retry…").click()
    panel = page.locator("#bulk-panel")
    expect(panel).to_contain_text("Retry 3 jobs")
    expect(panel).to_contain_text("state=failed")
    panel.get_by_role("button", name="Retry 3 jobs").click()
    expect(panel).to_contain_text("3 of 3 jobs retried")
    expect(page.locator("#job-table")).to_contain_text("No jobs match this filter")
    statuses = set(BackgroundTaskRecord.objects.filter(pk__in=[r.pk for r in records]).values_list("status", flat=True))
    assert statuses == {Status.PENDING}
    ok.refresh_from_db()
    assert ok.status == Status.COMPLETED


def test_the_charts_are_drawn_and_link_to_their_jobs(page, make_record, redis_conn):
    now = timezone.now()
    # Ages up to 54 minutes: the hour's window moves with the clock, and a minute boundary may
    # pass between these rows and the page drawing them.
    QueueSample.objects.bulk_create([
        QueueSample(taken_at=now - timedelta(minutes=m), queue_name="default", pending=10 + m % 9, running=2,
                    completed_count=5 + m % 4, failed_count=m % 3) for m in range(1, 55)])
    failed = make_record("failed", finished_at=now - timedelta(minutes=3), age=timedelta(minutes=4))
    page.goto("/queues/")
    default_charts = page.locator(".chartrow").first
    expect(default_charts.locator("svg")).to_have_count(2)
    expect(default_charts.locator("rect.bar.ok")).to_have_count(54)
    expect(default_charts.locator("polyline.line.warn")).to_have_count(1)
    expect(default_charts.locator("text.tick").first).to_be_visible()
    page.goto("/")
    stamp = page.locator("#overview-live .pagehead time")
    stamp_text = stamp.inner_text()
    expect(stamp).not_to_have_text(stamp_text)  # the live region polled (every second here)...
    expect(page.locator("#overview-chart svg")).to_have_count(1)  # ...and kept the chart it does not carry
    bar = page.locator("#overview-live rect.bar.bad").first
    expect(bar).to_have_count(1)
    bar.click()
    expect(page).to_have_url(re.compile(r"/jobs/\?.*state=failed.*on=finished"))
    expect(page.locator(f"#job-{failed.pk}")).to_be_visible()
