"""Write-behind bookkeeping: a worker's row writes, off the path of its jobs.

A tracking worker (jobs.worker) hands each row transition, a job's start and its end, to
its RowWriter, which performs them on a thread of its own with a database connection of
its own, so no job waits for the database. The contract:

- **Order.** One thread performs the writes first in, first out: a job's start lands
  before its end, and a job's end before the start of the next job this worker takes.
- **Batches.** When a write arrives to an idle thread, the thread lingers LINGER_SECONDS,
  then takes all that queued meanwhile; a backlog it takes at once, MAX_BATCH at a time.
  On PostgreSQL the writes that are one statement each in the common case (a start, a
  completion) go together in one round trip and one transaction, as prepared statements
  (jobs.fastpath: collect, run, replay); each ends exactly as if written alone. There a
  write may also join its job's next write in the batch (a job's start and its completion
  become one statement: one row version instead of two). A batch that fails is written
  again one write at a time, so one bad write costs only itself.
- **Flush.** `flush()` returns once every write handed over before it has been performed
  (or has failed). The worker flushes before it exits (a `--burst` worker has written
  every row when it returns; so has a warm shutdown) and after each failed attempt, so a
  failure is on its row before the worker takes another job, exactly as before.
- **Errors** are those of any hook: logged, never raised, the connection closed so the
  next write reconnects. A database outage costs the job nothing.
- **A crash loses** what was still queued: the writes of the last few jobs (never more
  than MAX_QUEUED; `submit` waits while the queue is full). The reconciler repairs those
  rows from what Redis holds, as it does for any write a hook could not make: RQ keeps
  finished jobs for JOBS_RESULT_TTL (3600 s) and failed ones for a year.
- **Fork.** A work horse inherits the writer, not its thread, and the queue's lock may
  have been held by that thread at the fork. In any process but the one that created it,
  the writer never touches its queue: `submit` writes inline, `flush` returns at once.
"""

from __future__ import annotations

import contextlib
import logging
import os
import queue
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from dataclasses import replace as dc_replace

from django.db import connections

from . import dbtimeouts, fastpath
from .conf import jobs_setting
from .models import intents
from .values import error_text, safe_repr, safe_str

logger = logging.getLogger(__name__)

# Writes waiting at most; past this `submit` waits (a slow database slows the worker
# down, as synchronous writes would, instead of piling up what a crash would lose).
MAX_QUEUED = 1000
# Writes sent in one round trip at most.
MAX_BATCH = 50
# Once a write arrives, the thread waits this long for more (unless a flush hurries it): one
# wake-up, one round trip and one pass through the ORM for the writes of several jobs. Rows lag
# their jobs by as much. Under a forking worker a pass costs more than the statements: each
# page of the heap it touches is copied, as the last work horse forked still shares it.
LINGER_SECONDS = 0.1
# How long a worker waits for its writes when it exits; what is left, the reconciler repairs.
EXIT_FLUSH_SECONDS = 30
# How often the watchdog looks at the write in progress (see RowWriter.lag_seconds).
WATCH_SECONDS = 1.0

_STOP = object()


def write_safely(what: str, job_id: str, func, *args, **kwargs) -> bool:
    """Run one bookkeeping write; log and swallow any error."""
    try:
        # No enclosing transaction: on PostgreSQL a transition is one statement (jobs.fastpath),
        # and each ORM transition opens its own.
        return bool(func(*args, **kwargs))
    except Exception:
        # Never raise into RQ: the reconciler brings the row in step from Redis later.
        logger.exception("could not record %s of job %s; the reconciler will repair the row", what, job_id)
        _reset_connections()
        return False


def _reset_connections() -> None:
    try:
        connections.close_all()
    except Exception:
        pass


@dataclass
class Write:
    """One row write: a write intent (jobs.models.intents), carried out once, or a plain `call`."""

    what: str
    job_id: str
    call: Callable[[], object] | None = None
    intent: intents.Intent | None = None

    @property
    def batchable(self) -> bool:
        """Whether it may share a round trip: an intent with a one-statement form."""
        return isinstance(self.intent, (intents.Start, intents.End)) and self.intent.execution_id is not None

    def run_safely(self) -> bool:
        if self.intent is None:
            return write_safely(self.what, self.job_id, self.call)
        return self.carry_out(self.intent.apply)

    def carry_out(self, apply: Callable[[], bool]) -> bool:
        """Carry the intent out; if it fails, write what can be stored of it; only if that fails
        too, log it and drop it. Never raises."""
        try:
            return bool(apply())
        except Exception as exc:
            why = error_text(exc)
            logger.warning("could not write %s of job %s in full (%s); writing what can be stored",
                           self.what, self.job_id, why)
            _reset_connections()
        try:
            return bool(reduced(self.intent, why).apply())
        except Exception:
            logger.exception("could not record %s of job %s; the reconciler will repair the row",
                             self.what, self.job_id)
            _reset_connections()
            return False


