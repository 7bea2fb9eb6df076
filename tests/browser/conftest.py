"""Real Chromium through Playwright against pytest-django's live server.

Debian's chromium only (never a downloaded browser); the tests skip where it is missing.
"""

from __future__ import annotations

import os
import shutil

import pytest
from django.test import Client

from tests.dashboard.conftest import make_record, operator_user  # noqa: F401  (shared fixtures)

CHROMIUM = shutil.which("chromium")
ARGS = ["--no-sandbox", "--headless", "--disable-gpu", "--disable-background-networking"]

# Playwright's sync API keeps an event loop in this thread; the ORM calls the tests make
# between browser steps are still plain synchronous calls.
os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")


def pytest_collection_modifyitems(config, items):
    for item in items:
        if "tests/browser/" in str(item.fspath):
            item.add_marker(pytest.mark.browser)
            if CHROMIUM is None:
                item.add_marker(pytest.mark.skip(reason="no chromium on PATH"))


@pytest.fixture(scope="session")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        yield browser
        browser.close()


@pytest.fixture
def page(browser, live_server, operator_user, settings):  # noqa: F811
    """A browser tab logged in as an operator, polling fast."""
    settings.DASHBOARD_POLL_SECONDS = 1
    client = Client()
    client.force_login(operator_user)
    context = browser.new_context(base_url=live_server.url, viewport={"width": 1400, "height": 900})
    context.add_cookies([{"name": "sessionid", "value": client.cookies["sessionid"].value, "url": live_server.url}])
    tab = context.new_page()
    tab.set_default_timeout(15_000)
    yield tab
    context.close()
