"""One-statement transitions for PostgreSQL, the path every job takes twice.

A worker records each job's start and end. Through the ORM that is a SELECT ... FOR UPDATE,
an UPDATE and an INSERT, or two UPDATEs, each inside BEGIN ... COMMIT: about a dozen round
trips per job, which cost more than running a no-op job (bench/worker_overhead.py). Here
each becomes one statement, made atomic by PostgreSQL itself (data-modifying CTEs run as
one statement, on one snapshot, under the row lock the UPDATE takes).

Each statement also relaxes durability for itself only: `SET LOCAL synchronous_commit TO
OFF` sent in the same query string, which PostgreSQL runs as one implicit transaction, so
a job's bookkeeping does not wait for a WAL flush. If the database crashes before such a
write is durable, the reconciler rewrites it from what Redis holds.

A start and its completion that reach the writer together (the job was shorter than the
writer's linger) are one statement as well (`open_attempt(closes=True)`): the row is written once, in its
final state, instead of twice, which halves PostgreSQL's index work per short job.

Only the common case takes this path. Whenever the statement changes no row (a cancel is
pending, the state does not allow it, a repeat, no attempt is open), the model's ORM method
decides, exactly as on other databases; the models stay the one home of the rules.

A worker's RowWriter (jobs.writer) sends several transitions in one round trip: it calls the
model methods inside `collecting()`, where these statements are gathered instead of run and
report the common case; `run_collected()` sends them as one query string; a transition
whose statement did not end in the common case is called again inside `replaying()`, where
its statement returns what it really returned, so the model method goes on exactly as if it
had run it alone. A batch goes through psycopg's pipeline mode as prepared statements: the
same few shapes recur for every job, and planning them was most of their server time.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache

import psycopg
from django.db import connection

RECORDS = "jobs_backgroundtaskrecord"
ATTEMPTS = "jobs_taskattempt"

RELAXED = "SET LOCAL synchronous_commit TO OFF; "


def enabled() -> bool:
    return connection.vendor == "postgresql"


def open_attempt(record, fields: dict, *, closes: bool = False, execution_id: str, worker_name: str,
                 hostname: str, pid: int | None, started_at: datetime) -> int | None:
    """pending/running (not this execution already) → `fields` plus a new attempt, in one
    statement: an attempt left running is marked lost, and the new one goes in running, or, if
    it `closes` (a start and its completion written together, only while no cancel is pending),
    already completed. The new attempt's number, or None if it changed nothing."""
    model = type(record)
    params = {f"f_{name}": model._meta.get_field(name).get_db_prep_save(value, connection)
              for name, value in fields.items()}
    params.update(id=record.pk, execution_id=execution_id, worker_name=worker_name, hostname=hostname, pid=pid,
                  started_at=started_at)
    if closes:
        params["finished_at"] = fields["finished_at"]
    row = _run(_open_sql(model, tuple(fields), closes), params, assumed=(0,), settled=lambda row: row is not None)
    return row[0] if row else None


@lru_cache(maxsize=4)
def _open_sql(model, field_names: tuple[str, ...], closes: bool) -> str:
    quote = connection.ops.quote_name
    columns = "".join(f", {quote(model._meta.get_field(name).column)} = %(f_{name})s" for name in field_names)
    # A start goes ahead while a cancel is pending (the close that follows settles the cancel);
    # a start that also closes does not: the ORM path writes how that cancel ended.
    unless_cancelling = " AND cancel_requested_at IS NULL" if closes else ""
    return f"""
    WITH rec AS (
        UPDATE {RECORDS}
           SET attempts = attempts + 1, execution_id = %(execution_id)s, worker_name = %(worker_name)s,
               hostname = %(hostname)s, pid = %(pid)s, started_at = %(started_at)s{columns}
         WHERE id = %(id)s AND status IN ('pending', 'running') AND execution_id <> %(execution_id)s{unless_cancelling}
     RETURNING id, attempts
    ), lost AS (
        UPDATE {ATTEMPTS} SET outcome = 'lost', finished_at = %(started_at)s
          FROM rec WHERE {ATTEMPTS}.record_id = rec.id AND {ATTEMPTS}.outcome = 'running'
    )
    INSERT INTO {ATTEMPTS} (record_id, number, execution_id, started_at, finished_at, worker_name, hostname, pid,
                            outcome, error_type, error_message, traceback)
    SELECT id, attempts, %(execution_id)s, %(started_at)s, {"%(finished_at)s" if closes else "NULL"},
           %(worker_name)s, %(hostname)s, %(pid)s, '{"completed" if closes else "running"}', '', '', '' FROM rec
    RETURNING number
    """


