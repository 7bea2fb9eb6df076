"""The Crons page in a real browser: pause an entry, run one now and watch the run complete."""

import pytest
from playwright.sync_api import expect

from jobs.models import AuditEntry, BackgroundTaskRecord, PeriodicEntryState, Status
from tests.conftest import wait_for

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

ENTRIES = {
    "nightly-report": {"func": "jobs.demo.echo", "cron": "0 2 * * *", "timezone": "Europe/Paris", "queue": "low",
                       "args": [1], "kwargs": {"full": True}},
    "poll-feed": {"func": "jobs.demo.add", "every": 30, "args": [1, 2]},
}


def test_pause_an_entry_and_run_one_now(page, settings, redis_conn, start_worker):
    settings.JOBS_PERIODIC = ENTRIES
    page.on("dialog", lambda dialog: dialog.accept())
    page.goto("/crons/")
    nightly = page.locator('article[data-entry="nightly-report"]')
    expect(nightly).to_contain_text("daily at 02:00 (Europe/Paris)")
    expect(nightly).to_contain_text("never")
    nightly.get_by_role("button", name="Pause").click()
    expect(nightly.locator(".cronhead .badge")).to_have_text("paused")
    expect(nightly.get_by_role("button", name="Resume")).to_be_visible()
    expect(page.locator("#flash")).to_contain_text("nightly-report: paused.")
    assert PeriodicEntryState.objects.get(name="nightly-report").paused

    poll = page.locator('article[data-entry="poll-feed"]')
    poll.get_by_role("button", name="Run now").click()
    expect(page.locator("#flash")).to_contain_text("poll-feed: run enqueued now.")
    [record] = BackgroundTaskRecord.objects.filter(periodic_entry="poll-feed")
    start_worker()
    # the region polls: the last run's badge flips to completed, and the strip links to the run
    expect(poll.locator("dd .badge")).to_have_text("completed", timeout=30_000)
    poll.locator("ol.strip a").first.click()
    expect(page).to_have_url(f"{page.url.split('/jobs/')[0]}/jobs/{record.pk}/")
    expect(page.locator("#job-live")).to_contain_text("3")
    assert wait_for(lambda: BackgroundTaskRecord.objects.get(pk=record.pk).status == Status.COMPLETED)
    assert set(AuditEntry.objects.values_list("action", flat=True)) == {"cron-pause", "cron-run"}


def test_the_page_fits_a_phone(page, settings, redis_conn, make_record):
    settings.JOBS_PERIODIC = ENTRIES
    for _ in range(20):
        make_record(Status.COMPLETED, periodic_entry="poll-feed")
    page.set_viewport_size({"width": 390, "height": 844})
    page.goto("/crons/")
    expect(page.locator('article[data-entry="poll-feed"] ol.strip a')).to_have_count(20)
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
