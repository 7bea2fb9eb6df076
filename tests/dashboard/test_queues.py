"""Pause and resume queues; the workers page against a real worker registration."""

import pytest
from django.urls import reverse

from jobs import api
from jobs.models import AuditEntry

from .conftest import hx

pytestmark = pytest.mark.django_db(transaction=True)


def test_pause_and_resume_without_htmx(operator, redis_conn):
    response = operator.post(reverse("queue_pause", args=["low"]), follow=True)
    assert b"Queue low paused." in response.content and "low" in api.paused_queues()
    assert b"Resume</button>" in response.content
    operator.post(reverse("queue_resume", args=["low"]))
    assert "low" not in api.paused_queues()
    assert list(AuditEntry.objects.values_list("action", flat=True).order_by("id")) == ["pause", "resume"]


def test_pause_with_htmx_returns_the_queue_row(operator, redis_conn):
    response = operator.post(reverse("queue_pause", args=["high"]), **hx("queue-high"))
    body = response.content.decode()
    assert body.startswith('<tr id="queue-high"') and "paused" in body and "Resume" in body
    assert "jobs-changed" in response["HX-Trigger"]
    api.resume_queue("high")


def test_workers_page_lists_a_registered_worker(reader, redis_conn):
    from rq import Worker

    from jobs.connection import get_queue

    worker = Worker([get_queue("default"), get_queue("high")], connection=redis_conn, name="web-test-worker")
    worker.register_birth()
    worker.heartbeat()
    try:
        body = reader.get(reverse("worker_list")).content.decode()
        assert 'id="worker-web-test-worker"' in body and "default" in body and "high" in body
        assert "stale" not in body.split('id="worker-web-test-worker"')[1].split("</tr>")[0]
        fragment = reader.get(reverse("worker_list"), **hx("worker-table")).content.decode()
        assert fragment.lstrip().startswith('<section id="worker-table"') and "<html" not in fragment
    finally:
        worker.register_death()


def test_workers_page_survives_redis_down(reader, private_redis):
    private_redis.stop()
    response = reader.get(reverse("worker_list"))
    assert response.status_code == 200 and b"Redis is unreachable" in response.content
    assert reader.get(reverse("overview")).status_code == 200
