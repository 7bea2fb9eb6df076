"""The clock process: periodic duties, each in its own try so one failing never stops the others."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from django.db import close_old_connections

from .periodic import run_due
from .prune import prune_expired
from .reconcile import reconcile_records
from .samples import prune_samples, take_samples

logger = logging.getLogger(__name__)


def duties(reconcile_every: float,
           reported: set[str] | None = None) -> list[tuple[str, float, Callable[[], str | None]]]:
    """(name, interval in seconds, function returning a line to print or None).

    `reported` is the clock's memory of the bad periodic entries it has already logged.
    """
    def reconcile() -> str | None:
        report = reconcile_records()
        return report.summary() if report.changed or report.errors else None

    def sample() -> str | None:
        take_samples()
        prune_samples()
        return None

    def prune() -> str | None:
        deleted = prune_expired()
        return f"prune: deleted {deleted} finished jobs past JOBS_RETENTION_DAYS" if deleted else None

    def periodic() -> str | None:
        return "\n".join(run_due(reported=reported)) or None

    return [("reconcile", reconcile_every, reconcile), ("sample", 60, sample), ("prune", 3600, prune),
            ("periodic", 1, periodic)]


def run_clock(*, once: bool = False, write: Callable[[str], None] = print, sleep=time.sleep,
              reconcile_every: float = 15) -> None:
    """Run each duty when due, forever (or once)."""
    reported: set[str] = set()
    due = {name: 0.0 for name, _, _ in duties(reconcile_every)}
    while True:
        for name, interval, func in duties(reconcile_every, reported):
            if time.monotonic() < due[name]:
                continue
            due[name] = time.monotonic() + interval
            close_old_connections()
            try:
                line = func()
            except Exception as exc:  # database or Redis down: log, try again next time
                logger.exception("clock duty %s failed", name)
                line = f"{name} failed: {exc.__class__.__name__}: {exc}"
            if line:
                write(line)
        if once:
            return
        sleep(1)
