"""What the pages show: how long a failed run took, and dead workers apart from live ones."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from dashboard import display
from jobs.models import Status

pytestmark = pytest.mark.django_db


def test_a_failed_and_a_timed_out_job_show_how_long_they_ran(reader, make_record):
    started = timezone.now() - timedelta(minutes=3)
    failed = make_record(Status.FAILED, started_at=started, finished_at=started + timedelta(seconds=12.5),
                         duration_ms=None)
    timed_out = make_record(Status.FAILED, started_at=started, finished_at=started + timedelta(seconds=125),
                            duration_ms=None, error_type="JobTimeoutException", error_message="timed out")
    listing = reader.get(reverse("job_list"), {"state": "failed"}).content.decode()
    for record, took in ((failed, "12.5 s"), (timed_out, "2 m 05 s")):
        row = listing.split(f'id="job-{record.pk}"')[1].split("</tr>")[0]
        assert f'<td class="num">{took}</td>' in row
        detail = reader.get(reverse("job_detail", args=[record.pk])).content.decode()
        assert f"<dt>Duration</dt><dd>{took}</dd>" in detail


def test_a_job_that_never_started_has_no_duration(make_record):
    assert display.run_ms(make_record(Status.CANCELLED, attempts=0, duration_ms=None)) is None
    assert display.run_ms(make_record(Status.COMPLETED, duration_ms=840)) == 840


@pytest.fixture
def workers(make_worker):
    """A worker beating now and one whose last beat is ten minutes old (killed, never unregistered)."""
    return [make_worker("alive-worker"), make_worker("dead-worker", silent=timedelta(minutes=10))]


def test_the_overview_lists_a_dead_worker_apart_from_the_live_ones(reader, workers):
    body = reader.get(reverse("overview")).content.decode()
    live_table = body.split("<h2>Live workers")[1].split("</table>")[0]
    assert "alive-worker" in live_table and "dead-worker" not in live_table
    stale = body.split('class="stale-workers"')[1].split("</p>")[0]
    assert "dead-worker" in stale and "stale or gone" in stale and "alive-worker" not in stale


def test_the_workers_page_shows_dead_workers_in_their_own_table(reader, workers):
    body = reader.get(reverse("worker_list")).content.decode()
    live, _, stale = body.partition("Stale or gone")
    assert 'id="worker-alive-worker"' in live and "dead-worker" not in live
    assert 'id="worker-dead-worker"' in stale and "alive-worker" not in stale
    assert "10 m 0" in stale.split('id="worker-dead-worker"')[1].split("</tr>")[0]  # how long it has been silent
