"""The overview's warnings: each names a problem and links to the jobs or workers behind it."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from urllib.parse import urlencode

from django.conf import settings
from django.urls import reverse

from jobs import stats


@dataclass
class Warning:
    text: str
    href: str
    link_text: str
    links: list[tuple[str, str]] | None = None  # (label, href) of a few of the rows behind it


def jobs_url(**params) -> str:
    return f"{reverse('job_list')}?{urlencode(params)}"


def warnings(queues: list[stats.QueueStats], workers: list[stats.WorkerInfo] | None, now: datetime) -> list[Warning]:
    found = []
    fresh = [w for w in workers or [] if not w.stale]
    for queue in queues:
        if workers is not None and queue.pending and not any(queue.name in w.queues for w in fresh):
            found.append(Warning(f"Queue “{queue.name}” has {_jobs(queue.pending)} pending and no live worker.",
                                 jobs_url(queue=queue.name, state="pending"), "pending jobs"))
        if queue.paused and queue.pending:
            found.append(Warning(f"Queue “{queue.name}” is paused with {_jobs(queue.pending)} pending.",
                                 reverse("queue_list"), "queues"))
    if workers is not None:
        grace = timedelta(seconds=settings.DASHBOARD_STALE_HEARTBEAT_SECONDS)
        stuck = list(stats.running_on_stale_workers({w.name for w in fresh}, grace, now)
                     .values_list("pk", "worker_name")[:50])
        by_worker: dict[str, list] = {}
        for pk, worker in stuck:
            by_worker.setdefault(worker or "an unknown worker", []).append(pk)
        for worker, pks in by_worker.items():
            found.append(Warning(
                f"{_jobs(len(pks))} running on {worker}, whose heartbeat is stale or missing.",
                jobs_url(state="running", worker=worker), "running jobs",
                [(str(pk)[:8], reverse("job_detail", args=[pk])) for pk in pks[:5]]))
    for worker in workers or []:
        if worker.writes_behind:
            found.append(Warning(f"Worker {worker.name}'s row writes have waited {worker.writer_lag_seconds:.0f} s "
                                 "on the database: rows lag behind their jobs.", reverse("worker_list"), "workers"))
    late = timedelta(seconds=settings.DASHBOARD_OVERDUE_SECONDS)
    overdue = list(stats.overdue_scheduled(late, now).values_list("pk", flat=True)[:50])
    if overdue:
        found.append(Warning(f"{_jobs(len(overdue))}{' or more' if len(overdue) == 50 else ''} scheduled and overdue.",
                             jobs_url(state="overdue"), "overdue jobs",
                             [(str(pk)[:8], reverse("job_detail", args=[pk])) for pk in overdue[:5]]))
    return found


def _jobs(count: int) -> str:
    return f"{count} job" if count == 1 else f"{count} jobs"
