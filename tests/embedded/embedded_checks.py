"""Run by test_embedded.py in a subprocess, under tests.embedded.settings: the jobs app in a
project without the dashboard and without any JOBS_* setting."""

import sys

import pytest
from django.conf import settings
from django.core.management import call_command

from jobs import api
from jobs.admin import dashboard_url
from jobs.models import BackgroundTaskRecord, Status
from tests.conftest import wait_for


def test_the_project_has_no_dashboard_and_no_jobs_settings():
    assert "dashboard" not in settings.INSTALLED_APPS
    assert settings.ROOT_URLCONF == "tests.embedded.urls"
    assert [name for name in dir(settings) if name.startswith("JOBS_")] == []


@pytest.mark.django_db(transaction=True)
def test_a_job_runs_in_process(drain):
    record = api.enqueue("jobs.demo.add", 2, 3)
    drain("default")
    record.refresh_from_db()
    assert (record.status, record.result) == (Status.COMPLETED, 5)


@pytest.mark.django_db(transaction=True)
def test_jobs_run_on_a_real_rqworker(start_worker):
    ok = api.enqueue("jobs.demo.add", 20, 22)
    bad = api.enqueue("jobs.demo.fail", "embedded")
    start_worker("default", env={"DJANGO_SETTINGS_MODULE": "tests.embedded.settings"})
    wait_for(lambda: not BackgroundTaskRecord.objects.active().exists(), timeout=60, message="both jobs to end")
    ok.refresh_from_db()
    bad.refresh_from_db()
    assert (ok.status, ok.result) == (Status.COMPLETED, 42)
    assert (bad.status, bad.error_type, bad.error_message) == (Status.FAILED, "ValueError", "embedded")


@pytest.mark.django_db
def test_health_metrics_and_admin(admin_client, client, redis_conn):
    assert client.get("/ops/healthz").json() == {"database": "ok", "redis": "ok"}
    assert client.get("/ops/metrics").status_code == 401
    assert b"jobdeck_jobs{" in admin_client.get("/ops/metrics").content
    record = BackgroundTaskRecord.objects.create(func_path="jobs.demo.add", status=Status.FAILED)
    assert dashboard_url(record.pk) is None
    page = admin_client.get(f"/admin/jobs/backgroundtaskrecord/{record.pk}/change/")
    assert page.status_code == 200 and b"open in dashboard" not in page.content
    assert admin_client.get("/admin/jobs/taskattempt/").status_code == 200


@pytest.mark.django_db(transaction=True)
def test_the_engine_commands(redis_conn, capsys):
    call_command("jobs_prune", "--dry-run")
    assert "older than 14 days" in capsys.readouterr().out
    call_command("jobs_reconcile")
    call_command("jobs_clock", "--once")
    call_command("check")


def test_nothing_imported_the_site():
    assert not [name for name in sys.modules if name == "dashboard" or name.startswith("dashboard.")]
