"""What `manage.py rqworker` runs around each job: record transitions and progress.

settings.RQ["WORKER_CLASS"] names ``jobs.worker.Worker``, so plain ``rqworker`` keeps
the rows in step. Every hook calls RQ first, so RQ's Redis transaction has committed
before the row is written, then maps the status Redis now holds onto the row. The
writes themselves go to a RowWriter (jobs.writer), which performs them in order on a
thread of its own, so jobs do not wait for the database. Hook code never raises into RQ:
a database hiccup is logged and the reconciler repairs the row later, instead of turning
a good job into a failed one.
"""

from __future__ import annotations

import functools
import json
import logging
import math
import os
import re
import socket
import threading
import time
from datetime import timedelta

import rq
from django.db import close_old_connections, connections
from django.utils import timezone
from rq.exceptions import NoSuchJobError
from rq.job import Job, JobStatus, get_current_job
from rq.results import Result
from rq.worker import WorkerStatus

from .conf import jobs_setting
from .connection import REDIS_ERRORS
from .models import BackgroundTaskRecord
from .writer import RowWriter, Write, write_safely

logger = logging.getLogger(__name__)
HOSTNAME = socket.gethostname()
PAUSED_KEY = "jobdeck:paused-queues"
# Names of the workers an operator quieted: each finishes its job and takes no new one.
QUIET_KEY = "jobdeck:quiet-workers"
# The longest single blocking wait for a job (a resume is seen within it).
PAUSE_POLL_SECONDS = 5
# How often a worker with no queue open to it (all paused, or quiet) looks again.
NOTHING_OPEN_POLL_SECONDS = 1
# How long a worker trusts its last read of the paused queues (one Redis call less per job).
PAUSE_CACHE_SECONDS = 1
# How long an idle worker waits before it tries an unreachable Redis again.
REDIS_RETRY_SECONDS = 1
FAILURE_KEY = "jobdeck:failure:{}"
# Connections a work horse inherited and must neither use nor close (see Worker.main_work_horse).
_INHERITED: list = []

_EXCEPTION_LINE = re.compile(r"^([A-Za-z_][\w.]*(?:Error|Exception|Exit|Interrupt|Warning|[A-Z]\w*)):?\s?(.*)$")


def parse_exc_string(exc_string: str, timeout: int | None = None) -> tuple[str, str]:
    """(error_type, error_message) from the text RQ records for a failure."""
    text = (exc_string or "").strip()
    if not text:
        return "UnknownError", "the job failed without an error message"
    if "JobTimeoutException" in text:
        return "JobTimeoutException", f"timed out after {timeout} s" if timeout else "timed out"
    if text.startswith("Work-horse terminated unexpectedly"):
        return "WorkHorseKilled", text.rstrip("; ")
    if text.startswith("Job stopped by user"):
        return "Stopped", "stopped by an operator"
    lines = text.splitlines()
    # The exception line is the last unindented line after the traceback's frames.
    for index in range(len(lines) - 1, -1, -1):
        line = lines[index]
        if line and not line[0].isspace() and not line.startswith("Traceback"):
            match = _EXCEPTION_LINE.match(line)
            if match and (index == 0 or lines[index - 1].startswith("    ") or lines[index - 1].startswith("  File")
                          or index == len(lines) - 1):
                message = "\n".join([match.group(2), *lines[index + 1:]]).strip()
                return match.group(1).rsplit(".", 1)[-1], message
    return "Error", lines[-1][:1000]


def storable_text(text: str) -> str:
    """`text` as any database column can hold it: NUL and lone surrogates become U+FFFD."""
    if "\x00" in text or not text.isascii():
        text = text.encode("utf-8", "surrogatepass").decode("utf-8", "replace").replace("\x00", "\ufffd")
    return text