def reduced(intent: intents.Intent, why: str) -> intents.Intent:
    """What can be stored of an intent whose full write failed: the same transition with a
    bounded preview of its result, its error type kept, and a message saying the full record
    could not be written."""
    note = f"the full record could not be written: {why}"
    if isinstance(intent, intents.Ran):
        return intents.Ran(intent.record_id, intent.execution_id, start=reduced(intent.start, why),
                           end=reduced(intent.end, why))
    if isinstance(intent, intents.Start):
        return dc_replace(intent, worker_name=safe_str(intent.worker_name, 255),
                          hostname=safe_str(intent.hostname, 255))
    if isinstance(intent, intents.Progress):
        return dc_replace(intent, message=safe_str(intent.message, 255))
    if not isinstance(intent, intents.End):
        return intent
    changes = {"error_type": safe_str(intent.error_type, 255), "error_message": note,
               "traceback": safe_str(intent.traceback[-20000:] if isinstance(intent.traceback, str) else "", 20000)}
    if intent.error_message and isinstance(intent, (intents.Fail, intents.Interrupt)):
        changes["error_message"] = f"{note}\n{safe_str(intent.error_message, 1000)}"
    if isinstance(intent, intents.Complete):
        changes["result"] = {"preview": safe_repr(intent.result, 1000), "note": note}
    return dc_replace(intent, **changes)


