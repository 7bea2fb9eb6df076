"""Operator endpoints: /healthz, /metrics (Prometheus) and the read-only admin."""

from datetime import timedelta

import pytest
from django.db import connections
from django.utils import timezone
from prometheus_client.parser import text_string_to_metric_families
from rq.job import Job, JobStatus

from jobs import api, metrics
from jobs.admin import dashboard_url
from jobs.models import BackgroundTaskRecord, Status, TaskAttempt
from jobs.prune import prune_records
from jobs.redis_server import RedisServer, free_port
from tests.conftest import wait_for

TOKEN = "scrape-token-0123456789"


def samples(response) -> dict:
    """{(metric name, frozenset of labels): value} from a metrics response."""
    assert response.status_code == 200, response.content
    assert response["Content-Type"].startswith("text/plain")
    found = {}
    for family in text_string_to_metric_families(response.content.decode()):
        for sample in family.samples:
            found[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return found


def value(found: dict, name: str, **labels) -> float:
    return found[(name, frozenset(labels.items()))]


def point_redis_at(settings, url: str) -> None:
    """Every queue on `url`, as a new RQ_QUEUES the settings fixture puts back afterwards."""
    settings.RQ_QUEUES = {name: {**config, "URL": url} for name, config in settings.RQ_QUEUES.items()}


@pytest.fixture
def scrape(client, settings):
    settings.JOBS_METRICS_TOKEN = TOKEN
    return lambda: client.get("/metrics", HTTP_AUTHORIZATION=f"Bearer {TOKEN}")


# --- /healthz ------------------------------------------------------------------------

@pytest.mark.django_db
def test_healthz_ok_without_login(client, redis_conn):
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"database": "ok", "redis": "ok"}
    assert "no-cache" in response["Cache-Control"]


@pytest.mark.django_db
def test_healthz_names_redis_without_leaking_its_url(client, settings):
    port = free_port()  # nothing listens there
    point_redis_at(settings, f"redis://:hunter2-secret@127.0.0.1:{port}/0")
    response = client.get("/healthz")
    assert response.status_code == 503
    assert response.json() == {"database": "ok", "redis": "error: ConnectionError"}
    body = response.content.decode()
    assert "hunter2" not in body and str(port) not in body


@pytest.mark.django_db
def test_healthz_when_a_private_redis_stops(client, settings):
    server = RedisServer().start()
    try:
        point_redis_at(settings, server.url)
        assert client.get("/healthz").status_code == 200
        server.stop()
        response = client.get("/healthz")
    finally:
        server.stop()
    assert response.status_code == 503
    assert response.json()["redis"].startswith("error: ")


@pytest.mark.django_db(transaction=True)
def test_healthz_names_the_database(client, redis_conn):
    connection = connections["default"]
    saved = dict(connection.settings_dict)
    connection.close()
    if connection.vendor == "sqlite":
        connection.settings_dict["NAME"] = "/nonexistent-dir/secret-name.sqlite3"
    else:
        connection.settings_dict.update(PORT=free_port(), PASSWORD="hunter2-secret")
    try:
        response = client.get("/healthz")
    finally:
        connection.close()
        connection.settings_dict.clear()
        connection.settings_dict.update(saved)
    assert response.status_code == 503
    assert response.json() == {"database": "error: OperationalError", "redis": "ok"}
    assert "secret" not in response.content.decode()


# --- /metrics: access ------------------------------------------------------------------

@pytest.mark.django_db
def test_metrics_refuses_anonymous_and_wrong_tokens(client, settings, redis_conn):
    settings.JOBS_METRICS_TOKEN = ""
    response = client.get("/metrics")
    assert response.status_code == 401 and response["WWW-Authenticate"].startswith("Bearer")
    assert client.get("/metrics", HTTP_AUTHORIZATION="Bearer ").status_code == 401  # no token configured
    settings.JOBS_METRICS_TOKEN = TOKEN
    assert client.get("/metrics", HTTP_AUTHORIZATION="Bearer wrong").status_code == 401
    assert client.get("/metrics", HTTP_AUTHORIZATION=f"Basic {TOKEN}").status_code == 401
    assert client.get("/metrics", HTTP_AUTHORIZATION=f"Bearer {TOKEN}").status_code == 200


@pytest.mark.django_db
def test_metrics_for_sessions_that_may_view_jobs_only(client, django_user_model, redis_conn):
    from django.contrib.auth.models import Permission

    django_user_model.objects.create_user("plain", password="pw")
    client.login(username="plain", password="pw")
    assert client.get("/metrics").status_code == 403
    ops = django_user_model.objects.create_user("ops", password="pw", is_staff=True)
    client.login(username="ops", password="pw")
    assert client.get("/metrics").status_code == 403  # staff alone is not the jobs' view permission
    ops.user_permissions.add(Permission.objects.get(codename="view_backgroundtaskrecord"))
    client.login(username="ops", password="pw")
    assert client.get("/metrics").status_code == 200


# --- /metrics: values ------------------------------------------------------------------

def make(status: str, queue: str = "default", **fields) -> BackgroundTaskRecord:
    return BackgroundTaskRecord.objects.create(func_path="jobs.demo.add", status=status, queue_name=queue,
                                               **fields)