def capped_result(value):
    """The return value as stored JSON, or a truncated text preview if too large or not JSON."""
    limit = jobs_setting("JOBS_RESULT_MAX_BYTES")
    try:
        text = json.dumps(value, allow_nan=False, ensure_ascii=False)
    except (TypeError, ValueError, RecursionError):
        return {"repr": storable_text(repr(value)[:limit]), "note": "not JSON-serializable"}
    if len(text) > limit:
        return {"preview": storable_text(text[:limit]), "note": f"truncated from {len(text)} bytes"}
    if "\\u0000" in text or not text.isascii():
        # PostgreSQL's jsonb holds neither NUL nor a lone surrogate: store the nearest it can.
        return json.loads(storable_text(text).replace("\\u0000", "\\ufffd"))
    return value


def record_for(job: Job) -> BackgroundTaskRecord:
    """An unsaved handle on the job's row: transitions need only its primary key."""
    return BackgroundTaskRecord(pk=job.id)


def apply_status(record: BackgroundTaskRecord, status: JobStatus | None, *, exc_string: str = "",
                 result=None, timeout: int | None = None, retry_at=None, finished_at=None,
                 started_at=None) -> bool:
    """Map the status Redis holds for a job onto its row. Shared by the hooks and the reconciler."""
    exc_string = storable_text(exc_string or "")
    tail = exc_string[-jobs_setting("JOBS_TRACEBACK_MAX_CHARS"):]
    if status == JobStatus.FINISHED:
        return record.mark_completed(result=capped_result(result), finished_at=finished_at,
                                     started_at=started_at)
    if status in (JobStatus.STOPPED, JobStatus.CANCELED):
        return record.mark_cancelled(reason="stopped by an operator" if status == JobStatus.STOPPED
                                     else "cancelled", finished_at=finished_at)
    error_type, message = parse_exc_string(exc_string, timeout)
    if status == JobStatus.FAILED:
        return record.mark_failed(error_type=error_type, error_message=message, traceback=tail,
                                  finished_at=finished_at)
    if status in (JobStatus.QUEUED, JobStatus.SCHEDULED):
        return record.mark_retrying(error_type=error_type, error_message=message, traceback=tail,
                                    scheduled_for=retry_at, finished_at=finished_at)
    return False


# What the writer thread calls: the row handle is built there, not on the worker's own path.
def _mark_running_by_id(job_id: str, **fields) -> bool:
    return BackgroundTaskRecord(pk=job_id).mark_running(**fields)


def _apply_status_by_id(job_id: str, status: JobStatus | None, **outcome) -> bool:
    return apply_status(BackgroundTaskRecord(pk=job_id), status, **outcome)


def _mark_ran_by_id(job_id: str, start: dict, completion: dict) -> bool:
    return BackgroundTaskRecord(pk=job_id).mark_ran(start, completion)


def _join_start_and_completion(start: Write, end: Write) -> Write | None:
    """A job's start and its completion in one batch, as one write (mark_ran); None for any
    other pair (a failure, a retry: those keep their own writes)."""
    call = end.call
    if not (isinstance(call, functools.partial) and call.func is _apply_status_by_id
            and call.args[1:] == (JobStatus.FINISHED,) and call.keywords.get("started_at") is not None):
        return None
    completion = {"result": capped_result(call.keywords.get("result")), "finished_at": call.keywords["finished_at"],
                  "started_at": call.keywords["started_at"]}
    joined = functools.partial(_mark_ran_by_id, start.job_id, start.call.keywords, completion)
    return Write("start and outcome", start.job_id, joined, batchable=True)


