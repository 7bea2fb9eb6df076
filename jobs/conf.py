"""The engine's settings, each with a default, so the jobs app runs in any Django project.

dashboard/settings.py sets them all from the environment; a project that embeds the app
sets only the ones it wants to change (see docs/EMBEDDING.md).
"""

from __future__ import annotations

from typing import Any

from django.conf import settings

DEFAULTS: dict[str, Any] = {
    # Seconds a job may run when its queue's RQ_QUEUES entry has no DEFAULT_TIMEOUT.
    "JOBS_DEFAULT_TIMEOUT": 180,
    # How often a busy worker refreshes its heartbeat (RQ's job_monitoring_interval).
    "JOBS_HEARTBEAT_SECONDS": 10,
    # A running job whose worker has not beaten for this long is "worker lost".
    "JOBS_WORKER_LOST_AFTER_SECONDS": 30,
    # A pending row this old that Redis does not hold is pushed again.
    "JOBS_PENDING_GRACE_SECONDS": 10,
    # A cancel of a running job that has not landed after this long is sent again.
    "JOBS_CANCEL_RESEND_SECONDS": 10,
    # How long RQ keeps finished jobs: long enough for the reconciler to read them.
    "JOBS_RESULT_TTL": 3600,
    # Results larger than this (as JSON) are stored as a truncated preview.
    "JOBS_RESULT_MAX_BYTES": 65536,
    # Arguments larger than this (as JSON) are refused at enqueue.
    "JOBS_ARGS_MAX_BYTES": 1024 * 1024,
    # Tracebacks are stored up to this many characters (the tail, where the error is).
    "JOBS_TRACEBACK_MAX_CHARS": 20000,
    # On a warm shutdown (SIGTERM), a job still running after this long is stopped and recorded.
    "JOBS_SHUTDOWN_GRACE_SECONDS": 25,
    # At-most-once by default: a job whose worker shut down or was lost fails (WorkerShutdown,
    # WorkerLost) instead of going back to its queue. enqueue(at_most_once=...) decides per job.
    "JOBS_AT_MOST_ONCE": False,
    # A job requeued this many times after an interruption or a lost worker fails the next time
    # (so a job that kills its worker cannot loop).
    "JOBS_MAX_INTERRUPTIONS": 3,
    # The clock's reconcile interval.
    "JOBS_RECONCILE_SECONDS": 15,
    # Finished jobs older than this many days are deleted by the clock (None or 0: never).
    "JOBS_RETENTION_DAYS": 14,
    # Bearer token that opens /metrics to a scraper; empty: only sessions with the jobs' view permission.
    "JOBS_METRICS_TOKEN": "",
    # Toward PostgreSQL: the statement timeout of a worker's row writer and of the clock (0: none).
    "JOBS_DB_STATEMENT_TIMEOUT_MS": 30000,
    # A row write waiting on the database longer than this is logged, and the overview warns.
    "JOBS_WRITER_STALL_SECONDS": 10,
    # backoff="exponential" (jobs.retry_policy): the n-th retry waits min(base × factor^(n-1), max)
    # seconds plus up to jitter × that; enqueue's backoff_base/_factor/_max/_jitter override each.
    "JOBS_BACKOFF_BASE_SECONDS": 2,
    "JOBS_BACKOFF_FACTOR": 2,
    "JOBS_BACKOFF_MAX_SECONDS": 3600,
    "JOBS_BACKOFF_JITTER": 0.1,
}


def jobs_setting(name: str) -> Any:
    """The project's value of a JOBS_* setting, or the engine's default when it sets none."""
    return getattr(settings, name, DEFAULTS[name])
