"""One-statement transitions for PostgreSQL, the path every job takes twice.

A worker records each job's start and end. Through the ORM that is a SELECT ... FOR UPDATE,
an UPDATE and an INSERT, or two UPDATEs, each inside BEGIN ... COMMIT: about a dozen round
trips per job, which cost more than running a no-op job (bench/worker_overhead.py). Here
each becomes one statement, made atomic by PostgreSQL itself (data-modifying CTEs run as
one statement, on one snapshot, under the row lock the UPDATE takes).

The statements hold no rules of their own: each is generated from a transition of the table
(jobs.models.transitions: its from-states, its fence, its fields), and covers only the
common case (the record is where the table allows, on this very execution, no cancel
pending). When a statement changes nothing, the write intent (jobs.models.intents) runs its
ORM path, which decides every other case exactly as on other databases.

Each statement also relaxes durability for itself only: `SET LOCAL synchronous_commit TO
OFF` sent in the same query string, which PostgreSQL runs as one implicit transaction, so
a job's bookkeeping does not wait for a WAL flush. If the database crashes before such a
write is durable, the reconciler rewrites it from what Redis holds.

A worker's RowWriter (jobs.writer) sends several statements in one round trip
(`run_statements`), through psycopg's pipeline mode as prepared statements: the same few
shapes recur for every job, and planning them was most of their server time.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache

import psycopg
from django.db import connection
from django.utils import timezone

from .models.transitions import TABLE

RECORDS = "jobs_backgroundtaskrecord"
ATTEMPTS = "jobs_taskattempt"

RELAXED = "SET LOCAL synchronous_commit TO OFF; "

_switch = threading.local()  # tests turn the fast path off to compare it with the ORM path


def enabled() -> bool:
    return connection.vendor == "postgresql" and not getattr(_switch, "off", False)


def set_enabled(on: bool) -> None:
    """Turn the fast path off (or back on) for this thread: the transition matrix compares both."""
    _switch.off = not on


@dataclass
class Statement:
    """One statement: its SQL and parameters, and whether the row it returns is the common case."""

    sql: str
    params: list
    settled: Callable[[tuple | None], bool]


def _prep(model, fields: dict) -> list:
    return [model._meta.get_field(name).get_db_prep_save(value, connection) for name, value in fields.items()]


def open_statement(model, record_id, event: str, fields: dict, start: dict, attempt: dict) -> Statement:
    """`event` (a start) as one statement: the record moves to `fields` under the table's guard
    (and, unless the start is the same execution's again, only while no attempt of it exists),
    an attempt left running is marked lost, and the new attempt goes in with `start` and
    `attempt` (running, or already closed when a start and its completion are written together;
    that only while no cancel is pending). Returns the new attempt's number, or no row."""
    closes = attempt["outcome"] != "running"
    fields = {**fields, "updated_at": timezone.now()}
    sql = _open_sql(model, event, tuple(fields), tuple(start), tuple(attempt), closes)
    params = [*start.values(), *_prep(model, fields), record_id, start["execution_id"], start["execution_id"],
              start["started_at"], *start.values(), *attempt.values()]
    return Statement(sql, params, settled=lambda row: row is not None)


@lru_cache(maxsize=8)
def _open_sql(model, event: str, field_names: tuple[str, ...], start_names: tuple[str, ...],
              attempt_names: tuple[str, ...], closes: bool) -> str:
    quote = connection.ops.quote_name
    transition = TABLE[event]
    sets = "".join(f", {quote(model._meta.get_field(n).column)} = %s" for n in (*start_names, *field_names))
    # A start that also closes leaves a pending cancel to the ORM path, which audits how it ended.
    unless_cancelling = " AND cancel_requested_at IS NULL" if closes else ""
    columns = ", ".join(quote(n) for n in (*start_names, *attempt_names))
    placeholders = ", ".join(["%s"] * (len(start_names) + len(attempt_names)))
    return f"""
    WITH rec AS (
        UPDATE {RECORDS} SET attempts = attempts + 1{sets}
         WHERE id = %s AND {transition.status_sql()} AND execution_id <> %s{unless_cancelling}
           AND NOT EXISTS (SELECT 1 FROM {ATTEMPTS} a WHERE a.record_id = {RECORDS}.id AND a.execution_id = %s)
     RETURNING id, attempts
    ), lost AS (
        UPDATE {ATTEMPTS} SET outcome = 'lost', finished_at = %s
          FROM rec WHERE {ATTEMPTS}.record_id = rec.id AND {ATTEMPTS}.outcome = 'running'
    )
    INSERT INTO {ATTEMPTS} (record_id, number, {columns})
    SELECT id, attempts, {placeholders} FROM rec
    RETURNING number
    """


def close_statement(model, record_id, event: str, execution_id: str, fields: dict, attempt: dict) -> Statement:
    """`event` (an end) as one statement: the record moves to `fields` only while it is in the
    table's from-states, on `execution_id` (the fence), with no cancel pending and that attempt
    still running; the attempt closes with it. Returns (records changed, attempts closed)."""
    fields = {**fields, "updated_at": timezone.now()}
    sql = _close_sql(model, event, tuple(fields), tuple(attempt))
    params = [*_prep(model, fields), record_id, execution_id, execution_id, *attempt.values(), execution_id]
    return Statement(sql, params, settled=lambda row: row is not None and tuple(row) == (1, 1))


@lru_cache(maxsize=16)
def _close_sql(model, event: str, field_names: tuple[str, ...], attempt_names: tuple[str, ...]) -> str:
    # The row moves only while its attempt is open, so the two UPDATEs change both or neither.
    quote = connection.ops.quote_name
    transition = TABLE[event]
    columns = ", ".join(f"{quote(model._meta.get_field(name).column)} = %s" for name in field_names)
    attempt_sets = ", ".join(f"{quote(name)} = %s" for name in attempt_names)
    return f"""
    WITH rec AS (
        UPDATE {RECORDS} SET {columns}
         WHERE id = %s AND {transition.status_sql()} AND execution_id = %s AND cancel_requested_at IS NULL
           AND EXISTS (SELECT 1 FROM {ATTEMPTS} a WHERE a.record_id = {RECORDS}.id AND a.execution_id = %s
                       AND a.outcome = 'running')
     RETURNING id
    ), att AS (
        UPDATE {ATTEMPTS} SET {attempt_sets}
          FROM rec WHERE {ATTEMPTS}.record_id = rec.id AND {ATTEMPTS}.execution_id = %s
                     AND {ATTEMPTS}.outcome = 'running'
     RETURNING 1
    )
    SELECT (SELECT count(*) FROM rec), (SELECT count(*) FROM att)
    """


def run_statements(statements: list[Statement]) -> list[tuple | None]:
    """Run statements in one round trip and one transaction (all or nothing: an error in one
    raises and leaves every row as it was), durability relaxed as above. Each one's first row."""
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


def run_one(statement: Statement) -> tuple | None:
    """Execute SET LOCAL plus one statement in one round trip; the statement's first row."""
    sql = statement.sql
    if not connection.in_atomic_block:
        # Inside a caller's transaction, SET LOCAL would relax the caller's commit too.
        sql = RELAXED + sql
    with connection.cursor() as cursor:
        cursor.execute(sql, statement.params)
        if sql.startswith(RELAXED):
            cursor.cursor.nextset()
        return cursor.fetchone()