class TrackingMixin:
    """Keeps each job's BackgroundTaskRecord in step with RQ, attempt by attempt.

    The worker's main process decides each transition from what Redis holds and hands
    it to its RowWriter (jobs.writer: first in, first out, on a connection of its own,
    flushed at exit and after every failed attempt). The forking Worker hands over the
    start right after the fork and the outcome once the work horse has exited; a horse
    writes no transition (a new PostgreSQL connection per job would cost more than the
    fork) and passes what only it knows, a failure's traceback, through Redis.
    SimpleWorker runs jobs in-process and hands over at each hook.
    """

    forks = True

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("job_monitoring_interval", jobs_setting("JOBS_HEARTBEAT_SECONDS"))
        kwargs.setdefault("default_result_ttl", jobs_setting("JOBS_RESULT_TTL"))
        super().__init__(*args, **kwargs)
        self._failure: tuple[str, int] | None = None
        self._paused: tuple[float, set[str], bool] | None = None
        self.rows = RowWriter()

    def teardown(self):
        # Every row is written before the worker leaves (burst end, warm shutdown, cold
        # shutdown too, within the writer's EXIT_FLUSH_SECONDS), and while it still counts as alive.
        if not self.is_horse:
            self.rows.close()
        super().teardown()

    def _cancelled_before_start(self, job: Job, queue) -> bool:
        # RQ's cancel-after-dequeue race (rq/rq#2160): a job cancelled between the
        # dequeue and now must not run.
        if job.get_status(refresh=True) == JobStatus.CANCELED:
            queue.intermediate_queue.remove(job.id)
            logger.info("job %s was cancelled before it started; skipped", job.id)
            return True
        return False

    def dequeue_job_and_maintain_ttl(self, timeout, max_idle_time=None):
        """Dequeue from every queue an operator has not paused (RQ only has a global suspend),
        unless the worker is quiet; None once idle for `max_idle_time` seconds or stopping.

        The blocking wait is cut into slices of at most PAUSE_POLL_SECONDS so that a resume,
        or a pause of a queue the worker is not blocked on, takes effect within one slice. A
        pause or quiet that lands while the worker waits is caught when the wait returns a
        job: the worker reads both again then, and a job it must not take goes back to the
        head of its queue (see _take_or_put_back).
        """
        if timeout is None:  # burst: non-blocking passes, until a job or none left
            while (result := self._dequeue_unpaused(None)) is not None:
                if (taken := self._take_or_put_back(result)) is not None:
                    return taken
            return None
        deadline = None if max_idle_time is None else time.monotonic() + max_idle_time
        while not self._stop_requested:
            wait = self._wait_slice(timeout, deadline)
            if wait <= 0:
                return None
            try:
                result = self._take_or_put_back(self._dequeue_unpaused(wait))
                if result is not None:
                    return result
            except REDIS_ERRORS as exc:
                # RQ retries a lost Redis inside its blocking wait, not in the calls around
                # it (its set_state, a heartbeat): an outage that begins between two waits
                # must not end the worker either.
                self._redis_unreachable("waiting for jobs", exc)
                time.sleep(min(REDIS_RETRY_SECONDS, max(wait, 0.1)))
        return None

    def _wait_slice(self, timeout: float, deadline: float | None) -> float:
        """Seconds the next blocking wait may last: within RQ's dequeue timeout, the idle
        deadline, PAUSE_POLL_SECONDS and the connection's socket timeout (a wait as long as
        the socket's timeout ends in a TimeoutError, which RQ's wait retries for ever)."""
        wait = min(float(timeout), float(PAUSE_POLL_SECONDS))
        socket_timeout = self.connection.connection_pool.connection_kwargs.get("socket_timeout")
        if socket_timeout:
            wait = min(wait, max(socket_timeout - 1, socket_timeout / 2))
        if deadline is not None:
            wait = min(wait, deadline - time.monotonic())
        # Whole seconds where possible: RQ's idle arithmetic rounds up (math.ceil).
        return float(math.floor(wait)) if wait >= 1 else wait

    def _dequeue_unpaused(self, wait: float | None):
        """One pass of RQ's dequeue over the queues open to this worker. Keeps the order the
        dequeue strategy (round_robin, random) gives RQ's full queue list."""
        everything = self._ordered_queues
        closed = self._closed_queues(fresh=False)
        self._ordered_queues = [q for q in everything if q.name not in closed]
        result = None
        try:
            if self._ordered_queues:
                result = super().dequeue_job_and_maintain_ttl(wait, wait)
            elif wait is not None:  # nothing to serve: beat and look again shortly
                self.set_state(WorkerStatus.IDLE)
                self.heartbeat()
                time.sleep(min(wait, NOTHING_OPEN_POLL_SECONDS))
        finally:
            self._ordered_queues = everything
        if result is not None:
            # RQ reordered the open queues only: apply its strategy to the whole list.
            self.reorder_queues(reference_queue=result[1])
        return result

    def _take_or_put_back(self, result):
        """The dequeued (job, queue), or None after putting the job back at the head of its
        queue because that queue was paused, or this worker quieted, while it waited."""
        if result is None:
            return None
        job, queue = result
        try:
            if queue.name not in self._closed_queues(fresh=True):
                return result
        except REDIS_ERRORS as exc:  # the job is out of its queue already: run it rather than drop it
            self._redis_unreachable("reading the paused queues", exc)
            return result
        with self.connection.pipeline() as pipe:  # MULTI: the job is never out of both lists
            pipe.lrem(queue.intermediate_queue.key, 1, job.id)
            pipe.lpush(queue.key, job.id)
            pipe.execute()
        logger.info("worker %s: queue %s is paused or the worker quiet; job %s put back", self.name,
                    queue.name, job.id)
        return None

    def _closed_queues(self, fresh: bool) -> set[str]:
        """Names of the queues this worker must not take from: the paused ones, or all of
        them while the worker is quiet. `fresh` reads Redis; else a read up to
        PAUSE_CACHE_SECONDS old will do (one Redis call less per job)."""
        now = time.monotonic()
        if fresh or self._paused is None or now - self._paused[0] >= PAUSE_CACHE_SECONDS:
            try:
                with self.connection.pipeline(transaction=False) as pipe:
                    pipe.smembers(PAUSED_KEY)
                    pipe.sismember(QUIET_KEY, self.name)
                    members, quiet = pipe.execute()
            except REDIS_ERRORS:
                if fresh:
                    raise
                return set()
            paused = {m.decode() if isinstance(m, bytes) else m for m in members}
            self._paused = (now, paused, bool(quiet))
        _, paused, quiet = self._paused
        return set(self.queue_names()) if quiet else paused

    # Between jobs RQ's loop reads Redis in two more places, and ends the worker on any error
    # there: the suspension flag and the maintenance tasks (run first at start-up, right after
    # the worker registers). With Redis away, skip them; the wait for jobs waits for Redis.
    def check_for_suspension(self, burst: bool) -> None:
        try:
            super().check_for_suspension(burst)
        except REDIS_ERRORS as exc:
            self._redis_unreachable("reading the suspension flag", exc)

    def run_maintenance_tasks(self):
        try:
            super().run_maintenance_tasks()
        except REDIS_ERRORS as exc:  # not done: due again on the next pass
            self._redis_unreachable("running maintenance", exc)

    def _redis_unreachable(self, doing: str, exc: Exception) -> None:
        logger.warning("worker %s: Redis unreachable while %s (%s); retrying", self.name, doing, exc)

    def handle_job_failure(self, job: Job, queue, started_job_registry=None, exc_string="", execution=None):
        # A lone surrogate in an error message would make RQ's own write to Redis raise
        # and take the work horse down with it.
        exc_string = storable_text(exc_string or "")
        retry_in = 0
        try:
            if job.retries_left:
                retry_in = job.get_retry_interval()
        except Exception:
            pass
        super().handle_job_failure(job, queue, started_job_registry=started_job_registry,
                                   exc_string=exc_string, execution=execution)
        self._note_failure(job, exc_string, retry_in)

    def _note_failure(self, job: Job, exc_string: str, retry_in: int) -> None:
        raise NotImplementedError

    def _hand_outcome(self, job: Job, status: JobStatus | None, *, result=None, exc_string: str = "",
                      retry_in: int = 0) -> None:
        """Hand the attempt's outcome to the writer. A failure is written before the worker
        goes on: RQ may already have queued its retry, which another worker could start."""
        retry_at = timezone.now() + timedelta(seconds=retry_in) if retry_in else None
        call = functools.partial(_apply_status_by_id, job.id, status, timeout=job.timeout,
                                 started_at=job.started_at, finished_at=job.ended_at or timezone.now(),
                                 result=result, exc_string=exc_string, retry_at=retry_at)
        # A completion is one statement when its start time is known (jobs.fastpath): batchable.
        finished = status == JobStatus.FINISHED
        self.rows.submit(Write("outcome", job.id, call, batchable=finished and job.started_at is not None))
        if not finished:
            self.rows.flush()

    def _hand_start(self, job: Job, execution_id: str, pid: int | None, started_at) -> None:
        call = functools.partial(_mark_running_by_id, job.id, execution_id=execution_id, worker_name=self.name,
                                 hostname=HOSTNAME, pid=pid, started_at=started_at)
        self.rows.submit(Write("start", job.id, call, batchable=True, join=_join_start_and_completion))


