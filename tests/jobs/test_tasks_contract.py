"""The Django Tasks contract (DEP 14, as django-tasks 0.12 and its RQ backend define it),
held by jobdeck's backend with real workers: the points the RQ backend's own tests make,
said in this project's words. Task functions live at module level: workers import them.
"""

import logging
import uuid
from datetime import datetime

import pytest
from concurrent.futures import ThreadPoolExecutor

from asgiref.sync import async_to_sync as asgiref_async_to_sync
from django.db import connections
from django.core.checks import Error
from django.test import override_settings
from django_tasks import TaskResultStatus, default_task_backend, task, task_backends
from django_tasks.exceptions import InvalidTaskError, TaskResultDoesNotExist

from jobs.connection import get_queue
from jobs.tasks_backend import RQBackend
from jobs.worker import SimpleWorker
from tests.conftest import wait_for

pytestmark = pytest.mark.django_db(transaction=True)


def async_to_sync(func):
    """asgiref's async_to_sync on a thread of its own: the session's Playwright (tests/browser)
    keeps an event loop running on the test thread, where asgiref refuses to start another."""
    def run(*args, **kwargs):
        try:
            return asgiref_async_to_sync(func)(*args, **kwargs)
        finally:
            connections.close_all()  # that thread's own, before it ends

    def call(*args, **kwargs):
        with ThreadPoolExecutor(1) as pool:
            return pool.submit(run, *args, **kwargs).result()
    return call


@task
def echo(*args, **kwargs) -> dict:
    return {"args": list(args), "kwargs": kwargs}


@task
async def echo_async(value: int) -> int:
    return value


@task
def meaning() -> int:
    return 42


@task
def raise_value_error() -> None:
    raise ValueError("the task broke on purpose")


@task
def raise_system_exit() -> None:
    raise SystemExit("the task exited on purpose")


@task
def raise_nested() -> None:
    raise ValueError(ValueError("the task broke inside"))


@task
def return_a_set() -> set:
    return {1, 2}


@task(takes_context=True)
def what_i_see(context) -> dict:
    result = context.task_result
    return {"id": result.id, "attempt": context.attempt, "status": result.status,
            "worker": result.worker_ids[-1] if result.worker_ids else None,
            "started": result.started_at.isoformat() if result.started_at else None,
            "last_attempted": result.last_attempted_at.isoformat() if result.last_attempted_at else None}


@task(takes_context=True)
def fail_first_attempt(context) -> int:
    if context.attempt == 1:
        raise RuntimeError("first attempt fails on purpose")
    return context.attempt


def run_simple_worker(*queue_names: str) -> None:
    """A real worker in this process (its log lines reach caplog), until the queues are empty."""
    queues = [get_queue(name) for name in (queue_names or ("default",))]
    SimpleWorker(queues, connection=queues[0].connection).work(burst=True, logging_level="WARNING")


def test_the_default_backend_is_jobdecks(redis_conn):
    assert default_task_backend == task_backends["default"]
    assert isinstance(task_backends["default"], RQBackend) and default_task_backend.alias == "default"


@pytest.mark.parametrize("declared", [echo, echo_async])
def test_an_enqueued_task_is_ready_and_has_not_run(redis_conn, declared):
    result = declared.enqueue(1) if declared is echo_async else declared.enqueue(1, two=3)
    assert result.status == TaskResultStatus.READY and not result.is_finished
    assert (result.started_at, result.last_attempted_at, result.finished_at) == (None, None, None)
    assert result.attempts == 0 and result.task == declared and result.args == [1]
    with pytest.raises(ValueError, match="Task has not finished yet"):
        result.return_value


def test_aenqueue_and_aget_result(redis_conn):
    result = async_to_sync(meaning.aenqueue)()
    assert async_to_sync(default_task_backend.aget_result)(result.id) == result
    run_simple_worker()
    async_to_sync(result.arefresh)()
    assert result.status == TaskResultStatus.SUCCESSFUL and result.return_value == 42


def test_get_result_equals_the_enqueued_result(redis_conn):
    result = default_task_backend.enqueue(meaning, [], {})
    assert default_task_backend.get_result(result.id) == result


def test_refresh_brings_the_outcome_the_enqueued_object_does_not_change(redis_conn):
    result = meaning.enqueue()
    run_simple_worker()
    assert result.status == TaskResultStatus.READY and result.attempts == 0
    result.refresh()
    assert result.status == TaskResultStatus.SUCCESSFUL and result.is_finished and result.return_value == 42
    assert result.attempts == 1 and result.enqueued_at <= result.started_at <= result.finished_at
    assert result.last_attempted_at is not None


@pytest.mark.parametrize("declared, exception, text", [
    (raise_value_error, ValueError, "the task broke on purpose"),
    (raise_system_exit, SystemExit, "the task exited on purpose"),
    (raise_nested, ValueError, 'ValueError(ValueError("the task broke inside"))'),
])
def test_a_raising_task_fails_with_its_exception_class_and_traceback(start_worker, declared, exception, text):
    result = declared.enqueue()
    start_worker("default", extra=())
    wait_for(lambda: (result.refresh(), result.is_finished)[1], timeout=60, message="the task to finish")
    assert result.status == TaskResultStatus.FAILED and result.attempts == 1
    assert result.errors[0].exception_class is exception and text in result.errors[0].traceback
    assert result.started_at <= result.finished_at
    with pytest.raises(ValueError, match="failed"):
        result.return_value


