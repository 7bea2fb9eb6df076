"""A Django Tasks backend that runs tasks on RQ as tracked BackgroundTaskRecords.

    TASKS = {"default": {"BACKEND": "jobs.tasks_backend.RQBackend", "QUEUES": ["default", "high", "low"]}}

    from django_tasks import task          # Django 6: from django.tasks import task

    @task(queue_name="high")
    def send_report(user_id: int) -> str: ...

    result = send_report.enqueue(42)       # a pending record; its id is result.id
    send_report.get_result(result.id).status

Enqueue goes through jobs.api (row in the caller's transaction, RQ push on commit), so
a task is a job like any other: the dashboard, reconciler, retries and cancel apply.
The worker imports the record's ``func_path``. For a task declared on this backend that
is the task itself, an RQTask, which is callable; for a task declared on another backend
and sent here with ``.using(backend=...)`` it is ``<task path>.func``, the plain function.
"""

from __future__ import annotations

import builtins
import dataclasses
import re
import traceback as tb
import uuid
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.core import checks
from django.utils import timezone
from django.utils.module_loading import import_string
from rq.job import get_current_job

try:  # Django 6.0 ships the framework as django.tasks
    from django.tasks import TaskContext, TaskResult, TaskResultStatus
    from django.tasks.backends.base import BaseTaskBackend
    from django.tasks.base import Task, TaskError
    from django.tasks.exceptions import InvalidTask as InvalidTaskError
    from django.tasks.exceptions import TaskResultDoesNotExist
    from django.tasks.signals import task_enqueued, task_finished, task_started
    from django.tasks.utils import normalize_json
except ImportError:  # Django 5.2: the django-tasks backport, the same API under django_tasks
    from django_tasks import TaskContext, TaskResult, TaskResultStatus
    from django_tasks.backends.base import BaseTaskBackend
    from django_tasks.base import Task, TaskError
    from django_tasks.exceptions import InvalidTaskError, TaskResultDoesNotExist
    from django_tasks.signals import task_enqueued, task_finished, task_started
    from django_tasks.utils import normalize_json

from . import api
from .connection import queue_names
from .models import BackgroundTaskRecord, Status, TaskAttempt

STATUS_MAP = {
    Status.PENDING: TaskResultStatus.READY,
    Status.RUNNING: TaskResultStatus.RUNNING,
    Status.COMPLETED: TaskResultStatus.SUCCESSFUL,
    Status.FAILED: TaskResultStatus.FAILED,
    # The framework has no cancelled state: a cancelled job is FAILED with a JobCancelled error.
    Status.CANCELLED: TaskResultStatus.FAILED,
}


class JobCancelled(Exception):
    """Reported in TaskResult.errors for a job an operator cancelled."""


class WorkerLost(Exception):
    """Reported in TaskResult.errors for an attempt whose worker died or was killed."""


# error_type values the engine records for failures that are not a Python exception of the job.
ENGINE_ERRORS = {
    "JobTimeoutException": "rq.timeouts.JobTimeoutException",
    "WorkerLost": f"{__name__}.WorkerLost",
    "WorkHorseKilled": f"{__name__}.WorkerLost",
    "WorkHorseExited": f"{__name__}.WorkerLost",
    "Stopped": f"{__name__}.JobCancelled",
}
_EXCEPTION_LINE = re.compile(r"^([A-Za-z_][\w.]*)(?::|$)")


class RQTask(Task):
    """The backend's Task: callable, so an RQ worker importing its path runs the function."""

    __slots__ = ()

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        """Run the task. Inside an RQ job: with the task_started and task_finished signals,
        and a context built from what the worker knows (its row may not say RUNNING yet)."""
        job = get_current_job()
        if job is None:
            if self.takes_context:
                raise RuntimeError(f"{self.module_path} takes a context and can only run inside an RQ job")
            return normalize_json(self.call(*args, **kwargs))
        backend = self.get_backend()
        running = backend.running_result(self, job)
        task_started.send(type(backend), task_result=running)
        try:
            if self.takes_context:
                value = self.call(TaskContext(task_result=running), *args, **kwargs)
            else:
                value = self.call(*args, **kwargs)
            # As Django's own backends do: a return value that is not JSON fails the task.
            value = normalize_json(value)
        except BaseException as exc:
            error = TaskError(exception_class_path=f"{type(exc).__module__}.{type(exc).__qualname__}",
                              traceback="".join(tb.format_exception(exc)))
            failed = dataclasses.replace(running, status=TaskResultStatus.FAILED, finished_at=timezone.now(),
                                         errors=[*running.errors, error])
            task_finished.send(type(backend), task_result=failed)  # logged with this exception
            raise
        done = dataclasses.replace(running, status=TaskResultStatus.SUCCESSFUL, finished_at=timezone.now())
        object.__setattr__(done, "_return_value", value)
        task_finished.send(type(backend), task_result=done)
        return value


