"""Unique jobs: at most one pending or running job per unique_key (enqueue(unique_key=...)).

The database decides, through the partial unique index record_unique_key_active, so it holds
across processes and hosts; this module only turns the index's refusal into "here is the job
that holds the key".
"""

from __future__ import annotations

from django.db import IntegrityError, transaction

from .api import ActionNotAllowed, _push_on_commit
from .copy import insert_one
from .models import BackgroundTaskRecord, Status


def save_unique(record: BackgroundTaskRecord) -> BackgroundTaskRecord:
    """INSERT a record that has a unique_key, or return the active record that holds the key.

    The partial unique index (record_unique_key_active) decides, so it holds across processes:
    on PostgreSQL a second INSERT waits for the first one's transaction and fails once it
    commits. The INSERT runs in a savepoint, so its IntegrityError never aborts the caller's
    transaction. If the holder ended between the failed INSERT and the read, the key is free:
    try again.
    """
    for _ in range(5):
        try:
            with transaction.atomic():
                record.pushed_at = record.enqueued_at
                insert_one(record)
        except IntegrityError:
            holder = BackgroundTaskRecord.objects.filter(
                unique_key=record.unique_key, status__in=(Status.PENDING, Status.RUNNING)).first()
            if holder is not None:
                return holder
            continue
        _push_on_commit([record])
        return record
    raise ActionNotAllowed(f"unique key {record.unique_key!r} is taken and freed too fast to enqueue; try again")
