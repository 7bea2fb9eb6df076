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

Only the common case takes this path. Whenever the statement changes no row (a cancel is
pending, the state does not allow it, a repeat), the model's ORM method decides, exactly as
on other databases; the models stay the one home of the rules.
"""

from __future__ import annotations

from datetime import datetime

from django.db import connection

RECORDS = "jobs_backgroundtaskrecord"
ATTEMPTS = "jobs_taskattempt"

RELAXED = "SET LOCAL synchronous_commit TO OFF; "

START = f"""
WITH rec AS (
    UPDATE {RECORDS}
       SET status = 'running', attempts = attempts + 1, execution_id = %(execution_id)s,
           worker_name = %(worker_name)s, hostname = %(hostname)s, pid = %(pid)s,
           started_at = %(started_at)s, finished_at = NULL, scheduled_for = NULL, updated_at = %(now)s
     WHERE id = %(id)s AND status IN ('pending', 'running') AND execution_id <> %(execution_id)s
 RETURNING id, attempts
), lost AS (
    UPDATE {ATTEMPTS} SET outcome = 'lost', finished_at = %(started_at)s
      FROM rec WHERE {ATTEMPTS}.record_id = rec.id AND {ATTEMPTS}.outcome = 'running'
)
INSERT INTO {ATTEMPTS} (record_id, number, execution_id, started_at, finished_at, worker_name, hostname, pid,
                        outcome, error_type, error_message, traceback)
SELECT id, attempts, %(execution_id)s, %(started_at)s, NULL, %(worker_name)s, %(hostname)s, %(pid)s,
       'running', '', '', '' FROM rec
RETURNING number
"""


def enabled() -> bool:
    return connection.vendor == "postgresql"


def start_attempt(record, *, execution_id: str, worker_name: str, hostname: str, pid: int | None,
                  started_at: datetime, now: datetime) -> int | None:
    """pending/running → running plus a new attempt row, in one statement; the attempt's number, or None."""
    row = _run(RELAXED + START, {"id": record.pk, "execution_id": execution_id, "worker_name": worker_name,
                                 "hostname": hostname, "pid": pid, "started_at": started_at, "now": now})
    return row[0] if row else None


def close_attempt(record, allowed: tuple[str, ...], fields: dict, attempt: dict) -> tuple[int, int]:
    """UPDATE the record (only if in `allowed` and no cancel is pending) and its running attempt,
    in one statement; returns (records changed, attempts closed)."""
    model = type(record)
    columns, values = [], []
    for name, value in fields.items():
        field = model._meta.get_field(name)
        columns.append(f"{connection.ops.quote_name(field.column)} = %s")
        values.append(field.get_db_prep_save(value, connection))
    attempt_sets = ", ".join(f"{connection.ops.quote_name(name)} = %s" for name in attempt)
    sql = f"""
    WITH rec AS (
        UPDATE {RECORDS} SET {", ".join(columns)}
         WHERE id = %s AND status IN ({", ".join(["%s"] * len(allowed))}) AND cancel_requested_at IS NULL
     RETURNING id
    ), att AS (
        UPDATE {ATTEMPTS} SET {attempt_sets}
          FROM rec WHERE {ATTEMPTS}.record_id = rec.id AND {ATTEMPTS}.outcome = 'running'
     RETURNING 1
    )
    SELECT (SELECT count(*) FROM rec), (SELECT count(*) FROM att)
    """
    return _run(RELAXED + sql, [*values, record.pk, *allowed, *attempt.values()])


def _run(sql: str, params):
    """Execute SET LOCAL plus one statement in one round trip; the statement's first row."""
    if connection.in_atomic_block:
        # Inside a caller's transaction, SET LOCAL would relax the caller's commit too.
        sql = sql.removeprefix(RELAXED)
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        if sql.startswith(RELAXED):
            cursor.cursor.nextset()
        return cursor.fetchone()
