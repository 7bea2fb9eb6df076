"""The worker's dequeue loop: RQ's strategies and idle limit, paused queues, quiet workers."""

import random

import pytest
from redis import Redis
from redis.exceptions import ConnectionError as RedisConnectionError
from rq import Queue
from rq.worker import WorkerStatus

from jobs import api, demo
from jobs.connection import get_queue
from jobs.models import BackgroundTaskRecord, Status
from jobs.worker import QUIET_KEY, SimpleWorker, Worker
from tests.conftest import wait_for

pytestmark = pytest.mark.django_db(transaction=True)
QUEUES = ("high", "default", "low")


def fresh(record):
    record.refresh_from_db()
    return record


def run_order(records) -> list[str]:
    """The queues of `records` in the order their jobs started."""
    by_id = {str(r.pk): r for r in records}
    rows = BackgroundTaskRecord.objects.filter(pk__in=list(by_id)).order_by("started_at")
    assert all(row.status == Status.COMPLETED for row in rows)
    return [row.queue_name for row in rows]


def enqueue_two_per_queue():
    return [api.enqueue(demo.add, n, 1, queue=name) for name in QUEUES for n in range(2)]


def burst(strategy: str, queue_names=QUEUES) -> None:
    queues = [get_queue(name) for name in queue_names]
    SimpleWorker(queues, connection=queues[0].connection).work(burst=True, dequeue_strategy=strategy,
                                                               logging_level="WARNING")


def test_round_robin_takes_one_job_per_queue_in_turn(redis_conn):
    records = enqueue_two_per_queue()
    burst("round_robin")
    assert run_order(records) == ["high", "default", "low", "high", "default", "low"]


def test_round_robin_still_turns_while_a_queue_is_paused(redis_conn):
    api.pause_queue("default")
    records = [r for r in enqueue_two_per_queue() if r.queue_name != "default"]
    burst("round_robin")
    assert run_order(records) == ["high", "low", "high", "low"]


def test_random_strategy_shuffles_the_queues(redis_conn):
    records = [api.enqueue(demo.add, n, 1, queue=name) for name in QUEUES for n in range(4)]
    random.seed(11)  # RQ shuffles with the random module: a fixed seed, a fixed order
    burst("random")
    order = run_order(records)
    assert sorted(order) == sorted(r.queue_name for r in records)
    assert order != sorted(order, key=QUEUES.index), "the random strategy kept the priority order"


def test_default_strategy_keeps_the_priority_order(redis_conn):
    records = enqueue_two_per_queue()
    burst("default")
    assert run_order(records) == ["high", "high", "default", "default", "low", "low"]


class RecordingQueue(Queue):
    """Notes the timeout of every dequeue the worker asks of Redis."""

    waits: list = []

    @classmethod
    def dequeue_any(cls, queues, timeout, *args, **kwargs):
        cls.waits.append(timeout)
        if len(cls.waits) > 20:  # a wait retried for ever: end the worker (RQ quits on an error)
            raise RuntimeError("the idle worker kept waiting")
        return super().dequeue_any(queues, timeout, *args, **kwargs)


def idle_worker(settings, socket_timeout=None) -> Worker:
    """A worker on a connection of its own (the test changes its socket timeout)."""
    connection = Redis.from_url(settings.RQ_QUEUES["default"]["URL"])
    RecordingQueue.waits = []
    worker = SimpleWorker([RecordingQueue("default", connection=connection)], connection=connection,
                          queue_class=RecordingQueue)
    if socket_timeout is not None:  # after RQ's __init__, which raises a short timeout
        connection.connection_pool.connection_kwargs["socket_timeout"] = socket_timeout
        connection.connection_pool.disconnect()
    return worker


def test_max_idle_time_waits_no_longer_than_asked(redis_conn, settings):
    worker = idle_worker(settings)
    assert worker.work(max_idle_time=2, logging_level="WARNING") is False
    assert RecordingQueue.waits and sum(RecordingQueue.waits) <= 2


