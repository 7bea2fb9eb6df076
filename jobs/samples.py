"""Per-minute queue samples for the charts: the clock takes them, the dashboard draws them."""

from __future__ import annotations

from datetime import datetime, timedelta

from django.db.models import Count, Min, Q
from django.utils import timezone

from .connection import queue_names
from .models import BackgroundTaskRecord, QueueSample, Status


def take_samples(now: datetime | None = None) -> list[QueueSample]:
    """Store one QueueSample per configured queue: depth now, throughput since the last sample."""
    now = now or timezone.now()
    last = QueueSample.objects.order_by("-taken_at").values_list("taken_at", flat=True).first()
    since = last if last and last > now - timedelta(hours=1) else now - timedelta(minutes=1)
    rows = BackgroundTaskRecord.objects.order_by()
    ready = Q(status=Status.PENDING) & (Q(scheduled_for__isnull=True) | Q(scheduled_for__lte=now))
    depth = {
        row["queue_name"]: row
        for row in rows.filter(status__in=[Status.PENDING, Status.RUNNING, Status.FAILED])
        .values("queue_name")
        .annotate(
            pending=Count("pk", filter=ready),
            scheduled=Count("pk", filter=Q(status=Status.PENDING, scheduled_for__gt=now)),
            running=Count("pk", filter=Q(status=Status.RUNNING)),
            failed=Count("pk", filter=Q(status=Status.FAILED)),
            oldest=Min("enqueued_at", filter=ready),
        )
    }
    throughput = {
        row["queue_name"]: row
        for row in rows.filter(status__in=[Status.COMPLETED, Status.FAILED], finished_at__gt=since, finished_at__lte=now)
        .values("queue_name")
        .annotate(completed=Count("pk", filter=Q(status=Status.COMPLETED)), failed=Count("pk", filter=Q(status=Status.FAILED)))
    }
    # The one full count of completed rows, once a minute here rather than on every page poll.
    completed_total = dict(rows.filter(status=Status.COMPLETED, finished_at__lte=now)
                           .values("queue_name").annotate(n=Count("pk")).values_list("queue_name", "n"))
    samples = []
    for name in sorted(set(queue_names()) | set(depth) | set(completed_total)):
        d, t = depth.get(name, {}), throughput.get(name, {})
        oldest = d.get("oldest")
        samples.append(QueueSample(
            taken_at=now, queue_name=name, pending=d.get("pending", 0), scheduled=d.get("scheduled", 0),
            running=d.get("running", 0), failed=d.get("failed", 0), completed_count=t.get("completed", 0),
            failed_count=t.get("failed", 0), completed_total=completed_total.get(name, 0),
            latency_ms=max(0, int((now - oldest).total_seconds() * 1000)) if oldest else 0,
        ))
    return QueueSample.objects.bulk_create(samples)


def prune_samples(older_than: timedelta = timedelta(days=2)) -> int:
    """Delete samples past the longest chart window; returns how many."""
    deleted, _ = QueueSample.objects.filter(taken_at__lt=timezone.now() - older_than).delete()
    return deleted
