"""Real Chromium through Playwright against pytest-django's live server.

Debian's chromium only (never a downloaded browser); the tests skip where it is missing.
"""

from __future__ import annotations

import pytest
from django.test import Client

from tests.conftest import CHROMIUM
from tests.dashboard.conftest import make_record, make_worker, operator_user  # noqa: F401  (shared fixtures)

def pytest_collection_modifyitems(config, items):
    for item in items:
        if "tests/browser/" in str(item.fspath):
            item.add_marker(pytest.mark.browser)
            if CHROMIUM is None:
                item.add_marker(pytest.mark.skip(reason="no chromium on PATH"))


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