@pytest.mark.django_db(transaction=True)
def test_jobs_by_state_depth_latency_and_workers(scrape, redis_conn, start_worker):
    api.pause_queue("low")
    for _ in range(3):
        api.enqueue("jobs.demo.add", 1, 2, queue="low")
    make(Status.PENDING, "low", enqueued_at=timezone.now() - timedelta(minutes=5), pushed_at=timezone.now())
    make(Status.PENDING, "low", scheduled_for=timezone.now() + timedelta(hours=1))  # not due: no latency
    make(Status.FAILED, "high")
    api.enqueue("jobs.demo.add", 1, 2, queue="high", delay=3600)

    found = samples(scrape())
    assert value(found, "jobdeck_jobs", queue="low", state="pending") == 5
    assert value(found, "jobdeck_jobs", queue="high", state="pending") == 1
    assert value(found, "jobdeck_jobs", queue="high", state="failed") == 1
    assert value(found, "jobdeck_jobs", queue="default", state="running") == 0
    assert 290 < value(found, "jobdeck_queue_latency_seconds", queue="low") < 400
    assert value(found, "jobdeck_queue_latency_seconds", queue="default") == 0
    assert value(found, "jobdeck_queue_depth", queue="low") == 3
    assert value(found, "jobdeck_queue_scheduled", queue="high") == 1
    assert value(found, "jobdeck_queue_paused", queue="low") == 1
    assert value(found, "jobdeck_queue_paused", queue="default") == 0
    assert value(found, "jobdeck_workers") == 0
    assert value(found, "jobdeck_up", component="redis") == 1
    assert value(found, "jobdeck_up", component="database") == 1

    start_worker("default", "high")
    found = wait_for(lambda: (f := samples(scrape())) and value(f, "jobdeck_workers") == 1 and f,
                     message="the worker to register")
    assert value(found, "jobdeck_queue_workers", queue="default") == 1
    assert value(found, "jobdeck_queue_workers", queue="low") == 0


@pytest.mark.django_db(transaction=True)
def test_finished_counters_count_each_job_once_and_survive_pruning(scrape, redis_conn, drain, monkeypatch):
    monkeypatch.setattr(metrics, "COUNT_LAG", timedelta(0))
    samples(scrape())  # the first scrape sets the watermark: counting starts here
    for n in range(3):
        api.enqueue("jobs.demo.add", n, 1)
    api.enqueue("jobs.demo.fail", "counted")
    drain()
    wait_for(lambda: not BackgroundTaskRecord.objects.active().exists(), message="jobs to finish")

    found = samples(scrape())
    assert value(found, "jobdeck_jobs_finished_total", queue="default", state="completed") == 3
    assert value(found, "jobdeck_jobs_finished_total", queue="default", state="failed") == 1
    assert value(found, "jobdeck_jobs_finished_total", queue="high", state="cancelled") == 0
    again = samples(scrape())  # a second scrape adds nothing
    assert value(again, "jobdeck_jobs_finished_total", queue="default", state="completed") == 3

    assert prune_records(timedelta(0)) == 4
    after = samples(scrape())
    assert value(after, "jobdeck_jobs_finished_total", queue="default", state="completed") == 3
    assert value(after, "jobdeck_jobs", queue="default", state="completed") == 0


@pytest.mark.django_db(transaction=True)
def test_a_scrape_never_fails_an_abandoned_job(scrape, redis_conn):
    """RQ's registry counters run cleanup(), which fails abandoned jobs: the collector must not."""
    record = api.enqueue("jobs.demo.add", 1, 1)
    job = Job.fetch(str(record.pk), connection=redis_conn)
    job.set_status(JobStatus.STARTED)
    redis_conn.lrem("rq:queue:default", 0, str(record.pk))
    redis_conn.zadd("rq:wip:default", {f"{record.pk}:exec-1": 1})  # heartbeat expired long ago

    samples(scrape())

    assert redis_conn.zscore("rq:wip:default", f"{record.pk}:exec-1") == 1
    assert job.get_status(refresh=True) == JobStatus.STARTED
    assert not redis_conn.exists("rq:failed:default")


@pytest.mark.django_db
def test_metrics_still_answer_when_redis_is_down(scrape, settings):
    make(Status.RUNNING)
    point_redis_at(settings, f"redis://127.0.0.1:{free_port()}/0")
    found = samples(scrape())
    assert value(found, "jobdeck_up", component="redis") == 0
    assert value(found, "jobdeck_jobs", queue="default", state="running") == 1
    assert not any(name == "jobdeck_queue_depth" for name, _ in found)


# --- admin -----------------------------------------------------------------------------

@pytest.mark.django_db
def test_admin_record_and_attempt_pages(admin_client):
    record = make(Status.FAILED, error_type="ValueError", finished_at=timezone.now())
    TaskAttempt.objects.create(record=record, number=1, outcome=TaskAttempt.Outcome.FAILED, error_type="ValueError")
    link = dashboard_url(record.pk)
    for url in ("/admin/jobs/backgroundtaskrecord/", f"/admin/jobs/backgroundtaskrecord/{record.pk}/change/",
                "/admin/jobs/taskattempt/", f"/admin/jobs/taskattempt/?q={record.pk}"):
        response = admin_client.get(url)
        assert response.status_code == 200, url
        if link:  # the dashboard serves job pages: every record and attempt links to one
            assert f'href="{link}"' in response.content.decode()
    attempt = TaskAttempt.objects.get()
    assert admin_client.get(f"/admin/jobs/taskattempt/{attempt.pk}/change/").status_code == 200
    assert admin_client.post(f"/admin/jobs/taskattempt/{attempt.pk}/delete/").status_code == 403
