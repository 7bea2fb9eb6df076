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

import json
import logging
import math
import os
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

from .adopt import adopter, record_id_for
from .conf import jobs_setting
from .connection import REDIS_ERRORS
from .models import BackgroundTaskRecord, intents
from .outcomes import outcome_intent
from .retry_policy import prepare_failure, with_hook
from .values import (  # noqa: F401 (capped_result, parse_exc_string, storable_text: re-exported)
    capped_result,
    failure_text,
    parse_exc_string,
    storable_text,
    unreadable_result,
)
from .writer import RowWriter, Write, write_safely

logger = logging.getLogger(__name__)
HOSTNAME = socket.gethostname()
PAUSED_KEY = "jobdeck:paused-queues"
# Names of the workers an operator quieted: each finishes its job and takes no new one.
QUIET_KEY = "jobdeck:quiet-workers"  # jobs.control (the Workers page) writes it
# The longest single blocking wait for a job (a resume is seen within it).
PAUSE_POLL_SECONDS = 5
# How often a worker with no queue open to it (all paused, or quiet) looks again.
NOTHING_OPEN_POLL_SECONDS = 1
# How long a worker trusts its last read of the paused queues (one Redis call less per job).
PAUSE_CACHE_SECONDS = 1
# How long an idle worker waits before it tries an unreachable Redis again.
REDIS_RETRY_SECONDS = 1
FAILURE_KEY = "jobdeck:failure:{}"
# The worker hash's field for how far its row writes lag behind (jobs.stats reads it).
WRITER_LAG_FIELD = "jobdeck_writer_lag"
# The execution id of the job this process runs (set_progress names its attempt with it).
_EXECUTION_ID: str | None = None
# Connections a work horse inherited and must neither use nor close (see Worker.main_work_horse).
_INHERITED: list = []

