"""Paging in a real browser: click the rendered "Older »" and "‹ Newer" links through three pages,
with and without a filter, on the job list and on the audit log."""

from datetime import timedelta

import pytest
from playwright.sync_api import expect

from jobs import api

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def shown_ids(page) -> list[str]:
    return [row.get_attribute("id") for row in page.locator("#job-table tbody tr[id]").all()]


def test_three_pages_of_jobs_and_back(page, make_record, settings):
    settings.DASHBOARD_PAGE_SIZE = 3
    records = [make_record("completed", age=timedelta(minutes=m)) for m in range(9)]
    page.goto("/jobs/")
    pages = []
    for number in range(3):
        expect(page.locator("#job-table tbody tr[id]")).to_have_count(3)
        pages.append(shown_ids(page))
        if number < 2:
            page.get_by_role("link", name="Older »").click()
            expect(page.locator(f"#job-{records[3 * (number + 1)].pk}")).to_be_visible()
    assert pages == [[f"job-{r.pk}" for r in records[i:i + 3]] for i in (0, 3, 6)]
    expect(page.get_by_role("link", name="Older »")).to_have_count(0)
    page.get_by_role("link", name="‹ Newer").click()
    expect(page.locator(f"#job-{records[3].pk}")).to_be_visible()
    assert shown_ids(page) == pages[1]
    page.get_by_role("link", name="« Newest").click()
    expect(page.locator(f"#job-{records[0].pk}")).to_be_visible()
    expect(page.get_by_role("link", name="‹ Newer")).to_have_count(0)


def test_three_pages_of_a_filter(page, make_record, settings):
    settings.DASHBOARD_PAGE_SIZE = 2
    failed = [make_record("failed", age=timedelta(minutes=2 * m)) for m in range(6)]
    for m in range(6):
        make_record("completed", age=timedelta(minutes=2 * m + 1))
    page.goto("/jobs/?state=failed")
    seen = []
    for number in range(3):
        expect(page.locator("#job-table tbody tr[id]")).to_have_count(2)
        expect(page.locator("#job-table .badge", has_text="completed")).to_have_count(0)
        seen += shown_ids(page)
        if number < 2:
            page.get_by_role("link", name="Older »").click()
            expect(page.locator(f"#job-{failed[2 * (number + 1)].pk}")).to_be_visible()
            assert "state=failed" in page.url and "??" not in page.url
    assert seen == [f"job-{r.pk}" for r in failed]
    expect(page.locator("#id_state")).to_have_value("failed")


def test_three_pages_of_the_audit_log(page, settings):
    settings.DASHBOARD_PAGE_SIZE = 2
    for n in range(6):
        api.audit(None, "retry", n=n)
        api.audit(None, "pause", n=n)
    page.goto("/audit/?action=retry")
    for number in range(3):
        expect(page.locator("#audit-table tbody tr")).to_have_count(2)
        expect(page.locator("#audit-table tbody", has_text="pause")).to_have_count(0)
        if number < 2:
            first = page.locator("#audit-table tbody tr").first.inner_text()
            page.get_by_role("link", name="Older »").click()
            expect(page.locator("#audit-table tbody tr").first).not_to_have_text(first)
    expect(page.get_by_role("link", name="Older »")).to_have_count(0)
