"""Hostile jobs on real workers: whatever a job returns, raises or reports, its row ends
true and bounded, and the next job's row is written as usual.

The job functions live at module level here, so a work horse imports them by path.
"""

import faulthandler
import os
import signal

import pytest
from django_tasks import task

from jobs import api, demo
from jobs.models import Status
from jobs.worker import SimpleWorker, Worker, set_progress

pytestmark = pytest.mark.django_db(transaction=True)


class Unprintable:
    def __str__(self):
        raise RuntimeError("no str")

    __repr__ = __str__


class UnprintableError(Exception):
    def __str__(self):
        raise RuntimeError("no str either")


def _cannot_rebuild():
    raise RuntimeError("cannot be rebuilt")


class Unloadable:
    """Pickles fine in the work horse; unpickling it in the worker raises."""

    def __reduce__(self):
        return (_cannot_rebuild, ())


def unloadable():
    return Unloadable()


def huge_int():
    return 10**5000


def unprintable():
    return Unprintable()


def recursive():
    items = [1]
    items.append(items)
    return items


def fifty_megabytes():
    return "x" * (50 * 1024 * 1024)


def unstorable_text():
    return {"k\x00": "a\x00b\ud800"}


def raise_huge_message():
    raise ValueError("L" * 5_000_000)


def raise_huge_int():
    raise ValueError(10**5000)


def raise_unprintable():
    raise UnprintableError()


def raise_unstorable():
    raise KeyError("a\x00b\ud800")


def report_unstorable_progress():
    stored = set_progress(0.5, "half\x00way \ud800")
    return {"stored": stored}


def exit_zero():
    os._exit(0)


def exit_three():
    os._exit(3)


def segfault():
    faulthandler.disable()  # pytest's handler would print this process's stack first
    os.kill(os.getpid(), signal.SIGSEGV)


@task
def task_huge_int():
    return 10**5000


@task
def task_huge_message():
    raise ValueError("L" * 5_000_000)


WORKERS = pytest.mark.parametrize("worker_class", [Worker, SimpleWorker], ids=["forking", "simple"])


def fresh(record):
    record.refresh_from_db()
    return record


@WORKERS
@pytest.mark.parametrize("func, check", [
    (huge_int, lambda r: r == {"repr": "<int of about 5001 digits>", "note": "not JSON-serializable"}),
    (unprintable, lambda r: r["note"] == "not JSON-serializable" and "Unprintable" in r["repr"]),
    (recursive, lambda r: r["note"] == "not JSON-serializable" and r["repr"].startswith("[1, [1, ")),
    (fifty_megabytes, lambda r: r["note"] == f"truncated from {50 * 1024 * 1024} characters"
     and len(r["preview"]) < 70_000),
    (unstorable_text, lambda r: r == {"k\ufffd": "a\ufffdb\ufffd"}),
], ids=["huge int", "unprintable", "recursive", "50 MB", "NUL and surrogate"])
def test_any_result_is_stored_as_a_marked_preview_and_the_next_job_goes_on(drain, worker_class, func, check):
    hostile = api.enqueue(func)
    after = api.enqueue(demo.add, 2, 3)
    drain(worker_class=worker_class)
    assert fresh(hostile).status == Status.COMPLETED, hostile.error_message
    assert check(hostile.result), hostile.result
    assert hostile.attempt_set.get().outcome == "completed"
    assert fresh(after).status == Status.COMPLETED and after.result == 5


