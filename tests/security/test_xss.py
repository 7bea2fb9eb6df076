"""Script payloads in stored data render as text: args, kwargs, results, tracebacks, error messages,
function, queue and worker names, and the audit log. (tests/security/test_xss_browser.py checks
the same pages in Chromium.)"""

from __future__ import annotations

import html

import pytest

from .conftest import INJECTED, PAYLOADS, payload_pages

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize("htmx", [False, True], ids=["page", "fragment"])
def test_payloads_render_escaped_on_every_page(operator, payload_records, htmx):
    headers = {"HTTP_HX_REQUEST": "true"} if htmx else {}
    shown = set()
    for url in payload_pages(payload_records):
        response = operator.get(url, **headers)
        assert response.status_code in (200, 286), url  # 286: a finished job's region stops polling
        body = response.content.decode()
        for needle in INJECTED:
            assert needle not in body, (url, needle)
        # The function shows as a dimmed module and its name: look for the name.
        shown |= {name for name, payload in PAYLOADS.items()
                  if html.escape(payload.removeprefix("jobs."), quote=False) in body
                  or html.escape(payload.removeprefix("jobs.")) in body}
    assert shown == set(PAYLOADS)  # every payload really was on some page, as text


def test_a_masked_kwarg_stays_masked(operator, payload_records):
    body = operator.get(f"/jobs/{payload_records['failed'].pk}/").content.decode()
    assert "••••••" in body


def test_the_confirm_and_bulk_pages_escape_too(operator, payload_records):
    response = operator.post(f"/jobs/{payload_records['failed'].pk}/delete/")
    assert response.status_code == 200
    body = response.content.decode()
    assert not any(needle in body for needle in INJECTED)
    response = operator.post("/jobs/bulk/", {"action": "retry", "scope": "all",
                                             "filter": f"function={PAYLOADS['func_path']}"})
    assert response.status_code == 200
    assert not any(needle in response.content.decode() for needle in INJECTED)
