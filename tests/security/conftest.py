"""Security fixtures: the dashboard's users and records (the browser is tests/conftest.py's)."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import Permission

from tests.conftest import CHROMIUM
from tests.dashboard.conftest import (  # noqa: F401  (shared fixtures)
    make_record, operator, operator_user, reader, readonly_user,
)


def pytest_collection_modifyitems(config, items):
    for item in items:
        if "tests/security/" in str(item.fspath) and item.get_closest_marker("browser") and CHROMIUM is None:
            item.add_marker(pytest.mark.skip(reason="no chromium on PATH"))


@pytest.fixture
def nonstaff_user(django_user_model):
    """Logged-in but not staff, though holding both permissions: still nothing."""
    user = django_user_model.objects.create_user("outsider", password="pw")
    user.user_permissions.add(*Permission.objects.filter(content_type__app_label="jobs"))
    return user


@pytest.fixture
def superuser(django_user_model):
    return django_user_model.objects.create_superuser("root", password="pw")


@pytest.fixture(autouse=True)
def fast_password_hashing(settings):
    """Users are made per test by the hundred here: a fast hasher keeps the matrix quick."""
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


# --- script payloads in every place the pages show stored data ----------------------------------------

PAYLOADS = {
    "args": "<script>alert('args')</script>",
    "kwargs": "\"><img src=x onerror=alert('kwargs')>",
    "result": "<svg onload=alert('result')></svg>",
    "traceback": "</pre><script>alert('traceback')</script>",
    "error_message": "<iframe src=javascript:alert('message')></iframe>",
    "error_type": "<img src=x onerror=alert('type')>",
    "func_path": "jobs.<script>alert('func')</script>",
    "queue": "<script>alert('queue')</script>",
    "worker": "<img src=x onerror=alert('worker')>",
    "audit": "<script>alert('audit')</script>",
}
INJECTED = ("<script>alert", "<img src=x", "<svg onload", "<iframe src", "\"><img")


@pytest.fixture
def payload_records(make_record, redis_conn, django_user_model):
    """Rows (and an audit entry and a user) carrying script payloads in every field the pages show."""
    from jobs.models import AuditEntry, Status

    p = PAYLOADS
    failed = make_record(Status.FAILED, func_path=p["func_path"], queue=p["queue"], args=[p["args"], {"x": p["args"]}],
                         kwargs={p["kwargs"]: p["kwargs"], "token": p["kwargs"]}, error_type=p["error_type"],
                         error_message=p["error_message"], traceback=p["traceback"] + "\n" + p["error_message"],
                         worker_name=p["worker"], hostname=p["worker"])
    completed = make_record(Status.COMPLETED, func_path=p["func_path"], queue=p["queue"], args=[p["args"]],
                            result={"out": p["result"], p["result"]: 1})
    running = make_record(Status.RUNNING, func_path=p["func_path"], queue="default", args=[p["args"]],
                          progress=0.5, progress_message=p["args"], worker_name=p["worker"])
    user = django_user_model.objects.create_user(p["audit"], password="pw")
    AuditEntry.objects.create(user=user, username=p["audit"], action=p["audit"], record_id=failed.pk,
                              outcome="<img src=x>", detail={p["audit"]: p["audit"]})  # outcome: 16 chars max
    return {"failed": failed, "completed": completed, "running": running}


def payload_pages(records) -> list[str]:
    from django.urls import reverse

    return [reverse("overview"), reverse("job_list"), reverse("failure_list"), reverse("queue_list"),
            reverse("audit_list"), reverse("worker_list")] + [
        reverse("job_detail", args=[records[k].pk]) for k in ("failed", "completed", "running")]
