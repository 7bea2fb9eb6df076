"""Each page in full, and the same URL as an htmx request: the fragment only."""

from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from jobs.models import AuditEntry, QueueSample

from .conftest import HX, hx

pytestmark = pytest.mark.django_db


@pytest.fixture
def site(make_record, redis_conn):
    """A little of everything: each state, two failure groups, an audit row, samples."""
    records = {
        "pending": make_record("pending"),
        "running": make_record("running", progress=0.4, progress_message="step 4 of 10"),
        "completed": make_record("completed", result={"total": 3}),
        "failed": make_record("failed"),
        "other_failed": make_record("failed", func_path="jobs.demo.flaky", error_type="ConnectionError"),
    }
    AuditEntry.objects.create(username="operator", action="retry", record_id=records["failed"].pk)
    now = timezone.now()
    QueueSample.objects.bulk_create([
        QueueSample(taken_at=now - timedelta(minutes=m), queue_name="default", pending=m % 7, running=1,
                    completed_count=m % 5, failed_count=m % 2) for m in range(1, 60)])
    return records


REGIONS = {
    "overview": "overview-live",
    "job_list": "job-table",
    "failure_list": "failure-groups",
    "worker_list": "worker-table",
    "queue_list": "queue-table",
    "audit_list": "audit-table",
}


@pytest.mark.parametrize("name, region", REGIONS.items())
def test_full_page_and_its_fragment(reader, site, name, region):
    url = reverse(name)
    page = reader.get(url)
    assert page.status_code == 200
    body = page.content.decode()
    assert body.startswith("<!doctype html>") and f'id="{region}"' in body
    assert "htmx-2.min.js" in body and "dashboard.js" in body
    assert "<script>" not in body and " onclick=" not in body  # no inline script: CSP-ready
    assert page["Vary"] and "HX-Request" in page["Vary"]

    fragment = reader.get(url, **HX)
    assert fragment.status_code == 200
    text = fragment.content.decode()
    assert "<html" not in text and text.lstrip().startswith(f'<section id="{region}"')
    assert 'hx-sync="this:drop"' in text and 'hx-swap="outerHTML"' in text


def test_poll_interval_comes_from_the_setting(reader, site, settings):
    settings.DASHBOARD_POLL_SECONDS = 7
    assert 'hx-trigger="every 7s' in reader.get(reverse("job_list"), **HX).content.decode()


def test_overview_shows_counts_queues_failures_and_chart(reader, site):
    body = reader.get(reverse("overview")).content.decode()
    for text in ("pending", "running", "completed", "failed", "Latest failures", "Live workers", "<svg"):
        assert text in body
    assert reverse("job_detail", args=[site["failed"].pk]) in body


def test_the_overview_chart_polls_on_its_own_and_the_live_region_keeps_it(reader, site, settings):
    settings.DASHBOARD_CHART_POLL_SECONDS = 45
    page = reader.get(reverse("overview")).content.decode()
    assert 'id="overview-chart"' in page and 'hx-trigger="every 45s' in page and "<svg" in page

    live = reader.get(reverse("overview"), **hx("overview-live")).content.decode()
    # No chart computed for the 3-second poll: a placeholder htmx swaps for the chart on the page.
    assert '<div id="overview-chart" hx-preserve></div>' in live and "<svg" not in live
    assert "Latest failures" in live

    chart = reader.get(reverse("overview"), **hx("overview-chart")).content.decode()
    assert chart.lstrip().startswith('<div id="overview-chart"') and "<svg" in chart and "hx-preserve" not in chart
    assert "Latest failures" not in chart


def test_the_queue_table_poll_leaves_the_charts_alone(reader, site):
    table = reader.get(reverse("queue_list"), **hx("queue-table")).content.decode()
    assert 'id="queue-table"' in table and "<svg" not in table
    charts = reader.get(reverse("queue_list"), **hx("queue-charts")).content.decode()
    assert 'id="queue-charts"' in charts and "<svg" in charts and 'id="queue-table"' not in charts


def test_overview_warns_about_backlog_without_workers_and_overdue_jobs(reader, make_record, redis_conn):
    overdue = make_record("pending", scheduled_for=timezone.now() - timedelta(minutes=10))
    stuck = make_record("running", worker_name="gone-worker", started_at=timezone.now() - timedelta(minutes=5))
    body = reader.get(reverse("overview")).content.decode()
    assert "has 1 job pending and no live worker" in body
    assert "/jobs/?queue=default&amp;state=pending" in body
    assert "1 job scheduled and overdue" in body and "state=overdue" in body
    assert reverse("job_detail", args=[overdue.pk]) in body
    assert "gone-worker, whose heartbeat is stale" in body and reverse("job_detail", args=[stuck.pk]) in body


def test_failures_are_grouped_with_counts_and_escaped_traceback(reader, site, make_record):
    make_record("failed")
    body = reader.get(reverse("failure_list")).content.decode()
    assert body.count('class="group"') == 2
    assert "&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt; &amp; boom" in body
    assert "<script>alert" not in body
    assert "Retry this group" not in body  # read-only


def test_audit_filters(reader, site):
    AuditEntry.objects.create(username="someone", action="cancel")
    body = reader.get(reverse("audit_list"), {"user": "operator"}).content.decode()
    assert "operator" in body and "someone" not in body
    body = reader.get(reverse("audit_list"), {"action": "cancel"}).content.decode()
    assert "someone" in body and ">retry<" not in body
    assert reader.get(reverse("audit_list"), {"record": site["failed"].pk}).status_code == 200
    bad = reader.get(reverse("audit_list"), {"record": "nope"})
    assert bad.status_code == 400 and b"Enter a valid UUID" in bad.content


def test_audit_bad_cursor_is_400(reader, site):
    response = reader.get(reverse("audit_list"), {"cursor": "forged"}, **hx("audit-table"))
    assert response.status_code == 400 and b"not valid" in response.content


def test_queue_page_draws_linked_charts(reader, site):
    body = reader.get(reverse("queue_list")).content.decode()
    assert body.count("<svg") == 6  # depth + throughput for 3 queues
    assert 'class="bar ok"' in body and '<polyline class="line warn"' in body
    assert "/jobs/?queue=default&amp;since=" in body
    charts = reader.get(reverse("queue_list") + "?window=day", **hx("queue-charts"))
    assert charts.content.decode().lstrip().startswith('<section id="queue-charts"')
    assert reader.get(reverse("queue_list") + "?window=decade").status_code == 400
