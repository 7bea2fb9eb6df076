"""Every page is staff-only: login redirect for visitors, 403 without the view permission,
and every POST needs the operate permission and a CSRF token."""

import uuid

import pytest
from django.test import Client
from django.urls import reverse

from jobs.models import AuditEntry

pytestmark = pytest.mark.django_db

PAGES = ["overview", "job_list", "failure_list", "worker_list", "queue_list", "audit_list"]


@pytest.fixture
def pages(make_record, redis_conn):
    record = make_record("failed")
    return [reverse(name) for name in PAGES] + [reverse("job_detail", args=[record.pk])]


def test_anonymous_visitors_are_sent_to_login(client, pages):
    for url in pages:
        response = client.get(url)
        assert response.status_code == 302, url
        assert response["Location"].startswith(reverse("login") + "?next="), url


def test_staff_without_the_view_permission_get_403(client, staff_user, pages):
    client.force_login(staff_user)
    for url in pages:
        response = client.get(url)
        assert response.status_code == 403, url
        assert b"Can view background task record" in response.content


def test_non_staff_with_the_permission_get_403(client, django_user_model, pages):
    from django.contrib.auth.models import Permission

    user = django_user_model.objects.create_user("outsider", password="pw")
    user.user_permissions.add(Permission.objects.get(codename="view_backgroundtaskrecord"))
    client.force_login(user)
    for url in pages:
        assert client.get(url).status_code == 403, url


def test_readonly_user_sees_every_page_without_buttons(reader, pages):
    for url in pages:
        response = reader.get(url)
        assert response.status_code == 200, url
        body = response.content.decode()
        assert "Retry" not in body and "Cancel</button>" not in body and "Pause</button>" not in body, url
        assert "read-only" in body


def test_readonly_user_cannot_post_anything(reader, make_record, redis_conn):
    record = make_record("failed")
    posts = [reverse(name, args=[record.pk]) for name in ("job_retry", "job_cancel", "job_delete")]
    posts += [reverse("job_bulk"), reverse("queue_pause", args=["default"]), reverse("queue_resume", args=["default"])]
    for url in posts:
        assert reader.post(url, {"confirmed": "1", "action": "retry", "scope": "all"}).status_code == 403, url
        assert reader.post(url, {"confirmed": "1"}, HTTP_HX_REQUEST="true").status_code == 403, url
    record.refresh_from_db()
    assert record.status == "failed"
    assert not AuditEntry.objects.exists()


def test_actions_are_post_only(operator, make_record):
    record = make_record("failed")
    assert operator.get(reverse("job_retry", args=[record.pk])).status_code == 405
    assert operator.get(reverse("job_bulk")).status_code == 405


def test_posts_without_csrf_token_are_refused(operator_user, make_record, redis_conn):
    client = Client(enforce_csrf_checks=True)
    client.force_login(operator_user)
    record = make_record("failed")
    assert client.post(reverse("job_retry", args=[record.pk])).status_code == 403
    record.refresh_from_db()
    assert record.status == "failed"


def test_csrf_token_rides_on_body_hx_headers(operator):
    body = operator.get(reverse("overview")).content.decode()
    assert "<body hx-headers='{&quot;X-CSRFToken&quot;: &quot;" in body or '<body hx-headers=\'{"X-CSRFToken": "' in body


def test_missing_and_malformed_ids_are_404(operator):
    assert operator.get(reverse("job_detail", args=[uuid.uuid4()])).status_code == 404
    assert operator.get("/jobs/not-a-uuid/").status_code == 404
    assert operator.post(reverse("job_retry", args=[uuid.uuid4()])).status_code == 404
    assert operator.post(reverse("queue_pause", args=["nope"])).status_code == 404


def test_login_page_renders(client):
    response = client.get(reverse("login"))
    assert response.status_code == 200 and b"Log in to jobdeck" in response.content
