"""Every job that reaches Redis through RQ gets a row: recorded at enqueue, adopted by the
worker that starts it, or found by the reconciler's sweep (jobs.adopt)."""

import datetime as dt
import logging
import uuid

import django_rq
import pytest
from django.db import transaction
from django.utils import timezone
from rq import Queue, Retry
from rq.cron import CronScheduler
from rq.group import Group

from jobs import api, demo
from jobs.adopt import RQ_ID_NAMESPACE, record_id_for, record_job, sweep_queue
from jobs.models import BackgroundTaskRecord, Status
from jobs.reconcile import reconcile_records
from jobs.worker import SimpleWorker, Worker
from tests.conftest import wait_for

pytestmark = pytest.mark.django_db(transaction=True)


def plain_queue(redis_conn, name: str = "default") -> Queue:
    """RQ's own Queue class: nothing records at enqueue, as in a project that never set QUEUE_CLASS."""
    return Queue(name, connection=redis_conn)


def row_of(rq_id: str) -> BackgroundTaskRecord:
    return BackgroundTaskRecord.objects.get(pk=record_id_for(rq_id))


def test_record_id_keeps_a_canonical_uuid_and_maps_any_other_id_to_uuid5():
    canonical = str(uuid.uuid4())
    assert record_id_for(canonical) == uuid.UUID(canonical)
    assert record_id_for("my-job-1") == uuid.uuid5(RQ_ID_NAMESPACE, "my-job-1")
    # A UUID written another way is another RQ id, so another row.
    assert record_id_for(canonical.upper()) == uuid.uuid5(RQ_ID_NAMESPACE, canonical.upper())
    assert record_id_for(canonical.replace("-", "")) != uuid.UUID(canonical)


@pytest.mark.parametrize("worker_class", [Worker, SimpleWorker])
def test_the_worker_adopts_a_job_enqueued_with_rq_alone(drain, redis_conn, worker_class):
    job = plain_queue(redis_conn).enqueue(demo.add, 2, 3)
    assert not BackgroundTaskRecord.objects.exists()
    drain("default", worker_class=worker_class)
    record = row_of(job.id)
    assert record.pk == uuid.UUID(job.id) and record.rq_id is None
    assert (record.status, record.result, record.attempts) == (Status.COMPLETED, 5, 1)
    assert (record.func_path, record.args, record.kwargs, record.queue_name) == ("jobs.demo.add", [2, 3], {},
                                                                                 "default")
    assert record.attempt_set.get().outcome == "completed"


def test_a_custom_id_gets_a_row_under_its_uuid5_and_no_error_is_logged(drain, redis_conn, caplog):
    plain_queue(redis_conn).enqueue(demo.add, 1, 1, job_id="my-job-1")
    with caplog.at_level(logging.INFO):
        drain("default")
    record = row_of("my-job-1")
    assert record.rq_id == "my-job-1" and record.rq_job_id == "my-job-1"
    assert (record.status, record.result) == (Status.COMPLETED, 2)
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert list(BackgroundTaskRecord.objects.search("my-job-1")) == [record]


def test_a_failing_custom_id_job_is_adopted_as_failed(drain, redis_conn):
    plain_queue(redis_conn).enqueue(demo.fail, "nope", job_id="nightly_report_7")
    drain("default")
    record = row_of("nightly_report_7")
    assert record.status == Status.FAILED and "nope" in record.error_message


def test_arguments_that_are_not_json_are_stored_as_a_marked_preview(drain, redis_conn):
    when = dt.datetime(2026, 1, 2, 3, 4, 5)
    job = plain_queue(redis_conn).enqueue(demo.echo, when, 7, label={1, 2})
    drain("default")
    record = row_of(job.id)
    assert record.status == Status.COMPLETED and record.args_preview
    assert record.args[1] == 7 and record.args[0]["note"] == "not JSON-serializable"
    assert "2026" in record.args[0]["repr"] and record.kwargs["label"]["note"] == "not JSON-serializable"


def test_a_job_is_recorded_once_whichever_path_comes_first(drain, redis_conn):
    job = plain_queue(redis_conn).enqueue(demo.add, 2, 2, job_id="again")
    assert record_job(job) is True
    assert record_job(job) is False  # the second path finds the row: nothing written
    drain("default")
    record = row_of("again")
    assert BackgroundTaskRecord.objects.count() == 1
    assert (record.status, record.attempts, record.attempt_set.count()) == (Status.COMPLETED, 1, 1)


def test_a_retry_of_a_job_with_preview_arguments_runs_rqs_own_payload(drain, redis_conn):
    plain_queue(redis_conn).enqueue(demo.fail_until, dt.date(2026, 1, 1), 1, job_id="dated_1")
    drain("default")
    record = row_of("dated_1")
    assert record.status == Status.FAILED and record.args_preview
    api.retry(record)
    drain("default")
    record.refresh_from_db()
    # RQ's pickled call ran again (the same date object), not the stored preview.
    assert record.attempts == 2 and record.attempt_set.get(number=2).error_type == "TypeError"
    assert "date" in record.attempt_set.get(number=2).error_message


