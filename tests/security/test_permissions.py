"""Who may do what: every URL and action, for every kind of visitor, GET and POST.

Roles: anonymous, logged in but not staff (even holding both permissions), read-only staff,
operator staff, superuser. LOGIN means a redirect to the dashboard's login page, ADMIN_LOGIN to
the admin's.
"""

from __future__ import annotations

import pytest
from django.test import Client
from django.urls import reverse

from jobs.models import Status

pytestmark = pytest.mark.django_db

ROLES = ("anonymous", "nonstaff", "reader", "operator", "superuser")
LOGIN, ADMIN_LOGIN = "login", "admin-login"
VIEWERS = {"anonymous": LOGIN, "nonstaff": 403, "reader": 200, "operator": 200, "superuser": 200}
ACTORS = {"anonymous": LOGIN, "nonstaff": 403, "reader": 403, "operator": 302, "superuser": 302}
NOBODY = dict.fromkeys(ROLES, 405)
EVERYBODY = dict.fromkeys(ROLES, 200)
# The admin shows whole rows and filters freely: it is for those who may operate, not the read-only role.
STAFF_ADMIN = {"anonymous": ADMIN_LOGIN, "nonstaff": ADMIN_LOGIN, "reader": ADMIN_LOGIN, "operator": 200,
               "superuser": 200}

PAGES = ["overview", "job_list", "failure_list", "worker_list", "queue_list", "audit_list"]

# (method, url key, data, expected status per role)
MATRIX = (
    [("get", name, None, VIEWERS) for name in PAGES + ["job_detail"]]
    + [("post", name, {}, NOBODY) for name in PAGES + ["job_detail"]]
    + [
        ("post", "job_retry", {}, ACTORS),
        ("post", "job_cancel", {"confirmed": "1"}, ACTORS),
        ("post", "job_cancel", {}, {**ACTORS, "operator": 200, "superuser": 200}),  # asks to confirm
        ("post", "job_delete", {"confirmed": "1"}, ACTORS),
        ("post", "job_bulk", {"action": "retry", "ids": "RECORD"}, {**ACTORS, "operator": 200, "superuser": 200}),
        ("post", "queue_pause", {}, ACTORS),
        ("post", "queue_resume", {}, ACTORS),
    ]
    + [("get", name, None, NOBODY) for name in ("job_retry", "job_cancel", "job_delete", "job_bulk",
                                                 "queue_pause", "queue_resume", "logout")]
    + [
        ("get", "metrics", None, {"anonymous": 401, "nonstaff": 403, "reader": 200, "operator": 200,
                                  "superuser": 200}),
        ("post", "metrics", {}, NOBODY),
        ("get", "healthz", None, EVERYBODY),
        ("post", "healthz", {}, NOBODY),
        ("get", "admin", None, STAFF_ADMIN),
        ("get", "admin_records", None, STAFF_ADMIN),
        ("get", "admin_users", None, {**STAFF_ADMIN, "operator": 403}),
        ("get", "login", None, EVERYBODY),
        ("post", "logout", {}, dict.fromkeys(ROLES, 302)),
    ]
)


def _url(key: str, record) -> str:
    fixed = {"metrics": "/metrics", "healthz": "/healthz", "admin": "/admin/",
             "admin_records": "/admin/jobs/backgroundtaskrecord/", "admin_users": "/admin/auth/user/"}
    if key in fixed:
        return fixed[key]
    if key in ("job_detail", "job_retry", "job_cancel", "job_delete"):
        return reverse(key, args=[record[key]])
    if key in ("queue_pause", "queue_resume"):
        return reverse(key, args=["default"])
    return reverse(key)


@pytest.fixture
def records(make_record):
    failed = make_record(Status.FAILED)
    return {"job_detail": failed.pk, "job_retry": failed.pk, "job_delete": make_record(Status.COMPLETED).pk,
            "job_cancel": make_record(Status.PENDING).pk}


@pytest.fixture
def visitor(request, db):
    role = request.param
    client = Client()
    if role != "anonymous":
        client.force_login(request.getfixturevalue({"nonstaff": "nonstaff_user", "reader": "readonly_user",
                                                    "operator": "operator_user", "superuser": "superuser"}[role]))
    return role, client


@pytest.mark.parametrize("visitor", ROLES, indirect=True)
@pytest.mark.parametrize("method, key, data, expected", MATRIX,
                         ids=[f"{m.upper()} {k}{'+' + ','.join(d) if d else ''}" for m, k, d, _ in MATRIX])
def test_permission_matrix(visitor, method, key, data, expected, records, redis_conn):
    role, client = visitor
    url = _url(key, records)
    if data and data.get("ids") == "RECORD":
        data = {**data, "ids": [str(records["job_retry"])]}
    response = getattr(client, method)(url, data) if method == "post" else client.get(url)
    want = expected[role]
    if want == LOGIN:
        assert response.status_code == 302, (role, url)
        assert response["Location"].startswith(reverse("login") + "?next="), (role, url)
    elif want == ADMIN_LOGIN:
        assert response.status_code == 302, (role, url)
        assert response["Location"].startswith("/admin/login/?next="), (role, url)
    else:
        assert response.status_code == want, (role, method, url, response.status_code)
    if method == "post" and want in (LOGIN, 403, 405):
        assert not _changed(records), (role, url)


def _changed(records) -> bool:
    from jobs.models import AuditEntry, BackgroundTaskRecord

    statuses = dict(BackgroundTaskRecord.objects.values_list("pk", "status"))
    return AuditEntry.objects.exists() or statuses != {
        records["job_retry"]: Status.FAILED, records["job_delete"]: Status.COMPLETED,
        records["job_cancel"]: Status.PENDING}


@pytest.mark.parametrize("visitor", ["operator", "superuser"], indirect=True)
def test_an_acting_role_really_acts(visitor, records, redis_conn):
    from jobs.models import AuditEntry, BackgroundTaskRecord

    _, client = visitor
    client.post(reverse("job_retry", args=[records["job_retry"]]))
    client.post(reverse("job_delete", args=[records["job_delete"]]), {"confirmed": "1"})
    assert BackgroundTaskRecord.objects.get(pk=records["job_retry"]).status == Status.PENDING
    assert not BackgroundTaskRecord.objects.filter(pk=records["job_delete"]).exists()
    assert set(AuditEntry.objects.values_list("action", flat=True)) == {"retry", "delete"}


def test_htmx_requests_get_the_same_answers(client, readonly_user, records, redis_conn):
    """An htmx request is no back door: 403 for the reader, and a login redirect when anonymous."""
    hx = {"HTTP_HX_REQUEST": "true"}
    assert client.get(reverse("overview"), **hx).status_code == 302
    client.force_login(readonly_user)
    assert client.post(reverse("job_retry", args=[records["job_retry"]]), **hx).status_code == 403
    assert client.post(reverse("queue_pause", args=["default"]), **hx).status_code == 403