class RowWriter:
    """Performs row writes on a thread of its own, in the order they were submitted."""

    def __init__(self, name: str = "row-writer"):
        self.name = name
        self._pid = os.getpid()
        self._queue: queue.Queue = queue.Queue(MAX_QUEUED)
        self._thread: threading.Thread | None = None
        self._start_lock = threading.Lock()
        self._hurry = threading.Event()
        # Held while a pass talks to the database: see between_passes().
        self._pass_lock = threading.Lock()
        self._performing_since: float | None = None  # monotonic start of the batch being written

    def submit(self, write: Write) -> None:
        """Hand over one write; never raises."""
        if os.getpid() != self._pid:  # a forked work horse: see the module docstring
            write.run_safely()
            return
        self._ensure_thread()
        self._queue.put(write)

    def flush(self, timeout: float | None = None) -> bool:
        """Wait until every write submitted so far is done; False if `timeout` passed first."""
        if os.getpid() != self._pid or self._thread is None:
            return True
        done = threading.Event()
        self._queue.put(done)
        self._hurry.set()
        return done.wait(timeout)

    def close(self, timeout: float | None = EXIT_FLUSH_SECONDS) -> bool:
        """Flush, then end the thread and close its connection; False if writes were left behind."""
        flushed = self.flush(timeout)
        if not flushed:
            logger.warning("%s: writes still queued after %s s; the reconciler will repair those rows",
                           self.name, timeout)
        elif os.getpid() == self._pid and self._thread is not None:
            self._queue.put(_STOP)
            self._thread.join()
            self._thread = None
        return flushed

    def _ensure_thread(self) -> None:
        if self._thread is None:
            with self._start_lock:
                if self._thread is None:
                    # A daemon: a writer stuck on a hung database never keeps the worker alive.
                    self._thread = threading.Thread(target=self._run, name=self.name, daemon=True)
                    self._thread.start()
                    threading.Thread(target=self._watch, args=(self._thread,), name=f"{self.name}-watchdog",
                                     daemon=True).start()

    def _run(self) -> None:
        dbtimeouts.bound_this_thread()
        try:
            while True:
                items = [self._queue.get()]
                self._take_queued(items)
                # Linger only for a batch still to fill: a backlog is written at once, batch
                # after batch (a linger per batch would cap the worker at MAX_BATCH writes per
                # LINGER_SECONDS), and a flush or stop waiting in the batch is never held up.
                if len(items) < MAX_BATCH and all(isinstance(item, Write) for item in items):
                    self._hurry.wait(LINGER_SECONDS)
                    self._take_queued(items)
                self._hurry.clear()
                self._performing_since = time.monotonic()
                try:
                    with self._pass_lock:
                        go_on = self._perform(items)
                    if not go_on:
                        return
                except Exception:  # a bug here must neither end the thread nor strand a flush
                    logger.exception("%s: could not perform %d queued items", self.name, len(items))
                    for item in items:
                        if isinstance(item, threading.Event):
                            item.set()
                finally:
                    self._performing_since = None
        finally:
            connections.close_all()  # this thread's own connection

    @contextlib.contextmanager
    def between_passes(self) -> Iterator[None]:
        """Hold off the thread's next pass meanwhile, once the current one (if any) is done.

        A forking worker forks inside this on SQLite: SQLite keeps its locks' bookkeeping in
        process memory, so a work horse forked while this thread was inside a transaction
        believes the lock still held by its own process, and its own writes (a job's
        set_progress) wait on it for ever ("database is locked"). PostgreSQL needs none of it."""
        with self._pass_lock:
            yield

    def lag_seconds(self) -> float:
        """How long the writes being performed now have taken so far (0 when none are): how far
        the rows lag behind their jobs when the database is slow or silent."""
        since = self._performing_since
        if since is None or os.getpid() != self._pid:  # a work horse's copy: not its writes
            return 0.0
        return max(time.monotonic() - since, 0.0)

    def _watch(self, thread: threading.Thread) -> None:
        """Log a write stalled past JOBS_WRITER_STALL_SECONDS, once per stall, and its end."""
        stalled = False
        while thread.is_alive():
            time.sleep(WATCH_SECONDS)
            lag = self.lag_seconds()
            if not stalled and lag > jobs_setting("JOBS_WRITER_STALL_SECONDS"):
                stalled = True
                logger.warning("%s: a row write has been waiting on the database for %.0f s; jobs go on, "
                               "their rows lag behind", self.name, lag)
            elif stalled and lag == 0:
                stalled = False
                logger.warning("%s: row writes go through again", self.name)

    def _take_queued(self, items: list) -> None:
        """Append what is queued now, up to MAX_BATCH items, without waiting."""
        while len(items) < MAX_BATCH:
            try:
                items.append(self._queue.get_nowait())
            except queue.Empty:
                return

    def _perform(self, items: list) -> bool:
        """Perform writes and flush marks in order; False once told to stop."""
        batch: list[Write] = []
        for item in items:
            if isinstance(item, Write) and item.batchable:
                batch.append(item)
                continue
            self._write_batch(batch)
            batch = []
            if item is _STOP:
                return False
            if isinstance(item, threading.Event):
                item.set()
            else:
                item.run_safely()
        self._write_batch(batch)
        return True

    def _write_batch(self, writes: list[Write]) -> None:
        """One-statement writes in one round trip; each exactly as if written alone."""
        if not writes:
            return
        if not fastpath.enabled():
            for write in writes:
                write.run_safely()
            return
        writes = _joined(writes)
        try:
            statements = [write.intent.statement() for write in writes]
            ran = [s for s in statements if s is not None]
            rows = iter(fastpath.run_statements(ran) if ran else [])
        except Exception:
            logger.warning("a batch of %d row writes failed; writing them one at a time", len(writes),
                           exc_info=True)
            _reset_connections()
            for write in writes:
                write.run_safely()
            return
        for write, statement in zip(writes, statements):
            if statement is not None and statement.settled(next(rows)):
                write.intent.settled_fast()
            else:
                # Not the common case: the intent's ORM path decides, under the row lock.
                write.carry_out(write.intent.apply_orm)


def _joined(writes: list[Write]) -> list[Write]:
    """The batch with each start that its completion follows in the same batch (the job was
    shorter than the linger) replaced, at its place, by one write doing both (intents.Ran)."""
    joined: list[Write] = []
    waiting: dict[tuple, int] = {}  # (job id, execution id) → index in `joined` of its start
    for write in writes:
        key = (write.job_id, write.intent.execution_id)
        index = waiting.pop(key, None)
        if (index is not None and isinstance(write.intent, intents.Complete)
                and write.intent.started_at is not None):
            start = joined[index].intent
            joined[index] = Write("start and outcome", write.job_id, intent=intents.Ran(
                write.job_id, start.execution_id, start=start, end=write.intent))
            continue
        if isinstance(write.intent, intents.Start):
            waiting[key] = len(joined)
        joined.append(write)
    return joined
