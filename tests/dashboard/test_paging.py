"""The pager: every link is read from the rendered page, never built by the test (a pager whose
link began with `??` passed a test that built its own URL)."""

from __future__ import annotations

import re
from datetime import timedelta
from html import unescape

import pytest
from django.urls import reverse

from jobs import api
from jobs.models import AuditEntry

pytestmark = pytest.mark.django_db


def pager_link(response, label: str) -> str | None:
    """The href of the pager link whose text is `label`, as the page renders it."""
    nav = re.search(r'<nav class="pager".*?</nav>', response.content.decode(), re.DOTALL)
    assert nav, "no pager on the page"
    found = re.search(r'<a href="([^"]*)"[^>]*>' + re.escape(label) + "</a>", nav.group(0))
    return unescape(found.group(1)) if found else None


def test_older_walks_every_page_then_newer_walks_back(reader, make_record, settings):
    settings.DASHBOARD_PAGE_SIZE = 3
    records = [make_record("completed", age=timedelta(minutes=m)) for m in range(8)]
    path = reverse("job_list")
    response = reader.get(path)
    assert pager_link(response, "‹ Newer") is None and pager_link(response, "« Newest") is None
    pages = [[r.pk for r in response.context["page"].rows]]
    while (older := pager_link(response, "Older »")) is not None:
        assert older.startswith("?") and not older.startswith("??")
        response = reader.get(path + older)
        pages.append([r.pk for r in response.context["page"].rows])
    assert pages == [[r.pk for r in records[i:i + 3]] for i in (0, 3, 6)]
    back = []
    while (newer := pager_link(response, "‹ Newer")) is not None:
        response = reader.get(path + newer)
        back.append([r.pk for r in response.context["page"].rows])
    assert back == [pages[1], pages[0]]
    assert pager_link(response, "« Newest") is None  # back on the first page


def test_a_filter_survives_every_page(reader, make_record, settings):
    settings.DASHBOARD_PAGE_SIZE = 2
    failed = [make_record("failed", age=timedelta(minutes=2 * m)) for m in range(6)]
    for m in range(6):
        make_record("completed", age=timedelta(minutes=2 * m + 1))
    path = reverse("job_list")
    response, pages = reader.get(path, {"state": "failed", "queue": "default"}), []
    while True:
        assert response.status_code == 200
        pages.append([r.pk for r in response.context["page"].rows])
        older = pager_link(response, "Older »")
        if older is None:
            break
        assert "state=failed" in older and "queue=default" in older
        response = reader.get(path + older)
    assert pages == [[r.pk for r in failed[i:i + 2]] for i in (0, 2, 4)]
    newest = pager_link(response, "« Newest")
    assert "state=failed" in newest and "cursor" not in newest


def test_the_htmx_pager_links_are_the_same(reader, make_record, settings):
    settings.DASHBOARD_PAGE_SIZE = 2
    for m in range(5):
        make_record("failed", age=timedelta(minutes=m))
    response = reader.get(reverse("job_list"), {"state": "failed"}, HTTP_HX_REQUEST="true",
                          HTTP_HX_TARGET="job-table")
    html = response.content.decode()
    hrefs = re.findall(r'<a href="(\?[^"]*)" hx-get="(\?[^"]*)"', html)
    assert hrefs and all(a == b and not a.startswith("??") for a, b in hrefs)


def test_the_audit_log_pages_with_its_filter(reader, settings):
    settings.DASHBOARD_PAGE_SIZE = 2
    for n in range(5):
        api.audit(None, "retry", n=n)
        api.audit(None, "pause", n=n)
    path = reverse("audit_list")
    response, seen = reader.get(path, {"action": "retry"}), []
    while True:
        seen += [entry.pk for entry in response.context["page"].rows]
        older = pager_link(response, "Older »")
        if older is None:
            break
        response = reader.get(path + older)
    expected = list(AuditEntry.objects.filter(action="retry").order_by("-created_at", "-pk").values_list("pk",
                                                                                                       flat=True))
    assert seen == expected and len(seen) == 5
    newer = pager_link(response, "‹ Newer")
    assert newer and "action=retry" in newer
    assert all(e.action == "retry" for e in reader.get(path + newer).context["page"].rows)
