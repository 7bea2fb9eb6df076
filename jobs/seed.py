"""Realistic synthetic history for benchmarks and demos: `manage.py jobs_seed --records N`.

About 1% failed (with tracebacks and several attempts), a few running and pending, the rest
completed, spread over several queues and functions and the last `days` days. PostgreSQL
gets COPY, other databases bulk INSERTs (jobs.copy.insert_many).
Seeded rows count as pushed, and their functions exist in jobs.demo, so a clock running
over them later does no harm.

Measured in docs/PERFORMANCE.md: into an empty table PostgreSQL loads a million rows fastest
with the secondary indexes dropped and rebuilt once at the end (its "Populating a database"
advice); the trigram index especially costs far more row by row than built in one pass.
"""

from __future__ import annotations

import random
import uuid
from contextlib import nullcontext
from datetime import datetime, timedelta

from django.db import connection, transaction
from django.utils import timezone

from .copy import insert_many
from .models import BackgroundTaskRecord, Status, TaskAttempt

FUNCTIONS = [
    ("jobs.demo.add", "default"), ("jobs.demo.echo", "default"), ("jobs.demo.noop", "low"),
    ("jobs.demo.sleep", "low"), ("jobs.demo.flaky", "high"), ("jobs.demo.long_report", "default"),
]
ERRORS = [
    ("ConnectionError", "upstream service did not answer"),
    ("ValueError", "card declined: insufficient funds"),
    ("KeyError", "'customer_id'"),
    ("JobTimeoutException", "timed out after 180 s"),
]
# Plain strings: comparing and copying an enum member a million times costs seconds.
PENDING, RUNNING, COMPLETED, FAILED = (str(s.value) for s in (Status.PENDING, Status.RUNNING, Status.COMPLETED,
                                                              Status.FAILED))
QUEUES = ["default", "high", "low"]
WORKERS = [f"worker-{n}" for n in range(1, 9)]
HOSTS = [f"app-{n}" for n in range(1, 5)]
KINDS = ["invoice", "report", "sync", "email"]
PRIORITIES = ["low", "normal", "high"]
PAUSES = [timedelta(seconds=1), timedelta(seconds=10), timedelta(seconds=60)]
TRACEBACK = """Traceback (most recent call last):
  File "/srv/app/.venv/lib/python3.11/site-packages/rq/job.py", line 1539, in _execute
    result = self.func(*self.args, **self.kwargs)
  File "/srv/app/billing/tasks.py", line {line}, in {func}
    response = client.charge(invoice_id, amount)
  File "/srv/app/billing/client.py", line 88, in charge
    raise {etype}({message!r})
{etype}: {message}
"""

RECORD_COLUMNS = [
    "id", "func_path", "args", "kwargs", "queue_name", "status", "enqueued_at", "pushed_at", "scheduled_for",
    "started_at", "finished_at", "cancel_requested_at", "updated_at", "attempts", "max_retries",
    "retry_intervals", "timeout", "worker_name", "hostname", "pid", "execution_id", "result", "duration_ms",
    "error_type", "error_message", "traceback", "progress", "progress_message",
]
ATTEMPT_COLUMNS = ["record_id", "number", "execution_id", "started_at", "finished_at", "worker_name", "hostname",
                   "pid", "outcome", "error_type", "error_message", "traceback"]


def seed_records(records: int, *, days: int = 30, failed_ratio: float = 0.01, active: int = 200,
                 seed: int | None = None, batch: int = 20_000) -> int:
    """Insert `records` synthetic records (plus their attempts); returns how many were written.

    On PostgreSQL rows go straight to COPY as tuples (no model instances); into empty tables
    the whole load is one transaction with the secondary indexes rebuilt at the end, so
    readers see all of it or none. Into tables that already hold rows, each batch commits
    on its own and the indexes stay.
    """
    rng = random.Random(seed)
    now = timezone.now()
    batches = (
        [_record(rng, i, records, now, days, failed_ratio, active) for i in range(start, min(start + batch, records))]
        for start in range(0, records, batch)
    )
    if connection.vendor == "postgresql":
        return _copy_postgresql(batches)
    written = 0
    for pairs in batches:
        with transaction.atomic():
            insert_many(BackgroundTaskRecord,
                        [BackgroundTaskRecord(**dict(zip(RECORD_COLUMNS, r))) for r, _ in pairs])
            insert_many(TaskAttempt,
                        [TaskAttempt(**dict(zip(ATTEMPT_COLUMNS, a))) for _, tries in pairs for a in tries])
        written += len(pairs)
    return written


def _copy_postgresql(batches) -> int:
    records, attempts = BackgroundTaskRecord._meta.db_table, TaskAttempt._meta.db_table
    copy_records = f"COPY {records} ({', '.join(RECORD_COLUMNS)}) FROM STDIN (FORMAT BINARY)"
    copy_attempts = f"COPY {attempts} ({', '.join(ATTEMPT_COLUMNS)}) FROM STDIN (FORMAT BINARY)"
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT EXISTS (SELECT 1 FROM {records}) OR EXISTS (SELECT 1 FROM {attempts})")
        bulk = not cursor.fetchone()[0]
        record_types, attempt_types = _types(cursor, records, RECORD_COLUMNS), _types(cursor, attempts, ATTEMPT_COLUMNS)
    written = 0
    with transaction.atomic(durable=True) if bulk else nullcontext():
        restore = _drop_indexes([records, attempts]) if bulk else []
        for pairs in batches:
            with transaction.atomic(), connection.cursor() as cursor:
                # Binary COPY: half the parsing of text on both sides (measured); jsonb columns take
                # the Python values as they are.
                with cursor.cursor.copy(copy_records) as copy:
                    copy.set_types(record_types)
                    for record, _ in pairs:
                        copy.write_row(record)
                with cursor.cursor.copy(copy_attempts) as copy:
                    copy.set_types(attempt_types)
                    for _, tries in pairs:
                        for attempt in tries:
                            copy.write_row(attempt)
            written += len(pairs)
        if restore:
            with connection.cursor() as cursor:
                # One sort per index instead of a million inserts into it.
                cursor.execute("SET LOCAL maintenance_work_mem = '512MB'")
                for statement in restore:
                    cursor.execute(statement)
    with connection.cursor() as cursor:
        cursor.execute(f"ANALYZE {records}")
        cursor.execute(f"ANALYZE {attempts}")
    return written


