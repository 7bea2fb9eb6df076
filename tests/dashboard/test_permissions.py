"""One permission per operator action (jobs.actions): a "retry only" role, the operators group,
the operate permission as "all of them", enforced by the views, bulk and jobs.api alike."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import Permission
from django.urls import reverse

from dashboard.demo import create_groups
from jobs import actions, api, bulk
from jobs.models import AuditEntry, Status

from .conftest import HX

pytestmark = pytest.mark.django_db


def staff_with(django_user_model, username: str, *codenames: str):
    user = django_user_model.objects.create_user(username, password="pw", is_staff=True)
    user.user_permissions.add(*Permission.objects.filter(content_type__app_label="jobs",
                                                         codename__in=["view_backgroundtaskrecord", *codenames]))
    return django_user_model.objects.get(pk=user.pk)  # a fresh instance: no permission cache


@pytest.fixture
def retrier(client, django_user_model):
    client.force_login(staff_with(django_user_model, "retrier", "retry_job"))
    return client


def test_every_action_has_its_own_permission_in_the_database():
    for action in actions.ACTIONS.values():
        app_label, codename = action.permission.split(".")
        assert Permission.objects.filter(content_type__app_label=app_label, codename=codename).exists(), action
    assert Permission.objects.filter(codename="bulk_job").exists()


def test_a_retry_only_user_sees_and_may_use_retry_alone(retrier, make_record, redis_conn):
    failed, pending = make_record(Status.FAILED), make_record(Status.PENDING)
    listing = retrier.get(reverse("job_list")).content.decode()
    assert ">Retry</button>" in listing and ">Cancel</button>" not in listing
    assert 'id="bulk-form"' not in listing and 'name="ids"' not in listing  # no bulk permission
    assert "read-only" not in listing
    assert retrier.post(reverse("job_cancel", args=[pending.pk]), {"confirmed": "1"}).status_code == 403
    assert retrier.post(reverse("job_delete", args=[failed.pk]), {"confirmed": "1"}).status_code == 403
    assert retrier.post(reverse("queue_pause", args=["low"])).status_code == 403
    assert retrier.post(reverse("job_bulk"), {"action": "retry", "ids": [failed.pk]}).status_code == 403
    done = retrier.post(reverse("job_retry", args=[failed.pk]), **HX)
    assert done.status_code == 200 and "queued again" in done["HX-Trigger"]
    failed.refresh_from_db(), pending.refresh_from_db()
    assert (failed.status, pending.status) == (Status.PENDING, Status.PENDING)
    assert list(AuditEntry.objects.values_list("action", "username")) == [("retry", "retrier")]


def test_jobs_api_refuses_an_action_without_its_permission(django_user_model, make_record, redis_conn):
    user = staff_with(django_user_model, "retrier", "retry_job")
    pending = make_record(Status.PENDING)
    for call in (lambda: api.cancel(pending, user), lambda: api.pause_queue("low", user),
                 lambda: api.stop_worker("any", user)):
        with pytest.raises(api.NotPermitted):
            call()
    pending.refresh_from_db()
    assert pending.status == Status.PENDING and not AuditEntry.objects.exists()
    assert "low" not in api.paused_queues()


def test_bulk_needs_its_own_permission_and_the_actions(client, django_user_model, make_record, redis_conn):
    failed = make_record(Status.FAILED)
    no_bulk = staff_with(django_user_model, "a", "retry_job")
    bulk_cancel_only = staff_with(django_user_model, "b", "bulk_job", "cancel_job")
    both = staff_with(django_user_model, "c", "bulk_job", "retry_job")
    for user in (no_bulk, bulk_cancel_only):
        with pytest.raises(api.NotPermitted):
            bulk.run("retry", [[failed]], user)
    client.force_login(bulk_cancel_only)
    listing = client.get(reverse("job_list")).content.decode()
    assert 'value="cancel">Cancel…' in listing and 'value="retry"' not in listing
    assert client.post(reverse("job_bulk"), {"action": "retry", "ids": [failed.pk]}).status_code == 403
    client.force_login(both)
    step1 = client.post(reverse("job_bulk"), {"action": "retry", "ids": [failed.pk]}, HTTP_HX_REQUEST="true")
    assert step1.status_code == 200
    step2 = client.post(reverse("job_bulk"), {"token": step1.context["selection"].token}, HTTP_HX_REQUEST="true")
    assert b"1 of 1 jobs retried" in step2.content


def test_the_operate_permission_still_grants_every_action(operator_user, readonly_user):
    assert actions.allowed_verbs(operator_user) == {*actions.ACTIONS, "bulk"}
    assert actions.allowed_verbs(readonly_user) == frozenset()


def test_the_operators_group_holds_every_action_and_retry_only_one(django_user_model):
    groups = create_groups()
    ops = django_user_model.objects.create_user("ops", is_staff=True)
    ops.groups.add(groups["operators"])
    assert not ops.has_perm(actions.OPERATE)  # the per-action permissions alone make an operator
    assert actions.allowed_verbs(ops) == {*actions.ACTIONS, "bulk"}
    retry_only = django_user_model.objects.create_user("r", is_staff=True)
    retry_only.groups.add(groups["retry only"])
    assert actions.allowed_verbs(retry_only) == {"retry"}


def test_the_audit_filter_offers_every_action_word_of_the_table(reader):
    body = reader.get(reverse("audit_list")).content.decode()
    for word in actions.audit_words():
        assert f'<option value="{word}">' in body
    assert {"quiet", "stop", "bulk-delete"} <= set(actions.audit_words())