def test_a_retry_refuses_clearly_once_redis_no_longer_holds_the_arguments(drain, redis_conn):
    job = plain_queue(redis_conn).enqueue(demo.fail, {1, 2}, job_id="set_arg")
    drain("default")
    job.delete()
    record = row_of("set_arg")
    with pytest.raises(api.ArgumentsNotStored, match="not JSON"):
        api.retry(record)
    record.refresh_from_db()
    assert record.status == Status.FAILED


def test_the_reconciler_reads_a_custom_id_job_under_its_rq_id(redis_conn):
    job = plain_queue(redis_conn).enqueue(demo.add, 1, 2, job_id="waiting_1")
    record_job(job)
    BackgroundTaskRecord.objects.update(enqueued_at=timezone.now() - dt.timedelta(hours=1))
    report = reconcile_records()
    assert report.pushed == [] and report.errors == []
    assert redis_conn.llen("rq:queue:default") == 1


# --- recorded at enqueue: jobs.rq_classes.Queue, django-rq's QUEUE_CLASS -------------------

def test_django_rq_enqueue_writes_the_row_before_any_worker_runs(drain):
    job = django_rq.enqueue(demo.add, 2, 3)
    record = row_of(job.id)
    assert (record.status, record.func_path, record.args, record.attempts) == (Status.PENDING, "jobs.demo.add",
                                                                               [2, 3], 0)
    drain("default")
    record.refresh_from_db()
    assert (record.status, record.result) == (Status.COMPLETED, 5)


def test_the_job_decorators_delay_and_a_custom_id_are_recorded(drain):
    delayed = django_rq.job("high")(demo.echo)
    job = delayed.delay("a", n=1)
    django_rq.get_queue("low").enqueue(demo.add, 4, 4, job_id="invoice-42")
    assert row_of(job.id).queue_name == "high" and row_of("invoice-42").rq_id == "invoice-42"
    drain()
    assert row_of(job.id).result == {"args": ["a"], "kwargs": {"n": 1}}
    assert row_of("invoice-42").status == Status.COMPLETED


def test_enqueue_at_and_enqueue_in_are_recorded_as_scheduled(drain):
    queue = django_rq.get_queue("default")
    later = queue.enqueue_in(dt.timedelta(hours=1), demo.add, 1, 1)
    due = queue.enqueue_at(timezone.now() - dt.timedelta(seconds=1), demo.add, 2, 2)
    assert row_of(later.id).scheduled_for > timezone.now() + dt.timedelta(minutes=59)
    assert row_of(due.id).status == Status.PENDING and row_of(due.id).scheduled_for is not None
    drain("default", with_scheduler=True)
    assert row_of(due.id).status == Status.COMPLETED
    assert row_of(later.id).status == Status.PENDING


def test_a_dependent_is_recorded_with_its_parent_and_runs_after_it(drain):
    queue = django_rq.get_queue("default")
    parent = queue.enqueue(demo.add, 1, 1)
    child = queue.enqueue(demo.add, 2, 2, depends_on=parent)
    record = row_of(child.id)
    assert record.status == Status.PENDING
    assert list(record.dependencies.values_list("parent_rq_id", flat=True)) == [parent.id]
    drain("default")
    assert row_of(parent.id).status == row_of(child.id).status == Status.COMPLETED
    assert row_of(child.id).started_at >= row_of(parent.id).finished_at


def test_group_members_are_recorded_with_their_group(drain, redis_conn):
    queue = django_rq.get_queue("default")
    group = Group.create(connection=redis_conn, name="nightly")
    jobs = group.enqueue_many(queue, [Queue.prepare_data(demo.add, (n, n)) for n in range(3)])
    rows = BackgroundTaskRecord.objects.filter(group_id="nightly")
    assert sorted(str(pk) for pk in rows.values_list("pk", flat=True)) == sorted(job.id for job in jobs)
    drain("default")
    assert sorted(rows.values_list("result", flat=True)) == [0, 2, 4]


def test_an_rq_retry_policy_is_recorded_and_each_attempt_counted(drain):
    job = django_rq.get_queue("default").enqueue(demo.fail, "again", retry=Retry(max=1))
    assert row_of(job.id).max_retries == 1
    drain("default")
    record = row_of(job.id)
    assert (record.status, record.attempts) == (Status.FAILED, 2)