def record_for(job: Job) -> BackgroundTaskRecord:
    """An unsaved handle on the job's row: transitions need only its primary key."""
    return BackgroundTaskRecord(pk=record_id_for(job.id))


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
        self._execution_id: str | None = None
        # Set when a shutdown stops the running job to requeue it: (job id, message); and
        # (job id, message) once RQ has requeued it (a horse that ended by itself meanwhile is not).
        self._interrupted: tuple[str, str] | None = None
        self._requeued: tuple[str, str] | None = None
        self._paused: tuple[float, set[str], bool] | None = None
        self.rows = RowWriter()

    def heartbeat(self, timeout=None, pipeline=None):
        super().heartbeat(timeout, pipeline)
        self._publish_writer_lag(pipeline)

    def _publish_writer_lag(self, pipeline=None) -> None:
        """Put the writer's lag in the worker's hash while there is one (and its end), for the overview."""
        if self.is_horse or not hasattr(self, "rows"):  # a horse's copy of the writer is not its own
            return
        lag = round(self.rows.lag_seconds(), 1)
        if lag < 1 and not getattr(self, "_lag_published", False):
            return  # the common case: nothing to say, no Redis call
        try:
            (pipeline if pipeline is not None else self.connection).hset(self.key, WRITER_LAG_FIELD, lag)
            self._lag_published = lag >= 1
        except REDIS_ERRORS:
            pass

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
        # and take the work horse down with it; 5 MB of message would go to Redis as well.
        exc_string = failure_text(exc_string or "")
        exc_type, self._exc_type = getattr(self, "_exc_type", None), None
        try:  # the job's retry policy (jobs.retry_policy): backoff, retry_on/discard_on
            exc_string = prepare_failure(job, exc_type, exc_string)
        except Exception:
            logger.exception("could not apply the retry policy of job %s; RQ's own retry applies", job.id)
        retry_in = 0
        try:
            if job.retries_left:
                retry_in = job.get_retry_interval()
        except Exception:
            pass
        if self._interrupted is not None and self._interrupted[0] == job.id and not self.is_horse:
            self._requeue_interrupted(job, queue, execution)
            return
        super().handle_job_failure(job, queue, started_job_registry=started_job_registry,
                                   exc_string=exc_string, execution=execution)
        self._note_failure(job, exc_string, retry_in)

    def handle_exception(self, job: Job, *exc_info):
        self._exc_type = exc_info[0]  # for handle_job_failure, which RQ calls next with the text only
        return super().handle_exception(job, *exc_info)

    def _requeue_interrupted(self, job: Job, queue, execution) -> None:
        """A job its worker's shutdown stopped goes back to the front of its queue (at-least-once)
        without using up one of its retries. (An at-most-once job is never marked here: RQ fails
        or retries it, as before.)"""
        with self.connection.pipeline() as pipe:
            self.cleanup_execution(job, pipeline=pipe, execution=execution)
            queue._enqueue_job(job, pipeline=pipe, at_front=True)
            pipe.execute()
        self._requeued, self._interrupted = self._interrupted, None

    def _note_failure(self, job: Job, exc_string: str, retry_in: int) -> None:
        raise NotImplementedError

    def _hand_outcome(self, job: Job, status: JobStatus | None, *, result=None, exc_string: str = "",
                      retry_in: int = 0) -> None:
        """Hand the attempt's outcome to the writer. A failure is written before the worker
        goes on: RQ may already have queued its retry, which another worker could start."""
        retry_at = timezone.now() + timedelta(seconds=retry_in) if retry_in else None
        try:
            intent = outcome_intent(record_id_for(job.id), self._execution_id, status, timeout=job.timeout,
                                    started_at=job.started_at, finished_at=job.ended_at or timezone.now(),
                                    result=result, exc_string=exc_string, retry_at=retry_at)
            intent = with_hook(intent, job)  # a final failure runs the job's on-exhausted hook
        except Exception:  # never raise into RQ: the reconciler repairs the row
            logger.exception("could not record outcome of job %s; the reconciler will repair the row", job.id)
            return
        if intent is None:
            return
        self.rows.submit(Write("outcome", job.id, intent=intent))
        if status != JobStatus.FINISHED:
            self.rows.flush()

    def _hand_start(self, job: Job, execution_id: str, pid: int | None, started_at) -> None:
        self._execution_id = execution_id
        # A job enqueued through RQ itself may have no row yet: the start write adopts it (jobs.adopt).
        self.rows.submit(Write("start", job.id, intent=intents.Start(
            record_id_for(job.id), execution_id, worker_name=self.name, hostname=HOSTNAME, pid=pid,
            started_at=started_at, adopt=adopter(job))))

    def _may_requeue(self, job: Job) -> bool:
        """Whether an interrupted job goes back to its queue: not at-most-once, not interrupted
        JOBS_MAX_INTERRUPTIONS times already (the row decides; without the database, the setting)."""
        try:
            row = (BackgroundTaskRecord.objects.filter(pk=record_id_for(job.id))
                   .values("at_most_once", "interruptions").first())
        except Exception:
            row = None
        if row is None:
            return not jobs_setting("JOBS_AT_MOST_ONCE")
        return not row["at_most_once"] and row["interruptions"] < jobs_setting("JOBS_MAX_INTERRUPTIONS")


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

    def fork_work_horse(self, job: Job, queue):
        if connections["default"].vendor == "sqlite":  # never mid-transaction (RowWriter.between_passes)
            with self.rows.between_passes():
                return super().fork_work_horse(job, queue)
        return super().fork_work_horse(job, queue)

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
        global _EXECUTION_ID
        _EXECUTION_ID = execution.id  # the horse's own copy: set_progress names its attempt
        try:
            return super().perform_job(job, queue, execution)
        finally:
            connections.close_all()  # only what the job itself opened

    def wait_for_horse(self):
        pid, status, rusage = super().wait_for_horse()
        self._horse_status = status
        return pid, status, rusage

    def monitor_work_horse(self, job: Job, queue, execution):
        """RQ's monitoring, plus the case RQ leaves open: a horse that exits with code 0 (a job
        calling os._exit(0)) before finishing its job stays "started" in Redis, and its row
        would be settled much later as a lost worker though the worker is alive."""
        self._horse_status = None
        super().monitor_work_horse(job, queue, execution)
        if self._horse_status == os.EX_OK:
            try:
                unfinished = job.get_status(refresh=True) == JobStatus.STARTED
            except Exception:
                return  # gone from Redis, or Redis away: the reconciler decides
            if unfinished:
                self.log.warning("Worker %s: work horse of job %s exited with code 0 before the job finished",
                                 self.name, job.id)
                job.ended_at = timezone.now()
                try:  # the same text RQ writes for a non-zero exit; values.parse_exc_string reads it
                    self.handle_job_failure(job, queue=queue, execution=execution,
                                            exc_string="Work-horse terminated unexpectedly; waitpid returned 0; ")
                except REDIS_ERRORS as exc:  # Redis went away meanwhile: the reconciler settles the job
                    self._redis_unreachable(f"recording the exit of job {job.id}'s work horse", exc)

    def _note_failure(self, job: Job, exc_string: str, retry_in: int) -> None:
        exc_string = getattr(self, "_shutdown_message", None) or exc_string
        if self.is_horse:
            # Only the horse has the traceback; an attempt RQ retries leaves none in Redis.
            payload = json.dumps({"exc_string": failure_text(exc_string),
                                  "retry_in": retry_in})
            try:
                self.connection.set(FAILURE_KEY.format(job.id), payload, ex=3600)
            except Exception:
                logger.exception("could not hand the failure of job %s to the worker", job.id)
        else:  # killed or stopped: the main process saw it
            self._failure = (exc_string, retry_in)

    def _record_end(self, job: Job) -> None:
        """Read how the attempt ended and hand that to the writer; never raises."""
        self._interrupted = None
        if self._requeued is not None and self._requeued[0] == job.id:
            message = self._requeued[1]
            self._requeued = None
            self.rows.submit(Write("interruption", job.id, intent=intents.Interrupt(
                record_id_for(job.id), self._execution_id, error_message=message, finished_at=timezone.now())))
            self.rows.flush()
            return
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
            try:
                latest_result = Result.restore(job.id, result_id.decode(), payload, connection=self.connection,
                                               serializer=job.serializer)
            except Exception as exc:  # a return value that pickles but cannot be unpickled here
                return status, unreadable_result(exc), handed
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
            message = f"WorkerShutdown: the worker shut down; the job was stopped after {grace} s"
            job_id = self.get_current_job_id()
            if job_id and self._may_requeue(Job(job_id, connection=self.connection)):
                # At-least-once: back to its queue, recorded as interrupted (see handle_job_failure).
                self._interrupted = (job_id, message)
            else:
                self._shutdown_message = message
            connections.close_all()  # this timer thread's own, if _may_requeue opened one
            self.kill_horse()


class SimpleWorker(TrackingMixin, rq.SimpleWorker):
    """Runs jobs in the worker process: faster, but it cannot stop or time out a job
    that ignores signals, and never refreshes heartbeats (see docs/OPERATIONS.md)."""

    forks = False

    def execute_job(self, job: Job, queue):
        if not self._cancelled_before_start(job, queue):
            return super().execute_job(job, queue)

    def perform_job(self, job: Job, queue, execution) -> bool:
        global _EXECUTION_ID
        _EXECUTION_ID = execution.id
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
    return write_safely("progress", job.id, intents.Progress(record_id_for(job.id), _EXECUTION_ID, fraction=fraction,
                                                             message=message).apply)