class RQBackend(BaseTaskBackend):
    """Runs tasks on RQ through jobs.api; results are read back from the job records."""

    task_class = RQTask
    supports_defer = True
    supports_async_task = True
    supports_get_result = True
    supports_priority = False  # RQ runs a queue in order; route urgent tasks to another queue instead

    def __init__(self, alias: str, params: dict) -> None:
        super().__init__(alias, params)
        if not params.get("QUEUES"):  # unset or empty: every queue of RQ_QUEUES, as django-tasks-rq does
            self.queues = set(queue_names())
        self.retries = int(self.options.get("RETRIES", 0))
        self.timeout = self.options.get("TIMEOUT")

    def validate_task(self, task: Task) -> None:
        """Django's checks, and the task's queue must be one of RQ_QUEUES (a queue named in
        TASKS but missing there would take the job and never run it)."""
        super().validate_task(task)
        if task.queue_name not in settings.RQ_QUEUES:
            raise InvalidTaskError(f"Queue '{task.queue_name}' is not valid for backend: it is not in RQ_QUEUES.")

    def check(self, **kwargs: Any):
        """An error for every queue of TASKS' QUEUES that RQ_QUEUES lacks."""
        yield from super().check(**kwargs)
        for name in sorted(self.queues - set(settings.RQ_QUEUES)):
            yield checks.Error(f"TASKS[{self.alias!r}] names queue {name!r}, which RQ_QUEUES lacks",
                               hint=f"Add {name!r} to RQ_QUEUES or remove it from QUEUES.", obj=self.alias,
                               id="jobs.E001")

    def enqueue(self, task: Task, args: Any, kwargs: Any) -> TaskResult:
        """Record the task as a pending job and push it to RQ when the caller's transaction commits."""
        self.validate_task(task)
        delay = None
        if task.run_after is not None:
            delay = max(task.run_after - timezone.now(), timedelta(0))
        # build_record rather than api.enqueue: a task's own keyword arguments may be named
        # queue, retries or timeout, which api.enqueue would take as its options.
        record = api.build_record(
            task_func_path(task), list(args), dict(kwargs), queue=task.queue_name, retries=self.retries,
            timeout=self.timeout, delay=delay,
        )
        api.save_and_push([record])
        result = self._to_result(record, task, attempts=[])
        task_enqueued.send(type(self), task_result=result)
        return result

    def get_result(self, result_id: str) -> TaskResult:
        """The task result of the job record `result_id`; TaskResultDoesNotExist if there is none."""
        try:
            record = BackgroundTaskRecord.objects.get(pk=uuid.UUID(str(result_id)))
        except (ValueError, BackgroundTaskRecord.DoesNotExist):
            raise TaskResultDoesNotExist(result_id) from None
        task = self._task_for(record)
        attempts = list(record.attempt_set.order_by("number"))
        return self._to_result(record, task, attempts)

    def running_result(self, task: Task, job) -> TaskResult:
        """The result a task sees while it runs, from RQ's current job: status RUNNING, this
        attempt (numbered from 1, by this worker, started now) after the finished ones. The
        row's own start is written on another thread and may not have landed yet."""
        finished = list(TaskAttempt.objects.filter(record_id=job.id).exclude(outcome=TaskAttempt.Outcome.RUNNING)
                        .order_by("number"))
        started_at = job.started_at or timezone.now()
        if task.queue_name != job.origin and job.origin in self.queues:
            task = task.using(queue_name=job.origin)
        return TaskResult(
            task=task, id=str(job.id), status=TaskResultStatus.RUNNING, enqueued_at=job.enqueued_at,
            started_at=finished[0].started_at if finished else started_at, finished_at=None,
            last_attempted_at=started_at, args=list(job.args), kwargs=dict(job.kwargs), backend=self.alias,
            errors=[task_error(a.error_type, a.traceback or a.error_message) for a in finished
                    if a.outcome in (TaskAttempt.Outcome.FAILED, TaskAttempt.Outcome.LOST)],
            worker_ids=[*(a.worker_name for a in finished), job.worker_name or ""],
        )

    def _task_for(self, record: BackgroundTaskRecord) -> Task:
        path = record.func_path
        # "<task path>.func" (see task_func_path): the Task is one attribute up.
        candidates = [path.removesuffix(".func"), path] if path.endswith(".func") else [path]
        target = None
        for candidate in candidates:
            try:
                target = import_string(candidate)
                break
            except ImportError:
                continue
        if target is None:
            raise TaskResultDoesNotExist(f"{record.pk}: {path} cannot be imported")
        try:
            if isinstance(target, Task):
                task = target if target.backend == self.alias else target.using(backend=self.alias)
                return task if task.queue_name == record.queue_name else task.using(queue_name=record.queue_name)
            # A job enqueued through jobs.api, not as a task: describe it as one of this backend.
            return self.task_class(func=target, backend=self.alias, queue_name=record.queue_name)
        except InvalidTaskError as exc:
            raise TaskResultDoesNotExist(f"{record.pk}: {path} is not a task of this backend: {exc}") from None

    def _to_result(self, record: BackgroundTaskRecord, task: Task, attempts: list[TaskAttempt]) -> TaskResult:
        errors = [task_error(a.error_type, a.traceback or a.error_message) for a in attempts
                  if a.outcome in (TaskAttempt.Outcome.FAILED, TaskAttempt.Outcome.LOST,
                                                  TaskAttempt.Outcome.INTERRUPTED)]
        if record.status == Status.FAILED and not errors:
            errors.append(task_error(record.error_type, record.traceback or record.error_message))
        if record.status == Status.CANCELLED:
            errors.append(TaskError(exception_class_path=f"{__name__}.JobCancelled",
                                    traceback=record.error_message or "cancelled"))
        result = TaskResult(
            task=task, id=str(record.pk), status=STATUS_MAP[record.status], enqueued_at=record.enqueued_at,
            started_at=attempts[0].started_at if attempts else record.started_at,
            finished_at=record.finished_at,
            last_attempted_at=attempts[-1].started_at if attempts else record.started_at,
            args=record.args, kwargs=record.kwargs, backend=self.alias, errors=errors,
            worker_ids=[a.worker_name for a in attempts],
        )
        if record.status == Status.COMPLETED:
            object.__setattr__(result, "_return_value", record.result)
        return result