def close_attempt(record, allowed: tuple[str, ...], fields: dict, attempt: dict) -> tuple[int, int]:
    """UPDATE the record (only if in `allowed`, no cancel is pending and an attempt is open) and
    its running attempt, in one statement; returns (records changed, attempts closed)."""
    model = type(record)
    values = [model._meta.get_field(name).get_db_prep_save(value, connection) for name, value in fields.items()]
    sql = _close_sql(model, tuple(fields), len(allowed), tuple(attempt))
    return _run(sql, [*values, record.pk, *allowed, *attempt.values()],
                assumed=(1, 1), settled=lambda row: row is not None and tuple(row) == (1, 1))


@lru_cache(maxsize=16)
def _close_sql(model, field_names: tuple[str, ...], allowed_count: int, attempt_names: tuple[str, ...]) -> str:
    # The row moves only while an attempt is open, so the two UPDATEs change both or neither
    # (a start never recorded: the ORM path counts the missed attempt). The same few shapes
    # come back for every job: build each once.
    quote = connection.ops.quote_name
    columns = ", ".join(f"{quote(model._meta.get_field(name).column)} = %s" for name in field_names)
    attempt_sets = ", ".join(f"{quote(name)} = %s" for name in attempt_names)
    return f"""
    WITH rec AS (
        UPDATE {RECORDS} SET {columns}
         WHERE id = %s AND status IN ({", ".join(["%s"] * allowed_count)}) AND cancel_requested_at IS NULL
           AND EXISTS (SELECT 1 FROM {ATTEMPTS} a WHERE a.record_id = {RECORDS}.id AND a.outcome = 'running')
     RETURNING id
    ), att AS (
        UPDATE {ATTEMPTS} SET {attempt_sets}
          FROM rec WHERE {ATTEMPTS}.record_id = rec.id AND {ATTEMPTS}.outcome = 'running'
     RETURNING 1
    )
    SELECT (SELECT count(*) FROM rec), (SELECT count(*) FROM att)
    """


@dataclass
class Statement:
    """One collected statement: its SQL and parameters, and whether a row it returns is the common case."""

    sql: str
    params: dict | list
    settled: Callable[[tuple | None], bool]


_batch = threading.local()  # per thread: .collected (a list) or .replayed (an iterator), or neither


@contextlib.contextmanager
def collecting() -> Iterator[list[Statement]]:
    """Within, on this thread, the transitions above run nothing: each appends its Statement to
    the list yielded and reports the common case to its caller."""
    _batch.collected = []
    try:
        yield _batch.collected
    finally:
        _batch.collected = None


@contextlib.contextmanager
def replaying(rows: list[tuple | None]) -> Iterator[None]:
    """Within, on this thread, the transitions above return `rows`, in order, instead of running
    (and run for real once `rows` is used up)."""
    _batch.replayed = iter(rows)
    try:
        yield
    finally:
        _batch.replayed = None


def run_collected(statements: list[Statement]) -> list[tuple | None]:
    """Run collected statements in one round trip and one transaction (all or nothing: an error
    in one raises and leaves every row as it was), durability relaxed as above. Each one's first row."""
    connection.ensure_connection()
    raw = connection.connection
    cursors = []
    # Server-side binding (not Django's client-side cursor), so that each shape is prepared
    # once per connection.
    with raw.transaction(), raw.pipeline():
        raw.execute(RELAXED.rstrip("; "))
        for statement in statements:
            cursor = psycopg.Cursor(raw)
            cursor.execute(statement.sql, statement.params, prepare=True)
            cursors.append(cursor)
    return [cursor.fetchone() for cursor in cursors]


def _run(sql: str, params, *, assumed: tuple, settled: Callable[[tuple | None], bool]):
    """Execute SET LOCAL plus one statement in one round trip; the statement's first row."""
    collected = getattr(_batch, "collected", None)
    if collected is not None:
        collected.append(Statement(sql, params, settled))
        return assumed
    replayed = getattr(_batch, "replayed", None)
    if replayed is not None:
        row = next(replayed, _batch)
        if row is not _batch:
            return row
    if not connection.in_atomic_block:
        # Inside a caller's transaction, SET LOCAL would relax the caller's commit too.
        sql = RELAXED + sql
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        if sql.startswith(RELAXED):
            cursor.cursor.nextset()
        return cursor.fetchone()