def test_a_short_socket_timeout_neither_times_out_the_wait_nor_keeps_it_for_ever(redis_conn, settings):
    worker = idle_worker(settings, socket_timeout=5)
    assert worker.work(max_idle_time=6, logging_level="WARNING") is False
    # A 5 s wait on a 5 s socket ends in a TimeoutError that RQ's wait retries with the same 5 s.
    assert RecordingQueue.waits and max(RecordingQueue.waits) < 5 and sum(RecordingQueue.waits) <= 6


def test_a_job_enqueued_after_a_pause_is_not_taken_by_a_waiting_worker(start_worker):
    worker = start_worker("low", "default", extra=())
    # The worker is up and waiting on both queues before the pause.
    warm = api.enqueue(demo.add, 0, 0, queue="default")
    wait_for(lambda: fresh(warm).status == Status.COMPLETED, message="the worker to start")
    api.pause_queue("low")
    held = api.enqueue(demo.add, 1, 1, queue="low")
    # `low` comes first for this worker: it would take `held` before `after` if it ignored the pause.
    after = api.enqueue(demo.add, 2, 2, queue="default")
    wait_for(lambda: fresh(after).status == Status.COMPLETED, message="the job of the open queue")
    assert fresh(held).status == Status.PENDING
    low = get_queue("low")
    assert low.job_ids == [str(held.pk)] and low.intermediate_queue.get_job_ids() == []
    api.resume_queue("low")
    wait_for(lambda: fresh(held).status == Status.COMPLETED, message="the resumed job")
    assert worker.process.poll() is None


def test_a_job_dequeued_from_a_queue_paused_meanwhile_goes_back_to_its_head(redis_conn):
    low = get_queue("low")
    first, second = api.enqueue(demo.add, 1, 1, queue="low"), api.enqueue(demo.add, 2, 2, queue="low")
    worker = Worker([low], connection=low.connection)
    # One queue: RQ moves the popped id into the queue's intermediate list (BLMOVE).
    result = Queue.dequeue_any([low], 1, connection=low.connection)
    assert low.intermediate_queue.get_job_ids() == [str(first.pk)]
    api.pause_queue("low")
    assert worker._take_or_put_back(result) is None
    assert low.job_ids == [str(first.pk), str(second.pk)] and low.intermediate_queue.get_job_ids() == []


def test_a_dequeued_job_is_kept_when_the_pause_check_cannot_reach_redis(redis_conn, monkeypatch):
    low = get_queue("low")
    record = api.enqueue(demo.add, 1, 1, queue="low")
    worker = Worker([low], connection=low.connection)
    result = Queue.dequeue_any([low], 1, connection=low.connection)

    def unreachable(fresh):
        raise RedisConnectionError("Redis went away after the pop")

    monkeypatch.setattr(worker, "_closed_queues", unreachable)
    # The id has left the queue already: putting nothing back and returning None would lose it.
    assert worker._take_or_put_back(result) == result and result[0].id == str(record.pk)


def test_a_quiet_worker_finishes_its_job_takes_no_new_one_and_resumes(start_worker, redis_conn):
    worker = start_worker("default", extra=())
    running = api.enqueue(demo.sleep, 2)
    wait_for(lambda: fresh(running).status == Status.RUNNING, message="the first job to start")
    name = running.worker_name
    redis_conn.sadd(QUIET_KEY, name)
    waiting = api.enqueue(demo.add, 1, 1)
    wait_for(lambda: fresh(running).status == Status.COMPLETED, message="the current job to finish")
    key = f"rq:worker:{name}"
    beat_after_job = running.finished_at.timestamp()
    # The quiet worker keeps beating (alive, idle) and leaves the new job where it is.
    wait_for(lambda: _heartbeat(redis_conn, key) > beat_after_job + 1.5, message="a beat after the job")
    assert redis_conn.hget(key, "state").decode() == WorkerStatus.IDLE
    assert fresh(waiting).status == Status.PENDING and get_queue("default").job_ids == [str(waiting.pk)]
    assert worker.process.poll() is None
    redis_conn.srem(QUIET_KEY, name)
    wait_for(lambda: fresh(waiting).status == Status.COMPLETED, message="the job after the worker resumed")
    assert fresh(waiting).worker_name == name


def _heartbeat(connection, key) -> float:
    from rq.utils import utcparse

    value = connection.hget(key, "last_heartbeat")
    return utcparse(value.decode()).timestamp() if value else 0.0
