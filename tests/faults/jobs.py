"""Job functions for the fault suite. Each appends one line per execution to the file
named by FAULTS_EXECUTION_LOG before doing anything else, so a test can compare how
often a function really ran with the attempts its row counts."""

from __future__ import annotations

import os
import time

from rq import get_current_job


def _log_execution() -> str:
    job = get_current_job()
    job_id = job.id if job else "-"
    line = f"{job_id} {os.getpid()} {time.time():.3f}\n".encode()
    fd = os.open(os.environ["FAULTS_EXECUTION_LOG"], os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, line)  # one small O_APPEND write: lines from concurrent horses never interleave
    finally:
        os.close(fd)
    return job_id


def _executions_of(job_id: str) -> int:
    prefix = f"{job_id} "
    with open(os.environ["FAULTS_EXECUTION_LOG"]) as handle:
        return sum(1 for line in handle if line.startswith(prefix))


def work(seconds: float = 0.0, fail_first: int = 0) -> int:
    """Sleep `seconds`; raise on the first `fail_first` executions of this job (a large
    number: always). Returns which execution this was."""
    job_id = _log_execution()
    execution = _executions_of(job_id)
    time.sleep(seconds)
    if execution <= fail_first:
        raise RuntimeError(f"execution {execution} fails on purpose")
    return execution