def _types(cursor, table: str, columns: list[str]) -> list[int]:
    """The columns' type oids, in order, for a binary COPY."""
    cursor.execute("SELECT attname, atttypid::int FROM pg_attribute WHERE attrelid = %s::regclass AND attnum > 0",
                   [table])
    types = dict(cursor.fetchall())
    return [types[column] for column in columns]


def _drop_indexes(tables: list[str]) -> list[str]:
    """Drop the tables' foreign keys and the indexes that back no constraint; returns the
    statements that restore them (indexes first, so checking a foreign key can use them)."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT i.indexrelid::regclass::text, pg_get_indexdef(i.indexrelid) FROM pg_index i"
            " WHERE i.indrelid = ANY(%s::regclass[])"
            " AND NOT EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conindid = i.indexrelid)",
            [tables])
        indexes = cursor.fetchall()
        # Django's foreign keys are deferred: a million pending checks, and no CREATE INDEX
        # while they wait. Added back at the end, each is checked by one join instead.
        cursor.execute(
            "SELECT conrelid::regclass::text, quote_ident(conname), pg_get_constraintdef(oid) FROM pg_constraint"
            " WHERE contype = 'f' AND conrelid = ANY(%s::regclass[])", [tables])
        foreign_keys = cursor.fetchall()
        for table, name, _ in foreign_keys:
            cursor.execute(f"ALTER TABLE {table} DROP CONSTRAINT {name}")
        for name, _ in indexes:
            cursor.execute(f"DROP INDEX {name}")
    return ([definition for _, definition in indexes]
            + [f"ALTER TABLE {table} ADD CONSTRAINT {name} {definition}" for table, name, definition in foreign_keys])


def _record(rng: random.Random, i: int, total: int, now: datetime, days: int, failed_ratio: float,
            active: int) -> tuple[list, list]:
    # rng.random() scaled, not randint: a third of the cost, and this runs a million times.
    rand = rng.random
    func_path, queue = FUNCTIONS[i % len(FUNCTIONS)]
    if rand() < 0.2:
        queue = QUEUES[int(rand() * 3)]
    # Oldest first, evenly spread; the newest `active` rows are still pending or running.
    enqueued_at = now - timedelta(seconds=days * 86400 * (total - i) / total)
    worker = WORKERS[int(rand() * 8)]
    host = HOSTS[int(rand() * 4)]
    record_id = uuid.UUID(int=rng.getrandbits(128), version=4)
    args = [1 + int(rand() * 100_000), KINDS[int(rand() * 4)]]
    kwargs = {"customer_id": 1 + int(rand() * 5000), "priority": PRIORITIES[int(rand() * 3)]}
    attempts: list[list] = []
    status, started_at, finished_at, result, duration_ms = COMPLETED, None, None, None, None
    error_type = error_message = traceback = ""
    tries = 1
    if i >= total - active:
        status = RUNNING if rand() < 0.3 else PENDING
        tries = 1 if status == RUNNING else 0
    elif rand() < failed_ratio:
        status = FAILED
        tries = 2 + int(rand() * 3)
        error_type, error_message = ERRORS[int(rand() * len(ERRORS))]
        traceback = TRACEBACK.format(line=10 + int(rand() * 391), func=func_path.rsplit(".", 1)[-1],
                                     etype=error_type, message=error_message)
    start = enqueued_at + timedelta(milliseconds=5 + int(rand() * 1996))
    for number in range(1, tries + 1):
        run_ms = 5 + int(rand() * 4996)
        end = start + timedelta(milliseconds=run_ms)
        last = number == tries
        if status == RUNNING:
            outcome, end = "running", None
        elif status == COMPLETED:
            outcome = "completed"
        else:
            outcome = "failed"
        failed = outcome == "failed"
        attempts.append([record_id, number, f"{rng.getrandbits(48):012x}", start, end, worker, host,
                         100 + int(rand() * 59_901), outcome, error_type if failed else "",
                         error_message if failed else "", traceback if failed else ""])
        started_at = start
        if last and end:
            finished_at, duration_ms = end, run_ms
        start = (end or start) + PAUSES[int(rand() * 3)]
    if status == COMPLETED:
        result = {"ok": True, "items": int(rand() * 501)}
    record = [
        record_id, func_path, args, kwargs, queue, status, enqueued_at, enqueued_at, None,
        started_at, finished_at, None, finished_at or enqueued_at, tries, 3 if status == FAILED else 0,
        [], 180, worker if tries else "", host if tries else "", None, "", result,
        duration_ms, error_type, error_message, traceback,
        1.0 if status == COMPLETED else None, "",
    ]
    return record, attempts
