"""In real Chromium, at desktop and phone widths: the short id a row shows, typed into the search
box, finds its job; a masked value typed there finds nothing."""

from __future__ import annotations

import re

import pytest
from django.test import Client
from playwright.sync_api import expect

from jobs.models import Status

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


@pytest.fixture(params=[(1440, 900), (390, 844)], ids=["desktop", "phone"])
def tab(request, browser, live_server, readonly_user):
    client = Client()
    client.force_login(readonly_user)
    width, height = request.param
    context = browser.new_context(base_url=live_server.url, viewport={"width": width, "height": height})
    context.add_cookies([{"name": "sessionid", "value": client.cookies["sessionid"].value, "url": live_server.url}])
    page = context.new_page()
    page.set_default_timeout(15_000)
    yield page
    context.close()


def _search(tab, text: str):
    box = tab.locator("#id_q")
    box.fill(text)
    box.press("Enter")
    expect(tab).to_have_url(re.compile(rf"[?&]q={re.escape(text)}(&|$)"))
    return tab.locator("#job-table tbody tr a[href^='/jobs/']")


def test_the_short_id_shown_in_the_list_finds_the_job(tab, make_record):
    wanted = make_record(Status.FAILED, kwargs={"api_key": "sk_live_secretvalue", "region": "eu"})
    for _ in range(3):
        make_record(Status.COMPLETED)
    tab.goto("/jobs/")
    link = tab.locator(f"#job-table a[href='/jobs/{wanted.pk}/']").first
    shown = link.inner_text().strip()
    assert len(shown) == 8 and str(wanted.pk).startswith(shown)
    found = _search(tab, shown)
    expect(found).to_have_count(1)
    assert found.first.get_attribute("href") == f"/jobs/{wanted.pk}/"
    expect(_search(tab, "sk_live_secret")).to_have_count(0)
    expect(_search(tab, "eu")).not_to_have_count(0)
