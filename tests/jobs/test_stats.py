"""Counts stay exact while no poll counts the whole history."""

from datetime import timedelta

import pytest
from django.db.models import Count
from django.utils import timezone

from jobs import stats
from jobs.models import BackgroundTaskRecord, QueueSample, Status
from jobs.samples import take_samples

pytestmark = pytest.mark.django_db


def make(status, queue="default", **fields):
    now = timezone.now()
    finished = now if status in (Status.COMPLETED, Status.FAILED, Status.CANCELLED) else None
    return BackgroundTaskRecord.objects.create(func_path="jobs.demo.noop", queue_name=queue, status=status,
                                               finished_at=fields.pop("finished_at", finished), **fields)


def exact():
    rows = BackgroundTaskRecord.objects.order_by().values("queue_name", "status").annotate(n=Count("pk"))
    return {(r["queue_name"], r["status"]): r["n"] for r in rows}


def shown(queues):
    found = {}
    for queue in queues:
        for state in ("running", "completed", "failed", "cancelled"):
            if getattr(queue, state):
                found[(queue.name, state)] = getattr(queue, state)
        if queue.pending or queue.scheduled:
            found[(queue.name, "pending")] = queue.pending + queue.scheduled
    return found


def test_counts_without_a_sample_are_exact():
    for status in Status.values:
        make(status, "high")
    make(Status.COMPLETED, "low")
    assert shown(stats.queue_stats()) == exact()


def test_completed_counts_come_from_the_latest_sample_plus_completions_since():
    for _ in range(3):
        make(Status.COMPLETED, "default", finished_at=timezone.now() - timedelta(seconds=30))
    make(Status.FAILED, "default")
    take_samples()
    assert QueueSample.objects.get(queue_name="default").completed_total == 3
    for _ in range(2):  # completed after the sample
        make(Status.COMPLETED, "default", finished_at=timezone.now() + timedelta(seconds=1))
    make(Status.COMPLETED, "low", finished_at=timezone.now() + timedelta(seconds=1))
    make(Status.PENDING, "low")
    assert shown(stats.queue_stats()) == exact()


def test_a_failed_job_retried_leaves_the_failed_count_at_once():
    record = make(Status.FAILED, "default")
    take_samples()
    BackgroundTaskRecord.objects.filter(pk=record.pk).update(status=Status.PENDING)
    counts = stats.state_counts(stats.queue_stats())
    assert counts["failed"] == 0 and counts["pending"] == 1


def test_a_stale_sample_is_ignored():
    make(Status.COMPLETED, "default")
    QueueSample.objects.create(taken_at=timezone.now() - timedelta(hours=1), queue_name="default",
                               completed_total=1000)
    assert stats.completed_counts() == {"default": 1}
