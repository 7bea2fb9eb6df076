"""What an attempt's end in Redis means for its row: the write intent for each RQ status.

Shared by the worker's hooks (jobs.worker) and the clock's repairs (jobs.reconcile), so both
make the same write from the same status.
"""

from __future__ import annotations

from rq.job import JobStatus

from .models import BackgroundTaskRecord, intents
from .values import capped_result, failure_text, parse_exc_string


def outcome_intent(job_id, execution_id: str | None, status: JobStatus | None, *, exc_string: str = "",
                   result=None, timeout: int | None = None, retry_at=None, finished_at=None,
                   started_at=None) -> intents.End | None:
    """The write intent for the status Redis holds at an attempt's end (None for a status that ends nothing)."""
    if status == JobStatus.FINISHED:
        return intents.Complete(job_id, execution_id, result=capped_result(result), finished_at=finished_at,
                                started_at=started_at)
    if status in (JobStatus.STOPPED, JobStatus.CANCELED):
        reason = "stopped by an operator" if status == JobStatus.STOPPED else "cancelled"
        return intents.Stop(job_id, execution_id, error_message=reason, finished_at=finished_at)
    tail = failure_text(exc_string or "")
    error_type, message = parse_exc_string(tail, timeout)
    if status in (JobStatus.FAILED, JobStatus.QUEUED, JobStatus.SCHEDULED):
        return intents.Fail(job_id, execution_id, error_type=error_type, error_message=message, traceback=tail,
                            finished_at=finished_at, retry=status != JobStatus.FAILED, retry_at=retry_at)
    return None


def apply_status(record: BackgroundTaskRecord, status: JobStatus | None, *, exc_string: str = "",
                 result=None, timeout: int | None = None, retry_at=None, finished_at=None,
                 started_at=None, execution_id: str | None = None) -> bool:
    """Map the status Redis holds for a job onto its row. Shared by the hooks and the reconciler."""
    intent = outcome_intent(record.pk, execution_id, status, exc_string=exc_string, result=result, timeout=timeout,
                            retry_at=retry_at, finished_at=finished_at, started_at=started_at)
    return intent.apply() if intent is not None else False