def test_a_return_value_that_is_not_json_fails_the_task(redis_conn):
    result = return_a_set.enqueue()
    run_simple_worker()
    result.refresh()
    assert result.status == TaskResultStatus.FAILED and result.errors[0].exception_class is TypeError
    assert result._return_value is None


def test_unknown_or_malformed_ids_do_not_exist(redis_conn):
    for result_id in (str(uuid.uuid4()), "123"):
        with pytest.raises(TaskResultDoesNotExist):
            default_task_backend.get_result(result_id)
        with pytest.raises(TaskResultDoesNotExist):
            async_to_sync(default_task_backend.aget_result)(result_id)


def test_enqueue_logs_one_line(redis_conn, caplog):
    with caplog.at_level(logging.DEBUG, logger="django_tasks"):
        result = meaning.enqueue()
    lines = [r.getMessage() for r in caplog.records if r.name == "django_tasks"]
    assert len(lines) == 1 and "enqueued" in lines[0] and result.id in lines[0]


@pytest.mark.parametrize("declared, final", [(meaning, "SUCCESSFUL"), (raise_value_error, "FAILED")])
def test_a_run_logs_started_then_finished(redis_conn, caplog, declared, final):
    result = declared.enqueue()
    with caplog.at_level(logging.DEBUG, logger="django_tasks"):
        run_simple_worker()
    lines = [r.getMessage() for r in caplog.records if r.name == "django_tasks"]
    assert len(lines) == 2, lines
    assert "state=RUNNING" in lines[0] and result.id in lines[0]
    assert f"state={final}" in lines[1] and result.id in lines[1]


def test_the_forking_worker_logs_django_tasks_lines(start_worker):
    result = meaning.enqueue()
    worker = start_worker("default", extra=())
    wait_for(lambda: (result.refresh(), result.is_finished)[1], timeout=60, message="the task to finish")
    wait_for(lambda: f"id={result.id} path={meaning.module_path} state=SUCCESSFUL" in worker.output(),
             message="django-tasks' finished line in the worker's log")
    assert f"id={result.id} path={meaning.module_path} state=RUNNING" in worker.output()


def test_tasks_go_to_the_rq_queue_they_name(redis_conn):
    default = echo.enqueue()
    high = echo.using(queue_name="high").enqueue()
    assert get_queue("default").job_ids == [default.id] and get_queue("high").job_ids == [high.id]


def test_the_context_shows_this_attempt_running_on_this_worker(start_worker):
    result = what_i_see.enqueue()
    start_worker("default", extra=())
    wait_for(lambda: (result.refresh(), result.is_finished)[1], timeout=60, message="the task to finish")
    seen = result.return_value
    assert seen["id"] == result.id and seen["attempt"] == 1 and seen["status"] == TaskResultStatus.RUNNING
    assert seen["worker"] == result.worker_ids[0] and seen["worker"]
    # RQ's start time of this run (the horse's; the row's is taken just before the fork).
    assert seen["started"] == seen["last_attempted"]
    assert result.enqueued_at <= datetime.fromisoformat(seen["started"]) <= result.finished_at


def test_the_context_is_built_from_the_run_not_from_the_row_the_worker_has_yet_to_write(redis_conn):
    result = what_i_see.enqueue()
    run_simple_worker()  # its row writes go through a writer thread, after the job has begun
    result.refresh()
    seen = result.return_value
    assert (seen["attempt"], seen["status"], seen["worker"]) == (1, TaskResultStatus.RUNNING, result.worker_ids[0])
    assert seen["started"] is not None


def test_the_context_counts_attempts_from_one(redis_conn, settings):
    settings.TASKS = {**settings.TASKS, "retrying": {"BACKEND": "jobs.tasks_backend.RQBackend",
                                                     "OPTIONS": {"RETRIES": 1}}}
    result = fail_first_attempt.using(backend="retrying").enqueue()
    run_simple_worker()
    result.refresh()
    assert result.status == TaskResultStatus.SUCCESSFUL and result.return_value == 2 and result.attempts == 2


def test_check_passes_with_the_shipped_settings():
    assert list(default_task_backend.check()) == []


@override_settings(TASKS={"default": {"BACKEND": "jobs.tasks_backend.RQBackend", "QUEUES": ["default", "ghost"]}})
def test_a_queue_rq_lacks_is_a_check_error_and_refused_at_enqueue(redis_conn):
    errors = list(default_task_backend.check())
    assert len(errors) == 1 and isinstance(errors[0], Error) and "'ghost'" in errors[0].msg
    assert "RQ_QUEUES" in errors[0].hint
    with pytest.raises(InvalidTaskError, match="Queue 'ghost' is not valid for backend"):
        echo.using(queue_name="ghost").enqueue()


def test_a_task_whose_queue_left_rq_queues_is_refused_at_enqueue(redis_conn, settings):
    declared = echo.using(queue_name="low")
    settings.RQ_QUEUES = {name: config for name, config in settings.RQ_QUEUES.items() if name != "low"}
    with pytest.raises(InvalidTaskError, match="Queue 'low' is not valid for backend"):
        declared.enqueue()
    with pytest.raises(InvalidTaskError, match="Queue 'low' is not valid for backend"):
        async_to_sync(declared.aenqueue)()


@override_settings(TASKS={"default": {"BACKEND": "jobs.tasks_backend.RQBackend", "QUEUES": []}})
def test_an_empty_queues_setting_means_rq_queues(redis_conn, settings):
    assert default_task_backend.queues == set(settings.RQ_QUEUES)
    assert list(default_task_backend.check()) == []
    with pytest.raises(InvalidTaskError, match="Queue 'ghost' is not valid for backend"):
        echo.using(queue_name="ghost").enqueue()