class Worker(TrackingMixin, rq.Worker):
    """The forking worker: isolation, timeouts and stop commands. The default."""

    def execute_job(self, job: Job, queue):
        """RQ's own steps (prepare, fork, monitor), with the row's transitions handed to the writer."""
        if self._cancelled_before_start(job, queue):
            return
        self._failure = None
        execution = self.prepare_execution(job)
        started_at = timezone.now()  # before the fork: a quick horse may end before the fork returns here
        self.fork_work_horse(job, queue)
        self._hand_start(job, execution.id, self.horse_pid, started_at)
        self.monitor_work_horse(job, queue, execution)
        self._record_end(job)
        self.set_state(WorkerStatus.IDLE)

    def main_work_horse(self, job: Job, queue):
        # The horse must never talk on the main process's connection: forget it without
        # closing it (closing would end the main process's session), so the job's own
        # queries, if any, open a connection of the horse's. It leaves by os._exit, so
        # nothing finalizes the inherited one. (The writer thread's connection is that
        # thread's own: the horse cannot reach it.)
        for conn in connections.all(initialized_only=True):
            _INHERITED.append(conn.connection)
            conn.connection = None
        super().main_work_horse(job, queue)

    def perform_job(self, job: Job, queue, execution) -> bool:
        try:
            return super().perform_job(job, queue, execution)
        finally:
            connections.close_all()  # only what the job itself opened

    def _note_failure(self, job: Job, exc_string: str, retry_in: int) -> None:
        exc_string = getattr(self, "_shutdown_message", None) or exc_string
        if self.is_horse:
            # Only the horse has the traceback; an attempt RQ retries leaves none in Redis.
            payload = json.dumps({"exc_string": exc_string[-jobs_setting("JOBS_TRACEBACK_MAX_CHARS"):],
                                  "retry_in": retry_in})
            try:
                self.connection.set(FAILURE_KEY.format(job.id), payload, ex=3600)
            except Exception:
                logger.exception("could not hand the failure of job %s to the worker", job.id)
        else:  # killed or stopped: the main process saw it
            self._failure = (exc_string, retry_in)

    def _record_end(self, job: Job) -> None:
        """Read how the attempt ended and hand that to the writer; never raises."""
        try:
            status, result, handed = self._read_end(job)
        except Exception:
            logger.exception("could not record outcome of job %s; the reconciler will repair the row", job.id)
            return
        if status == JobStatus.FINISHED:
            self._hand_outcome(job, status, result=result)
            return
        exc_string, retry_in = self._failure or ("", 0)
        if handed:
            data = json.loads(handed)
            exc_string, retry_in = data["exc_string"], data["retry_in"]
        self._hand_outcome(job, status, exc_string=exc_string, retry_in=retry_in)

    def _read_end(self, job: Job) -> tuple[JobStatus | None, object, bytes | None]:
        """In one round trip: the job's hash (status, timings), its latest Result and the
        failure its horse handed over; returns (status, return value, handed failure)."""
        with self.connection.pipeline(transaction=False) as pipe:
            pipe.hgetall(job.key)
            pipe.xrevrange(Result.get_key(job.id), "+", "-", count=1)
            pipe.getdel(FAILURE_KEY.format(job.id))
            data, latest, handed = pipe.execute()
        if not data:
            raise NoSuchJobError(f"No such job: {job.key}")
        job.restore(data)
        status = job.get_status(refresh=False)
        result = None
        if status == JobStatus.FINISHED and latest:
            result_id, payload = latest[0]
            latest_result = Result.restore(job.id, result_id.decode(), payload, connection=self.connection,
                                           serializer=job.serializer)
            if latest_result.type == Result.Type.SUCCESSFUL:
                result = latest_result.return_value
        return status, result, handed

    def request_stop(self, signum, frame):
        """Warm shutdown, bounded: a job still running after JOBS_SHUTDOWN_GRACE_SECONDS is
        stopped and recorded (retried if it has retries left), instead of being orphaned
        when the process manager's SIGKILL takes the worker but not its work horse."""
        super().request_stop(signum, frame)  # raises StopRequested when idle
        grace = jobs_setting("JOBS_SHUTDOWN_GRACE_SECONDS")
        if self.horse_pid and grace >= 0:
            timer = threading.Timer(grace, self._stop_horse_for_shutdown, args=(grace,))
            timer.daemon = True
            timer.start()

    def _stop_horse_for_shutdown(self, grace: int) -> None:
        if self.horse_pid:
            self.log.warning("Worker %s: job still running %s s after shutdown began; stopping it", self.name, grace)
            self._shutdown_message = f"WorkerShutdown: the worker shut down; the job was stopped after {grace} s"
            self.kill_horse()


