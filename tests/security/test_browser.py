"""In real Chromium: script payloads never run on any page that shows them, and the dashboard's
htmx keeps working under the Content-Security-Policy without a single violation."""

from __future__ import annotations

import re

import pytest
from django.test import Client
from playwright.sync_api import expect

from jobs.models import Status

from .conftest import PAYLOADS, payload_pages

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

# Collects CSP violations in each document before any of its own script runs.
WATCH_CSP = """
window.__csp = [];
document.addEventListener("securitypolicyviolation",
  (e) => window.__csp.push(e.violatedDirective + " " + e.blockedURI + " " + (e.sample || "")));
"""
INJECTED_NODES = ('script:not([src]), img[src="x"], svg[onload], iframe, [onerror], [onload], '
                  '[onclick], [onmouseover]')


@pytest.fixture
def tab(browser, live_server, operator_user, settings):
    settings.DASHBOARD_POLL_SECONDS = 1
    client = Client()
    client.force_login(operator_user)
    context = browser.new_context(base_url=live_server.url, viewport={"width": 1400, "height": 900})
    context.add_cookies([{"name": "sessionid", "value": client.cookies["sessionid"].value, "url": live_server.url}])
    context.add_init_script(WATCH_CSP)
    page = context.new_page()
    page.set_default_timeout(15_000)
    problems: list[str] = []
    page.on("dialog", lambda dialog: (problems.append(f"dialog: {dialog.message}"), dialog.dismiss()))
    page.on("console", lambda msg: problems.append(f"console: {msg.text}")
            if "Content Security Policy" in msg.text else None)
    # Every failed load, by address (a blocked or injected resource would show here).
    page.on("response", lambda r: problems.append(f"{r.status} {r.url}")
            if r.status >= 400 and not r.url.endswith("/favicon.ico") else None)
    page.on("pageerror", lambda exc: problems.append(f"page error: {exc}"))
    page.problems = problems
    yield page
    context.close()


def _violations(page) -> list[str]:
    return page.evaluate("window.__csp || []")


def test_no_payload_runs_on_any_page(tab, payload_records):
    for url in payload_pages(payload_records):
        tab.goto(url)
        expect(tab.locator("main")).to_be_visible()
        tab.wait_for_timeout(1_200)  # let at least one poll swap fresh fragments in (1 s polling)
        assert tab.locator(INJECTED_NODES).count() == 0, url
        assert _violations(tab) == [], url
        assert tab.problems == [], (url, tab.problems)
    # The payloads were on screen, as text.
    tab.goto(f"/jobs/{payload_records['failed'].pk}/")
    expect(tab.locator("#job-live")).to_contain_text(PAYLOADS["traceback"])
    expect(tab.locator("#job-live")).to_contain_text(PAYLOADS["error_type"])
    tab.goto("/audit/")
    expect(tab.locator("#audit-table")).to_contain_text(PAYLOADS["audit"])
    tab.goto("/queues/")
    expect(tab.locator("#queue-table")).to_contain_text(PAYLOADS["queue"])
    assert tab.problems == []


def test_htmx_works_under_the_csp(tab, make_record, redis_conn):
    failed = make_record(Status.FAILED, error_message="card declined")
    make_record(Status.COMPLETED)
    tab.goto("/jobs/")
    assert tab.evaluate("window.htmx && htmx.config.includeIndicatorStyles") is False
    assert tab.locator("style").count() == 0  # htmx injected no <style> (it would be a violation)
    # A filter change is an hx-get that swaps the table and pushes the URL.
    tab.get_by_label("State").select_option("failed")
    expect(tab).to_have_url(re.compile(r"state=failed"))
    expect(tab.locator("#job-table tbody tr")).to_have_count(1)
    # An action is an hx-post with the CSRF header from <body hx-headers>, and HX-Trigger events.
    row = tab.locator(f"#job-{failed.pk}")
    row.get_by_role("button", name="Retry").click()
    expect(tab.locator("#flash")).to_contain_text("queued again")
    expect(tab.locator("#job-table")).to_contain_text("No jobs match this filter")  # the poll refreshed it
    tab.goto("/")
    expect(tab.locator("#overview-live svg")).to_be_visible()
    tab.wait_for_timeout(1_200)
    assert _violations(tab) == []
    assert tab.problems == []
