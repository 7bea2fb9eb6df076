"""The queue class django-rq builds (settings.RQ["QUEUE_CLASS"]): RQ's own calls write a row.

`django_rq.enqueue`, `@django_rq.job(...).delay()`, `django_rq.get_queue(...).enqueue/enqueue_at/
enqueue_in/enqueue_many`, RQ 3.0's `Group` and `depends_on` all reach Redis through this class,
so each job has its row (jobs.adopt) from the moment RQ takes it. It stays django-rq's
commit-aware queue: inside a transaction RQ enqueues, and so records, when it commits.

Rows are written before RQ's own write to Redis, so a worker never meets a job without one;
where that order cannot be kept (enqueue_many builds its jobs inside RQ) they are written
right after, and whichever comes first, this or the worker's start, writes the row once.
A recording that fails never fails the enqueue: the worker adopts the job when it starts it.

A deferred dependent or a scheduled job has its row from its enqueue; when RQ releases it
(`_enqueue_job`, in a worker or its scheduler process) nothing is written: those processes must
not open database connections they may have inherited, and the worker's start adopts any job
that still has none.
"""

from __future__ import annotations

import logging
from datetime import datetime

from django_rq.queues import DjangoRQ
from rq.job import Job

from .adopt import record_job

logger = logging.getLogger(__name__)


def _record(job: Job, scheduled_for: datetime | None = None) -> None:
    if job.started_at is not None:
        # RQ scheduling a retry of a job that ran (in a work horse): its start wrote the row, and a
        # horse opening a database connection for nothing would cost more than the job.
        return
    try:
        record_job(job, scheduled_for=scheduled_for)
    except Exception:  # the enqueue goes on: the worker's start adopts the job
        logger.exception("could not record job %s at enqueue; its worker will adopt it", job.id)


class Queue(DjangoRQ):
    """django-rq's queue, writing each job's row as RQ enqueues, schedules or defers it."""

    def enqueue_job(self, job: Job, pipeline=None, at_front: bool = False, unique: bool = False) -> Job:
        job.origin = self.name
        _record(job)
        return super().enqueue_job(job, pipeline=pipeline, at_front=at_front, unique=unique)

    def schedule_job(self, job: Job, datetime: datetime, pipeline=None, unique: bool = False) -> Job:
        job.origin = self.name
        _record(job, scheduled_for=datetime)
        return super().schedule_job(job, datetime, pipeline=pipeline, unique=unique)

    def enqueue_many(self, job_datas, pipeline=None, group_id: str | None = None) -> list[Job]:
        jobs = super().enqueue_many(job_datas, pipeline=pipeline, group_id=group_id)
        for job in jobs:
            _record(job)
        return jobs
