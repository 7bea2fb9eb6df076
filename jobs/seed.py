"""Realistic synthetic history for benchmarks and demos: `manage.py jobs_seed --records N`.

About 1% failed (with tracebacks and several attempts), a few running and pending, the rest
completed, spread over several queues and functions and the last `days` days. PostgreSQL
gets COPY, other databases bulk INSERTs (jobs.copy.insert_many).
Seeded rows count as pushed, and their functions exist in jobs.demo, so a clock running
over them later does no harm.
"""

from __future__ import annotations

import random
import uuid
from datetime import datetime, timedelta

from django.db import transaction
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
    """Insert `records` synthetic records (plus their attempts); returns how many were written."""
    rng = random.Random(seed)
    now = timezone.now()
    written = 0
    for start in range(0, records, batch):
        rows, attempts = [], []
        for i in range(start, min(start + batch, records)):
            record, tries = _record(rng, i, records, now, days, failed_ratio, active)
            rows.append(record)
            attempts.extend(tries)
        with transaction.atomic():
            insert_many(BackgroundTaskRecord, [BackgroundTaskRecord(**dict(zip(RECORD_COLUMNS, r))) for r in rows])
            insert_many(TaskAttempt, [TaskAttempt(**dict(zip(ATTEMPT_COLUMNS, a))) for a in attempts])
        written += len(rows)
    return written


def _record(rng: random.Random, i: int, total: int, now: datetime, days: int, failed_ratio: float,
            active: int) -> tuple[list, list]:
    func_path, queue = FUNCTIONS[i % len(FUNCTIONS)]
    if rng.random() < 0.2:
        queue = rng.choice(["default", "high", "low"])
    # Oldest first, evenly spread; the newest `active` rows are still pending or running.
    enqueued_at = now - timedelta(seconds=days * 86400 * (total - i) / total)
    worker = f"worker-{rng.randint(1, 8)}"
    host = f"app-{rng.randint(1, 4)}"
    record_id = uuid.UUID(int=rng.getrandbits(128), version=4)
    args = [rng.randint(1, 100_000), rng.choice(["invoice", "report", "sync", "email"])]
    kwargs = {"customer_id": rng.randint(1, 5000), "priority": rng.choice(["low", "normal", "high"])}
    attempts: list[list] = []
    status, started_at, finished_at, result, duration_ms = Status.COMPLETED, None, None, None, None
    error_type = error_message = traceback = ""
    tries = 1
    if i >= total - active:
        status = Status.RUNNING if rng.random() < 0.3 else Status.PENDING
        tries = 1 if status == Status.RUNNING else 0
    elif rng.random() < failed_ratio:
        status = Status.FAILED
        tries = rng.randint(2, 4)
        error_type, error_message = rng.choice(ERRORS)
        traceback = TRACEBACK.format(line=rng.randint(10, 400), func=func_path.rsplit(".", 1)[-1],
                                     etype=error_type, message=error_message)
    start = enqueued_at + timedelta(milliseconds=rng.randint(5, 2000))
    for number in range(1, tries + 1):
        run_ms = rng.randint(5, 5000)
        end = start + timedelta(milliseconds=run_ms)
        last = number == tries
        if status == Status.RUNNING:
            outcome, end = "running", None
        elif status == Status.COMPLETED:
            outcome = "completed"
        else:
            outcome = "failed"
        attempts.append([record_id, number, uuid.uuid4().hex[:12], start, end, worker, host, rng.randint(100, 60000),
                         outcome, error_type if outcome == "failed" else "",
                         error_message if outcome == "failed" else "", traceback if outcome == "failed" else ""])
        started_at = start
        if last and end:
            finished_at, duration_ms = end, run_ms
        start = (end or start) + timedelta(seconds=rng.choice([1, 10, 60]))
    if status == Status.COMPLETED:
        result = {"ok": True, "items": rng.randint(0, 500)}
    record = [
        record_id, func_path, args, kwargs, queue, status, enqueued_at, enqueued_at, None,
        started_at, finished_at, None, finished_at or enqueued_at, tries, 3 if status == Status.FAILED else 0,
        [], 180, worker if tries else "", host if tries else "", None, "", result,
        duration_ms, error_type, error_message, traceback,
        1.0 if status == Status.COMPLETED else None, "",
    ]
    return record, attempts
