"""The admin: for superusers and operators only, masked keyword arguments, no raw lookups, 429 when throttled."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import Permission
from django.test import Client

from jobs.masking import MASK
from jobs.models import Status

pytestmark = pytest.mark.django_db

RECORDS = "/admin/jobs/backgroundtaskrecord/"
SECRET = "hunter2-very-secret"


@pytest.fixture
def secret_record(make_record):
    return make_record(Status.FAILED, kwargs={"password": SECRET, "db_api_key": SECRET, "customer": "acme"})


def test_the_readonly_role_does_not_reach_the_admin(reader, secret_record):
    for url in ("/admin/", RECORDS, f"{RECORDS}{secret_record.pk}/change/"):
        response = reader.get(url)
        assert response.status_code == 302 and response["Location"].startswith("/admin/login/?next="), url
    assert SECRET.encode() not in reader.get(f"{RECORDS}{secret_record.pk}/change/", follow=True).content


def test_staff_with_other_model_permissions_reach_the_admin_but_not_the_jobs(client, django_user_model, secret_record):
    user = django_user_model.objects.create_user("useradmin", password="pw", is_staff=True)
    user.user_permissions.add(Permission.objects.get(codename="view_user"),
                              Permission.objects.get(codename="view_backgroundtaskrecord"))
    client.force_login(user)
    index = client.get("/admin/")
    assert index.status_code == 200 and b"/admin/auth/user/" in index.content
    assert RECORDS.encode() not in index.content
    assert client.get(RECORDS).status_code == 403
    assert client.get(f"{RECORDS}{secret_record.pk}/change/").status_code == 403


@pytest.mark.parametrize("who", ["operator", "superuser"])
def test_the_change_page_masks_sensitive_keyword_arguments(request, who, secret_record):
    user = request.getfixturevalue({"operator": "operator_user", "superuser": "superuser"}[who])
    client = Client()
    client.force_login(user)
    response = client.get(f"{RECORDS}{secret_record.pk}/change/")
    assert response.status_code == 200
    page = response.content.decode()
    assert SECRET not in page
    assert MASK in page and "acme" in page


@pytest.mark.parametrize("query", [
    "kwargs__password__startswith=h", "kwargs__password=hunter2-very-secret", "kwargs__icontains=hunter",
    "kwargs__has_key=password", "args__0=1", "traceback__contains=Error", "func_path__startswith=jobs",
])
def test_raw_lookups_are_refused(client, superuser, secret_record, query):
    client.force_login(superuser)
    response = client.get(f"{RECORDS}?{query}")
    assert response.status_code == 400, query
    assert SECRET.encode() not in response.content


def test_the_pages_own_filters_still_work(client, superuser, secret_record, make_record):
    client.force_login(superuser)
    other = make_record(Status.COMPLETED)
    failed = client.get(f"{RECORDS}?status__exact=failed")
    assert failed.status_code == 200
    assert str(secret_record.pk).encode() in failed.content and str(other.pk).encode() not in failed.content
    assert client.get(f"{RECORDS}?queue_name__exact=default").status_code == 200
    year = secret_record.enqueued_at.year
    assert client.get(f"{RECORDS}?enqueued_at__year={year}").status_code == 200
    assert client.get("/admin/jobs/taskattempt/?outcome__exact=failed").status_code == 200
    assert client.get("/admin/jobs/auditentry/?action__exact=retry").status_code == 200
    assert client.get("/admin/jobs/auditentry/?detail__icontains=x").status_code == 400


def test_rqs_own_dashboard_is_not_served(client, superuser, django_user_model, redis_conn,
                                         django_capture_on_commit_callbacks):
    """django-rq's admin pages show RQ's copy of every job (keyword arguments in clear) and delete,
    requeue or empty queues behind the record's back, unaudited, for any staff user: not served."""
    from jobs import api

    with django_capture_on_commit_callbacks(execute=True):
        record = api.enqueue("jobs.demo.add", 1, 2, password="hunter2-rq")
    clerk = django_user_model.objects.create_user("clerk", password="pw", is_staff=True)
    clerk.user_permissions.add(Permission.objects.get(codename="view_user"))
    for user in (superuser, clerk):
        client.force_login(user)
        for url in ("/admin/django_rq/dashboard/", "/admin/django_rq/dashboard/queues/0/",
                    f"/admin/django_rq/dashboard/queues/0/{record.pk}/"):
            response = client.get(url)
            assert response.status_code == 404, (user.username, url, response.status_code)
        assert client.post(f"/admin/django_rq/dashboard/queues/0/{record.pk}/delete/", {"post": "yes"}).status_code == 404
        assert b"django_rq" not in client.get("/admin/").content
    assert redis_conn.exists(f"rq:job:{record.pk}")


def test_the_operators_group_reaches_the_admin_and_a_one_action_role_does_not(client, django_user_model,
                                                                             secret_record):
    from dashboard.demo import create_groups

    groups = create_groups()
    for group, expected in (("operators", 200), ("retry only", 302), ("viewers", 302)):
        user = django_user_model.objects.create_user(group.replace(" ", "-"), password="pw", is_staff=True)
        user.groups.add(groups[group])
        client.force_login(user)
        response = client.get(f"{RECORDS}{secret_record.pk}/change/")
        assert response.status_code == expected, group
        assert SECRET.encode() not in response.content
