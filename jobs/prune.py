"""Retention: delete finished records past their age, in short batches.

Only completed, failed and cancelled rows go, judged by ``finished_at``; pending and
running rows are never touched. Attempts go with their record; audit entries keep only
the record's id, so they stay.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from django.db import connection, transaction
from django.utils import timezone

from .conf import jobs_setting
from .models import FINAL_STATES, BackgroundTaskRecord, TaskAttempt

# Rows per transaction. Each batch's transaction holds its rows' locks; 500 keeps it near
# 7 ms (longest under 30 ms) on a busy 2-core machine, and larger batches gain little
# throughput for longer locks (bench/prune.py, docs/PERFORMANCE.md).
BATCH_SIZE = 500


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

    Each batch is its own short transaction that locks only its own rows (skipping any row
    an operator holds) and deletes them and their attempts by primary key: plain DELETEs,
    not QuerySet.delete(), whose collector loads every row as a model first (ten times
    slower). Workers writing rows meanwhile never wait behind one long delete.
    """
    if batch_size < 1:
        raise ValueError("batch_size must be at least 1")
    if dry_run:
        return prunable(older_than).count()
    cutoff = timezone.now() - older_than
    delete = _delete_postgresql if connection.vendor == "postgresql" else _delete
    deleted = 0
    while True:
        with transaction.atomic():
            count = delete(cutoff, batch_size)
        deleted += count
        if count < batch_size:
            return deleted


def _delete(cutoff: datetime, batch_size: int) -> int:
    due = BackgroundTaskRecord.objects.filter(status__in=FINAL_STATES, finished_at__lt=cutoff).order_by()
    pks = list(due.select_for_update(skip_locked=True).values_list("pk", flat=True)[:batch_size])
    if not pks:
        return 0
    # _raw_delete: one DELETE statement, no signals, no collector (attempts are the only children).
    TaskAttempt.objects.filter(record_id__in=pks)._raw_delete(TaskAttempt.objects.db)
    # The state filter again keeps a row retried since it was listed, where rows are not locked.
    return due.filter(pk__in=pks)._raw_delete(due.db)


def _delete_postgresql(cutoff: datetime, batch_size: int) -> int:
    records, attempts = BackgroundTaskRecord._meta.db_table, TaskAttempt._meta.db_table
    with connection.cursor() as cursor:
        # A crash before the commit reaches disk only means those rows are deleted next time.
        cursor.execute("SET LOCAL synchronous_commit = off")
        # Records and their attempts in one statement: no list of ids travels back and forth,
        # and no foreign-key trigger fires per row (the attempts' key has no constraint).
        # `= ANY(ARRAY(...))` makes both DELETEs primary-key lookups; `IN (SELECT ...)` let the
        # planner hash-join against a scan of the whole table (150 against 19 ms a batch).
        cursor.execute(
            f"WITH gone AS (DELETE FROM {records} WHERE id = ANY(ARRAY(SELECT id FROM {records}"
            f" WHERE status = ANY(%s) AND finished_at < %s LIMIT %s FOR UPDATE SKIP LOCKED)) RETURNING id),"
            f" attempts AS (DELETE FROM {attempts} WHERE record_id = ANY(ARRAY(SELECT id FROM gone)))"
            f" SELECT count(*) FROM gone",
            [list(FINAL_STATES), cutoff, batch_size])
        return cursor.fetchone()[0]