@WORKERS
@pytest.mark.parametrize("func, error_type, message", [
    (raise_huge_message, "ValueError", "L" * 3000),
    (raise_huge_int, "ValueError", "<exception str() failed>"),
    (raise_unprintable, "UnprintableError", "<exception str() failed>"),
    (raise_unstorable, "KeyError", "'a\\x00b\\ud800'"),
], ids=["5 MB message", "huge int message", "unprintable", "NUL and surrogate"])
def test_any_exception_keeps_its_type_with_a_bounded_message(drain, settings, worker_class, func, error_type,
                                                              message):
    hostile = api.enqueue(func)
    after = api.enqueue(demo.add, 1, 1)
    drain(worker_class=worker_class)
    hostile = fresh(hostile)
    assert (hostile.status, hostile.error_type) == (Status.FAILED, error_type)
    assert hostile.error_message.startswith(message) and len(hostile.error_message) <= 4100
    assert len(hostile.traceback) <= settings.JOBS_TRACEBACK_MAX_CHARS + 100
    assert hostile.traceback.startswith("Traceback") and f"{error_type}:" in hostile.traceback
    attempt = hostile.attempt_set.get()
    assert (attempt.outcome, attempt.error_type) == ("failed", error_type)
    assert fresh(after).status == Status.COMPLETED


@WORKERS
def test_a_progress_message_with_nul_and_surrogate_is_stored(drain, worker_class):
    record = api.enqueue(report_unstorable_progress)
    drain(worker_class=worker_class)
    record = fresh(record)
    assert record.status == Status.COMPLETED and record.result == {"stored": True}
    assert record.progress_message == "half\ufffdway \ufffd"  # completion sets progress to 1.0


@pytest.mark.parametrize("func, error_type, message", [
    (exit_zero, "WorkHorseExited", "work horse exited with code 0 before the job finished"),
    (exit_three, "WorkHorseExited", "work horse exited with code 3 before the job finished"),
    (segfault, "WorkHorseKilled", "work horse killed by signal 11 (SIGSEGV) before the job finished"),
], ids=["exit 0", "exit 3", "SIGSEGV"])
def test_a_work_horse_that_ends_by_itself_is_recorded_as_what_happened(drain, func, error_type, message):
    record = api.enqueue(func, retries=1)
    after = api.enqueue(demo.add, 1, 2)
    drain()
    record = fresh(record)
    assert (record.status, record.error_type, record.error_message) == (Status.FAILED, error_type, message)
    assert [(a.outcome, a.error_type) for a in record.attempt_set.all()] == [("failed", error_type)] * 2
    assert fresh(after).status == Status.COMPLETED


def test_a_task_returning_a_huge_int_completes_with_a_preview(drain):
    result = task_huge_int.enqueue()
    after = api.enqueue(demo.add, 2, 2)
    drain()
    result.refresh()
    assert result.status.name == "SUCCESSFUL"
    assert result.return_value == {"repr": "<int of about 5001 digits>", "note": "not JSON-serializable"}
    assert fresh(after).status == Status.COMPLETED


def test_a_task_raising_a_huge_message_fails_with_its_type(drain):
    result = task_huge_message.enqueue()
    drain()
    result.refresh()
    assert result.status.name == "FAILED"
    [error] = result.errors
    assert error.exception_class_path == "builtins.ValueError"
    assert error.traceback.startswith("Traceback") and "more characters cut]" in error.traceback


def test_the_reconciler_copies_an_unprintable_result_from_redis_as_a_preview(drain):
    from jobs.models import BackgroundTaskRecord
    from jobs.reconcile import reconcile_records

    record = api.enqueue(huge_int)
    drain()
    # As if the worker's completion write had been lost: the row still says running.
    BackgroundTaskRecord.objects.filter(pk=record.pk).update(status=Status.RUNNING, result=None, finished_at=None)
    report = reconcile_records()
    assert report.errors == [] and str(record.pk) in report.synced
    record = fresh(record)
    assert record.status == Status.COMPLETED
    assert record.result == {"repr": "<int of about 5001 digits>", "note": "not JSON-serializable"}


def test_a_result_that_cannot_be_read_back_completes_with_a_note(drain):
    record = api.enqueue(unloadable)
    after = api.enqueue(demo.add, 2, 3)
    drain()
    assert fresh(record).status == Status.COMPLETED
    assert record.result == {"repr": "<the return value could not be read back: RuntimeError: cannot be rebuilt>",
                             "note": "not readable"}
    assert fresh(after).status == Status.COMPLETED
