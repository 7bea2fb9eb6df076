"""Worker controls from the workers page: quiet (finish the job, take no new one), unquiet, and stop
(RQ's shutdown command): permission-checked, confirmed, audited."""

from __future__ import annotations

import json

import pytest
from django.urls import reverse

from jobs import api
from jobs.models import AuditEntry

from .conftest import hx

pytestmark = pytest.mark.django_db


@pytest.fixture
def worker(make_worker):
    """A registered, beating RQ worker (no process: the commands are checked in Redis)."""
    return make_worker("ctl-worker")


@pytest.fixture
def listening(redis_conn, worker):
    """The worker's command channel, subscribed as a running RQ worker subscribes to it."""
    pubsub = redis_conn.pubsub(ignore_subscribe_messages=True)
    pubsub.subscribe(f"rq:pubsub:{worker.name}")
    yield pubsub
    pubsub.close()


def test_quiet_and_unquiet_with_htmx(operator, worker, redis_conn):
    page = operator.get(reverse("worker_list")).content.decode()
    row = page.split('id="worker-ctl-worker"')[1].split("</tr>")[0]
    assert ">Quiet</button>" in row and ">Stop</button>" in row and "hx-confirm=" in row
    response = operator.post(reverse("worker_quiet", args=[worker.name]), {"confirmed": "1"}, **hx("worker-table"))
    assert response.status_code == 200 and "jobs-changed" in response["HX-Trigger"]
    assert redis_conn.sismember(api.QUIET_KEY, "ctl-worker")
    row = response.content.decode().split('id="worker-ctl-worker"')[1].split("</tr>")[0]
    assert ">quiet</span>" in row and ">Unquiet</button>" in row
    operator.post(reverse("worker_unquiet", args=[worker.name]), **hx("worker-table"))
    assert not redis_conn.sismember(api.QUIET_KEY, "ctl-worker")
    assert list(AuditEntry.objects.order_by("id").values_list("action", "detail")) == [
        ("quiet", {"worker": "ctl-worker"}), ("unquiet", {"worker": "ctl-worker"})]


def test_stop_sends_rqs_shutdown_command_after_a_confirmation(operator, listening, worker):
    ask = operator.post(reverse("worker_stop", args=[worker.name]))  # no JavaScript: a page asks first
    assert ask.status_code == 200 and b"Stop worker ctl-worker?" in ask.content
    assert listening.get_message(timeout=0.2) is None
    done = operator.post(reverse("worker_stop", args=[worker.name]), {"confirmed": "1"}, follow=True)
    assert b"Worker ctl-worker asked to stop." in done.content
    message = listening.get_message(timeout=5)
    assert json.loads(message["data"]) == {"command": "shutdown"}
    assert AuditEntry.objects.get().action == "stop"


def test_stopping_a_worker_nobody_hears_is_refused_clearly(operator, worker):
    response = operator.post(reverse("worker_stop", args=[worker.name]), {"confirmed": "1"}, **hx("worker-table"))
    assert response.status_code == 409
    assert "not listening for commands" in response["HX-Trigger"] and not AuditEntry.objects.exists()


def test_an_unknown_worker_is_refused(operator, redis_conn):
    response = operator.post(reverse("worker_quiet", args=["nobody"]), {"confirmed": "1"}, **hx("worker-table"))
    assert response.status_code == 409 and "no worker named" in response["HX-Trigger"]
    assert not redis_conn.exists(api.QUIET_KEY)


def test_worker_controls_need_their_permission(reader, worker, redis_conn):
    page = reader.get(reverse("worker_list")).content.decode()
    assert ">Quiet</button>" not in page and ">Stop</button>" not in page
    for verb in ("quiet", "unquiet", "stop"):
        assert reader.post(reverse(f"worker_{verb}", args=[worker.name]), {"confirmed": "1"}).status_code == 403
    assert reader.get(reverse("worker_stop", args=[worker.name])).status_code == 405
    assert not redis_conn.exists(api.QUIET_KEY) and not AuditEntry.objects.exists()


@pytest.mark.django_db(transaction=True)
def test_stop_ends_a_real_worker_after_its_current_job(operator, start_worker, redis_conn):
    from jobs import stats
    from tests.conftest import wait_for

    process = start_worker(extra=("--with-scheduler", "--name", "e2e-worker"))
    wait_for(lambda: redis_conn.pubsub_numsub("rq:pubsub:e2e-worker")[0][1], message="the worker listening")
    assert "e2e-worker" in [w.name for w in stats.workers()]
    operator.post(reverse("worker_stop", args=["e2e-worker"]), {"confirmed": "1"})
    wait_for(lambda: process.process.poll() is not None, message="the worker to exit")
    assert AuditEntry.objects.get().detail == {"worker": "e2e-worker"}
