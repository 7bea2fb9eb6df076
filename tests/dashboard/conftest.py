"""Dashboard fixtures: users by permission, clients logged in as them, and record factories."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.contrib.auth.models import Permission
from django.utils import timezone

from jobs.models import BackgroundTaskRecord, Status, TaskAttempt

TRACEBACK = """Traceback (most recent call last):
  File "/app/jobs/demo.py", line 24, in fail
    raise ValueError(message)
ValueError: <script>alert('x')</script> & boom"""


def _user(django_user_model, username: str, *codenames: str):
    user = django_user_model.objects.create_user(username, password="pw", is_staff=True)
    user.user_permissions.add(*Permission.objects.filter(content_type__app_label="jobs", codename__in=codenames))
    return user


@pytest.fixture
def readonly_user(django_user_model):
    """Staff with the view permission only: sees everything, may do nothing."""
    return _user(django_user_model, "reader", "view_backgroundtaskrecord")


@pytest.fixture
def operator_user(django_user_model):
    """Staff who may view and operate (retry, cancel, delete, pause)."""
    return _user(django_user_model, "operator", "view_backgroundtaskrecord", "operate_backgroundtaskrecord")


@pytest.fixture
def operator(client, operator_user):
    client.force_login(operator_user)
    return client


@pytest.fixture
def reader(client, readonly_user):
    client.force_login(readonly_user)
    return client


@pytest.fixture
def make_record():
    """A row in a given state, written directly (no RQ job): for pages that only read."""
    def make(status: str = Status.PENDING, func_path: str = "jobs.demo.add", queue: str = "default",
             age: timedelta = timedelta(minutes=1), **fields) -> BackgroundTaskRecord:
        now = timezone.now()
        defaults = {"args": [1, 2], "enqueued_at": now - age, "queue_name": queue}
        if status in (Status.RUNNING, Status.COMPLETED, Status.FAILED, Status.CANCELLED) and "attempts" not in fields:
            defaults.update(attempts=1, started_at=now - age + timedelta(seconds=1), worker_name="w1",
                            hostname="host-a", pid=4242)
        if status in (Status.COMPLETED, Status.FAILED, Status.CANCELLED):
            defaults.update(finished_at=now - age + timedelta(seconds=2), duration_ms=1000)
        if status == Status.FAILED:
            defaults.update(error_type="ValueError", error_message="boom", traceback=TRACEBACK)
        record = BackgroundTaskRecord.objects.create(func_path=func_path, status=status, **{**defaults, **fields})
        if record.attempts:
            outcome = {"running": "running", "completed": "completed", "failed": "failed"}.get(status, "cancelled")
            TaskAttempt.objects.create(record=record, number=1, started_at=record.started_at or now,
                                       finished_at=record.finished_at, worker_name=record.worker_name,
                                       hostname=record.hostname, pid=record.pid, outcome=outcome,
                                       error_type=record.error_type, error_message=record.error_message,
                                       traceback=record.traceback)
        return record
    return make


HX = {"HTTP_HX_REQUEST": "true"}


def hx(target: str) -> dict:
    """Headers of an htmx request aimed at the element with this id."""
    return {"HTTP_HX_REQUEST": "true", "HTTP_HX_TARGET": target}


@pytest.fixture
def make_worker(redis_conn):
    """Register an RQ worker (no process) on `queues`, its last heartbeat `silent` ago; unregistered after."""
    from rq import Worker
    from rq.utils import utcformat

    from jobs.connection import get_queue

    made = []

    def make(name: str, queues=("default",), silent: timedelta = timedelta(0)) -> Worker:
        worker = Worker([get_queue(q) for q in queues], connection=redis_conn, name=name)
        worker.register_birth()
        worker.heartbeat()
        if silent:
            redis_conn.hset(worker.key, "last_heartbeat", utcformat(timezone.now() - silent))
        made.append(worker)
        return worker

    yield make
    for worker in made:
        worker.register_death()
