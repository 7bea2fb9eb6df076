"""Browser stories: move a scheduled job and run it now from its page; the Limits section; both at 390 px."""

import os
from datetime import timedelta

import pytest
from django.utils import timezone
from playwright.sync_api import expect

from jobs import api, demo
from jobs.models import BackgroundTaskRecord

pytestmark = pytest.mark.django_db(transaction=True)
SHOTS = os.environ.get("JOBDECK_SHOTS_DIR")  # set it to keep screenshots of the pages


def _shot(page, name: str) -> None:
    if SHOTS:
        page.screenshot(path=os.path.join(SHOTS, f"{name}.png"), full_page=True)


def _no_sideways_scroll(page) -> None:
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth + 1")


def test_an_operator_moves_a_scheduled_job_then_runs_it_now(page, redis_conn):
    record = api.enqueue(demo.add, 1, 2, delay=3600, retries=2, backoff="exponential",
                         unique_key="invoice:42", limit=("partner-api", 2))
    page.goto(f"/jobs/{record.pk}/")
    _shot(page, "job-scheduled-1440")
    later = timezone.localtime(timezone.now() + timedelta(days=2)).strftime("%Y-%m-%dT%H:%M")
    page.fill('input[name="at"]', later)
    page.click("text=Move to")
    expect(page.locator("#flash")).to_contain_text("moved to")
    record.refresh_from_db()
    assert timezone.localtime(record.scheduled_for).strftime("%Y-%m-%dT%H:%M") == later
    page.click("text=Run now")
    expect(page.locator("#flash")).to_contain_text("queued to run now")
    expect(page.locator("#job-live")).not_to_contain_text("Move to")
    assert BackgroundTaskRecord.objects.get(pk=record.pk).scheduled_for is None
    page.set_viewport_size({"width": 390, "height": 844})
    page.reload()
    _shot(page, "job-scheduled-390")
    _no_sideways_scroll(page)


def test_the_limits_section_at_both_widths(page, redis_conn):
    for i in range(4):
        api.enqueue(demo.add, i, i, limit=("partner-api", 1))
    page.goto("/queues/")
    expect(page.locator("table.limits")).to_contain_text("partner-api")
    _shot(page, "queues-limits-1440")
    page.set_viewport_size({"width": 390, "height": 844})
    page.reload()
    _shot(page, "queues-limits-390")
    _no_sideways_scroll(page)
    page.goto("/jobs/")
    expect(page.locator("body")).to_contain_text("waiting for a slot: partner-api")
    _no_sideways_scroll(page)