def test_a_cron_run_of_rqs_own_scheduler_is_adopted_by_the_worker(drain, redis_conn):
    scheduler = CronScheduler(connection=redis_conn)
    scheduler.register(demo.add, queue_name="default", args=(5, 6), interval=60)
    assert len(scheduler.enqueue_jobs()) == 1  # a new interval entry runs at once
    (rq_id,) = [i.decode() for i in redis_conn.lrange("rq:queue:default", 0, -1)]
    drain("default")
    record = row_of(rq_id)
    assert (record.status, record.result, record.func_path) == (Status.COMPLETED, 11, "jobs.demo.add")


def test_a_django_rq_enqueue_in_a_rolled_back_transaction_leaves_neither_row_nor_job(redis_conn):
    with pytest.raises(RuntimeError), transaction.atomic():
        django_rq.enqueue(demo.add, 1, 1)
        raise RuntimeError("rolled back")
    assert not BackgroundTaskRecord.objects.exists() and redis_conn.llen("rq:queue:default") == 0
    with transaction.atomic():
        job = django_rq.enqueue(demo.add, 1, 1)
        assert job is None  # django-rq enqueues, and so records, on commit
    assert BackgroundTaskRecord.objects.count() == 1 and redis_conn.llen("rq:queue:default") == 1


def test_a_real_rqworker_runs_and_records_a_custom_id_job(start_worker, redis_conn):
    django_rq.get_queue("default").enqueue(demo.add, 20, 22, job_id="real-worker-1")
    plain_queue(redis_conn).enqueue(demo.add, 1, 2, job_id="real-worker-2")  # no row until the worker adopts it
    worker = start_worker("default")
    wait_for(lambda: BackgroundTaskRecord.objects.filter(status=Status.COMPLETED).count() == 2,
             message="both jobs completed")
    assert row_of("real-worker-1").result == 42 and row_of("real-worker-2").result == 3
    assert "Traceback" not in worker.output() and "ERROR" not in worker.output()


# --- the reconciler's sweep ------------------------------------------------------------

def test_the_sweep_adopts_jobs_in_every_registry_and_brings_them_in_step(drain, redis_conn):
    queue = plain_queue(redis_conn)
    done = queue.enqueue(demo.add, 1, 2)
    queue.enqueue(demo.fail, "x", job_id="failed_one")
    drain("default")
    BackgroundTaskRecord.objects.all().delete()  # as if they had run on a worker of plain RQ
    waiting = queue.enqueue(demo.add, 3, 4, job_id="still-queued")
    later = queue.enqueue_in(dt.timedelta(hours=1), demo.add, 5, 6)
    parent = queue.enqueue_in(dt.timedelta(hours=1), demo.noop)
    child = queue.enqueue(demo.noop, depends_on=parent)
    assert not BackgroundTaskRecord.objects.exists()
    report = reconcile_records()
    assert sorted(report.adopted) == sorted([done.id, "failed_one", "still-queued", later.id, parent.id, child.id])
    assert "6 adopted from RQ" in report.summary()
    assert (row_of(done.id).status, row_of(done.id).result) == (Status.COMPLETED, 3)
    assert row_of("failed_one").status == Status.FAILED
    assert row_of("still-queued").status == Status.PENDING and row_of(later.id).scheduled_for is not None
    assert list(row_of(child.id).dependencies.values_list("parent_rq_id", flat=True)) == [parent.id]
    assert reconcile_records().adopted == []  # known now: nothing twice
    drain("default")
    assert row_of("still-queued").status == Status.COMPLETED
    assert waiting.id == "still-queued"


def test_the_sweep_is_bounded_per_pass_and_a_dry_run_writes_nothing(redis_conn):
    queue = plain_queue(redis_conn)
    ids = [queue.enqueue(demo.noop).id for _ in range(5)]
    assert len(reconcile_records(dry_run=True).adopted) == 5
    assert not BackgroundTaskRecord.objects.exists()
    assert len(sweep_queue(queue, limit=3)) == 3
    assert len(reconcile_records().adopted) == 2
    assert BackgroundTaskRecord.objects.count() == len(ids)


def test_rq_requeueing_a_job_that_ran_writes_no_row_from_the_queue_class(redis_conn):
    queue = django_rq.get_queue("default")
    job = queue.create_job(demo.add, args=(1, 1))
    job.started_at = timezone.now()  # as RQ's retry of a job that ran: its worker's start owns the row
    queue.enqueue_job(job)
    assert not BackgroundTaskRecord.objects.exists()
    assert redis_conn.llen(queue.key) == 1


def test_a_workers_current_custom_id_job_maps_to_its_row():
    from jobs.stats import WorkerInfo

    info = WorkerInfo(name="w", hostname="h", pid=1, queues=["default"], state="busy", current_job_id="invoice-42",
                      last_heartbeat_at=None, birth_at=None, successful_count=0, failed_count=0, working_seconds=0)
    assert info.current_record_id == record_id_for("invoice-42")
