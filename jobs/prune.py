"""Retention: delete finished records past their age, in short batches.

Only completed, failed and cancelled rows go, judged by ``finished_at``; pending and
running rows are never touched. Attempts cascade with their record; audit entries
keep only the record's id, so they stay.
"""

from __future__ import annotations

from datetime import timedelta

from django.db import transaction
from django.utils import timezone

from .conf import jobs_setting
from .models import FINAL_STATES, BackgroundTaskRecord

BATCH_SIZE = 5000


def retention_enabled() -> bool:
    """False when JOBS_RETENTION_DAYS is None or 0: finished jobs are kept for ever."""
    days = jobs_setting("JOBS_RETENTION_DAYS")
    return days is not None and days > 0


def prune_expired() -> int:
    """The clock's duty: delete finished records older than JOBS_RETENTION_DAYS; returns how many."""
    if not retention_enabled():
        return 0
    return prune_records(timedelta(days=jobs_setting("JOBS_RETENTION_DAYS")))


def prunable(older_than: timedelta):
    """Finished records whose final state is older than `older_than`."""
    cutoff = timezone.now() - older_than
    return BackgroundTaskRecord.objects.filter(status__in=FINAL_STATES, finished_at__lt=cutoff)


def prune_records(older_than: timedelta, batch_size: int = BATCH_SIZE, dry_run: bool = False) -> int:
    """Delete finished records older than `older_than`; returns how many were (or would be) deleted.

    Each batch is its own short transaction (a list of primary keys, then one DELETE), so
    workers writing rows meanwhile never wait behind one long delete.
    """
    if batch_size < 1:
        raise ValueError("batch_size must be at least 1")
    if dry_run:
        return prunable(older_than).count()
    deleted = 0
    while True:
        pks = list(prunable(older_than).order_by().values_list("pk", flat=True)[:batch_size])
        if not pks:
            return deleted
        with transaction.atomic():
            # The status filter again: an operator may have retried a row since it was listed.
            _, per_model = prunable(older_than).filter(pk__in=pks).delete()
        deleted += per_model.get(BackgroundTaskRecord._meta.label, 0)
        if len(pks) < batch_size:
            return deleted
