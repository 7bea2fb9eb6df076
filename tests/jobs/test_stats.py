"""Counts stay exact while no poll counts the whole history."""

from datetime import timedelta

import pytest
from django.db.models import Count
from django.utils import timezone

from jobs import stats
from jobs.models import BackgroundTaskRecord, QueueSample, Status
from jobs.samples import take_samples

pytestmark = pytest.mark.django_db


def make(status, queue="default", **fields):
    now = timezone.now()
    finished = now if status in (Status.COMPLETED, Status.FAILED, Status.CANCELLED) else None
    return BackgroundTaskRecord.objects.create(func_path="jobs.demo.noop", queue_name=queue, status=status,
                                               finished_at=fields.pop("finished_at", finished), **fields)


def exact():
    rows = BackgroundTaskRecord.objects.order_by().values("queue_name", "status").annotate(n=Count("pk"))
    return {(r["queue_name"], r["status"]): r["n"] for r in rows}


def shown(queues):
    found = {}
    for queue in queues:
        for state in ("running", "completed", "failed", "cancelled"):
            if getattr(queue, state):
                found[(queue.name, state)] = getattr(queue, state)
        if queue.pending or queue.scheduled:
            found[(queue.name, "pending")] = queue.pending + queue.scheduled
    return found


def test_counts_without_a_sample_are_exact():
    for status in Status.values:
        make(status, "high")
    make(Status.COMPLETED, "low")
    assert shown(stats.queue_stats()) == exact()


def test_completed_counts_come_from_the_latest_sample_plus_completions_since():
    for _ in range(3):
        make(Status.COMPLETED, "default", finished_at=timezone.now() - timedelta(seconds=30))
    make(Status.FAILED, "default")
    take_samples()
    assert QueueSample.objects.get(queue_name="default").completed_total == 3
    for _ in range(2):  # completed after the sample
        make(Status.COMPLETED, "default", finished_at=timezone.now() + timedelta(seconds=1))
    make(Status.COMPLETED, "low", finished_at=timezone.now() + timedelta(seconds=1))
    make(Status.PENDING, "low")
    assert shown(stats.queue_stats()) == exact()


def test_a_failed_job_retried_leaves_the_failed_count_at_once():
    record = make(Status.FAILED, "default")
    take_samples()
    BackgroundTaskRecord.objects.filter(pk=record.pk).update(status=Status.PENDING)
    counts = stats.state_counts(stats.queue_stats())
    assert counts["failed"] == 0 and counts["pending"] == 1


def test_a_stale_sample_is_ignored():
    make(Status.COMPLETED, "default")
    QueueSample.objects.create(taken_at=timezone.now() - timedelta(hours=1), queue_name="default",
                               completed_total=1000)
    assert stats.completed_counts() == {"default": 1}


def test_workers_read_in_a_few_round_trips_match_what_rq_reads(redis_conn, monkeypatch):
    """stats.workers() pipelines what RQ's Worker.all() reads one worker at a time, and
    agrees with it: fields, the current job, a stale execution, a worker that died unregistered."""
    from rq import Queue, Worker
    from rq.executions import WORKER_EXECUTIONS_KEY_TEMPLATE, Execution

    queues = [Queue(name, connection=redis_conn) for name in ("high", "default")]
    idle = Worker(queues, connection=redis_conn, name="idle-worker")
    busy = Worker(queues[1:], connection=redis_conn, name="busy-worker")
    for worker in (idle, busy):
        worker.register_birth()
        worker.heartbeat()
    job = queues[1].enqueue("jobs.demo.noop")
    with redis_conn.pipeline() as pipe:
        Execution.create(job, ttl=60, pipeline=pipe, worker_name=busy.name)
        pipe.execute()
    busy.set_state("busy")
    # An index member whose execution hash expired, and a registered worker whose hash is gone.
    redis_conn.sadd(WORKER_EXECUTIONS_KEY_TEMPLATE.format(idle.name), f"{job.id}:expired-execution")
    redis_conn.sadd("rq:workers", "rq:worker:died-unregistered")

    calls = []
    original = type(redis_conn).execute_command  # a pipeline's commands do not pass through it
    monkeypatch.setattr(type(redis_conn), "execute_command",
                        lambda self, *args, **kwargs: calls.append(args[0]) or original(self, *args, **kwargs))
    infos = stats.workers()
    monkeypatch.undo()
    assert len(calls) == 1, "the registry is one call; the rest are pipelines"

    expected = {w.name: w for w in Worker.all(connection=redis_conn)}
    assert [i.name for i in infos] == sorted(expected) == ["busy-worker", "idle-worker"]
    for info in infos:
        worker = expected[info.name]
        assert (info.hostname, info.pid, info.queues, info.state) == (
            worker.hostname, worker.pid, worker.queue_names(), worker.get_state())
        assert (info.last_heartbeat_at, info.birth_at) == (worker.last_heartbeat, worker.birth_date)
        assert (info.successful_count, info.failed_count, info.working_seconds) == (
            worker.successful_job_count, worker.failed_job_count, worker.total_working_time)
        assert not info.stale and info.heartbeat_age_seconds is not None
    by_name = {i.name: i for i in infos}
    assert by_name["busy-worker"].current_job_id == job.id == expected["busy-worker"].get_current_job_id()
    assert by_name["idle-worker"].current_job_id is None
    assert by_name["busy-worker"].state == "busy"
