"""A statement timeout toward PostgreSQL for the engine's own bookkeeping connections.

Every process connects with a connect timeout, TCP keepalives and a TCP user timeout
(dashboard/settings.py's DATABASES), so a server gone silent (packets dropped, not refused)
costs seconds, not minutes. A statement timeout applies only where the engine alone talks
to the database: a worker's row-writer thread and the clock process. A job's own queries
(in its work horse) keep the database's default: a long report query is the job's business.
"""

from __future__ import annotations

import threading

from django.db.backends.signals import connection_created
from django.dispatch import receiver

from .conf import jobs_setting

_local = threading.local()
_process = {"bounded": False}


def bound_this_thread() -> None:
    """Give the connections this thread opens from now on the statement timeout."""
    _local.bounded = True


def bound_this_process(bounded: bool = True) -> None:
    """Give every connection this process opens from now on the statement timeout (the clock)."""
    _process["bounded"] = bounded


def statement_timeout_ms() -> int:
    """JOBS_DB_STATEMENT_TIMEOUT_MS; 0 or less: none."""
    return int(jobs_setting("JOBS_DB_STATEMENT_TIMEOUT_MS") or 0)


@receiver(connection_created, dispatch_uid="jobs.dbtimeouts")
def _set_statement_timeout(sender, connection, **kwargs) -> None:
    if connection.vendor != "postgresql" or not (_process["bounded"] or getattr(_local, "bounded", False)):
        return
    milliseconds = statement_timeout_ms()
    if milliseconds > 0:
        with connection.cursor() as cursor:  # autocommit is on here: the setting holds for the session
            cursor.execute(f"SET statement_timeout = {milliseconds}")