def task_func_path(task: Task) -> str:
    """The dotted path a worker imports to run `task`: the task itself if callable, else its function."""
    path = task.module_path
    try:
        target = import_string(path)
    except ImportError:
        target = None
    if isinstance(target, Task) and not callable(target):
        if task.takes_context:
            raise InvalidTaskError(f"{path} takes a context: declare it with this backend's @task to run it on RQ")
        return f"{path}.func"
    return path


def task_error(error_type: str, traceback: str) -> TaskError:
    """A TaskError whose exception_class_path resolves, from what the engine stored for a failure."""
    return TaskError(exception_class_path=exception_path(error_type, traceback), traceback=traceback)


def exception_path(error_type: str, traceback: str) -> str:
    """The dotted path of a failure's exception class, read from its traceback's last line."""
    if error_type in ENGINE_ERRORS:
        return ENGINE_ERRORS[error_type]
    for line in reversed((traceback or "").strip().splitlines()):
        if line and not line[0].isspace():
            match = _EXCEPTION_LINE.match(line)
            name = match.group(1) if match else ""
            if name.rsplit(".", 1)[-1] == error_type and "." in name:
                return name  # Python prints non-builtin exceptions with their module
            break
    if isinstance(getattr(builtins, error_type, None), type):
        return f"builtins.{error_type}"
    return "builtins.Exception"