class SimpleWorker(TrackingMixin, rq.SimpleWorker):
    """Runs jobs in the worker process: faster, but it cannot stop or time out a job
    that ignores signals, and never refreshes heartbeats (see docs/OPERATIONS.md)."""

    forks = False

    def execute_job(self, job: Job, queue):
        if not self._cancelled_before_start(job, queue):
            return super().execute_job(job, queue)

    def perform_job(self, job: Job, queue, execution) -> bool:
        close_old_connections()
        return super().perform_job(job, queue, execution)

    def prepare_job_execution(self, job: Job, remove_from_intermediate_queue: bool = False) -> None:
        super().prepare_job_execution(job, remove_from_intermediate_queue)
        self._hand_start(job, self.execution.id, os.getpid(), job.started_at or timezone.now())

    def handle_job_success(self, job: Job, queue, started_job_registry, execution=None):
        super().handle_job_success(job, queue, started_job_registry, execution)
        # RQ's transaction has just stored FINISHED, which the job object holds as well.
        self._hand_outcome(job, job.get_status(refresh=False), result=getattr(job, "_result", None))

    def _note_failure(self, job: Job, exc_string: str, retry_in: int) -> None:
        try:
            status = job.get_status(refresh=True)  # failed, or queued/scheduled for a retry
        except Exception:
            logger.exception("could not record failure of job %s; the reconciler will repair the row", job.id)
            return
        self._hand_outcome(job, status, exc_string=exc_string, retry_in=retry_in)


def set_progress(fraction: float | None, message: str = "") -> bool:
    """Report the current job's progress (0..1, plus a message) onto its row; call it from
    inside a job function. Outside a job, or if the database is unreachable, returns False."""
    job = get_current_job()
    if job is None:
        return False
    return write_safely("progress", job.id, record_for(job).set_progress, fraction, message)
