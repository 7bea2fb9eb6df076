"""The Django Tasks backend: @task functions run on a real RQ worker as tracked records.

The task functions live at module level here, so the worker subprocess imports them by
the path the backend records.
"""

from datetime import timedelta

import pytest
from django.db import transaction
from django.utils import timezone
from django_tasks import TaskResultStatus, default_task_backend, task, task_backends
from django_tasks.base import Task
from django_tasks.exceptions import InvalidTaskError, TaskResultDoesNotExist

from jobs import api
from jobs.models import BackgroundTaskRecord, Status
from jobs.tasks_backend import JobCancelled, RQBackend, RQTask, task_func_path
from tests.conftest import wait_for


@task
def add(a: int, b: int) -> int:
    return a + b


@task(queue_name="high")
def explode(message: str) -> None:
    raise KeyError(message)


@task(takes_context=True)
def which_attempt(context, label: str) -> dict:
    return {"label": label, "attempt": context.attempt, "id": context.task_result.id}


@task
def pair(queue: str, timeout: int) -> tuple:
    # Keyword arguments named like jobs.api's options must reach the function untouched.
    return (queue, timeout)


def triple(x: int) -> int:
    return 3 * x


# A plain Task, as another backend's @task makes: not callable, so the worker runs .func.
triple = Task(func=triple)


def plain_with_context(context) -> int:
    return context.attempt


plain_with_context = Task(func=plain_with_context, takes_context=True)


def finished(result):
    def check():
        result.refresh()
        return result.is_finished
    return check


def test_the_configured_backend_is_rq():
    assert isinstance(task_backends["default"], RQBackend)
    assert isinstance(add, RQTask)
    assert default_task_backend.supports_get_result and default_task_backend.supports_defer


@pytest.mark.django_db(transaction=True)
def test_tasks_run_on_a_real_worker(start_worker):
    ok = add.enqueue(2, 3)
    boom = explode.enqueue("nope")
    ctx = which_attempt.enqueue(label="x")
    named = pair.enqueue(queue="q", timeout=7)
    plain = triple.enqueue(5)
    assert ok.status == TaskResultStatus.READY
    record = BackgroundTaskRecord.objects.get(pk=ok.id)
    assert (record.func_path, record.args, record.queue_name) == ("tests.jobs.test_tasks_backend.add", [2, 3],
                                                                  "default")
    assert BackgroundTaskRecord.objects.get(pk=boom.id).queue_name == "high"
    assert BackgroundTaskRecord.objects.get(pk=plain.id).func_path == "tests.jobs.test_tasks_backend.triple.func"

    start_worker()
    for result in (ok, boom, ctx, named, plain):
        wait_for(finished(result), timeout=60, message=f"task {result.task.name} to finish")

    assert ok.status == TaskResultStatus.SUCCESSFUL
    assert ok.return_value == 5
    assert ok.attempts == 1 and ok.worker_ids[0]
    assert ok.started_at and ok.finished_at and ok.finished_at >= ok.started_at
    assert ok.errors == []
    assert BackgroundTaskRecord.objects.get(pk=ok.id).status == Status.COMPLETED

    assert boom.status == TaskResultStatus.FAILED
    assert boom.errors[0].exception_class is KeyError
    assert "nope" in boom.errors[0].traceback
    with pytest.raises(ValueError, match="failed"):
        boom.return_value

    assert ctx.return_value == {"label": "x", "attempt": 1, "id": ctx.id}
    assert named.return_value == ["q", 7]
    assert plain.return_value == 15


@pytest.mark.django_db(transaction=True)
def test_get_result_reads_the_record(drain):
    enqueued = add.enqueue(20, 22)
    fetched = default_task_backend.get_result(enqueued.id)
    assert (fetched.id, fetched.status, fetched.args) == (enqueued.id, TaskResultStatus.READY, [20, 22])
    assert add.get_result(enqueued.id).task.func is add.func

    drain()
    done = add.get_result(enqueued.id)
    assert done.status == TaskResultStatus.SUCCESSFUL
    assert done.return_value == 42
    assert done.backend == "default"


@pytest.mark.django_db
def test_unknown_ids_do_not_exist():
    for result_id in ("not-a-uuid", "6f1c1d3e-8e0b-4a3b-9a51-1c6f0c5d9f00"):
        with pytest.raises(TaskResultDoesNotExist):
            default_task_backend.get_result(result_id)


@pytest.mark.django_db(transaction=True)
def test_a_rolled_back_enqueue_leaves_nothing(redis_conn):
    with pytest.raises(RuntimeError), transaction.atomic():
        add.enqueue(1, 1)
        raise RuntimeError("roll back")
    assert not BackgroundTaskRecord.objects.exists()
    assert not redis_conn.keys("rq:job:*")


@pytest.mark.django_db(transaction=True)
def test_run_after_schedules_and_a_cancel_reports_failed(redis_conn):
    later = timezone.now() + timedelta(hours=1)
    result = add.using(run_after=later).enqueue(1, 2)
    record = BackgroundTaskRecord.objects.get(pk=result.id)
    assert record.scheduled_for is not None and abs((record.scheduled_for - later).total_seconds()) < 5
    assert redis_conn.zscore("rq:scheduled:default", result.id) is not None

    assert api.cancel(record) == "cancelled"
    result.refresh()
    assert result.status == TaskResultStatus.FAILED
    assert result.errors[-1].exception_class is JobCancelled


@pytest.mark.django_db
def test_invalid_tasks_are_refused():
    with pytest.raises(InvalidTaskError, match="priority"):
        add.using(priority=10)
    with pytest.raises(InvalidTaskError, match="not valid"):
        add.using(queue_name="nowhere")


@pytest.mark.django_db
def test_a_context_task_of_another_task_class_is_refused():
    assert task_func_path(which_attempt) == "tests.jobs.test_tasks_backend.which_attempt"
    assert task_func_path(triple) == "tests.jobs.test_tasks_backend.triple.func"
    with pytest.raises(InvalidTaskError, match="takes a context"):
        plain_with_context.enqueue()
    assert not BackgroundTaskRecord.objects.exists()


def test_backend_queues_default_to_rq_queues(settings):
    backend = RQBackend("other", {"BACKEND": "jobs.tasks_backend.RQBackend"})
    assert backend.queues == set(settings.RQ_QUEUES)
    assert task_backends["default"].queues == set(settings.RQ_QUEUES)
