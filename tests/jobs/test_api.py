"""Enqueue: the row in the caller's transaction, the RQ job after commit, never lost."""

from datetime import timedelta

import pytest
from django.contrib.auth.models import Permission
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext
from rq.job import Job, JobStatus

from jobs import api, demo
from jobs.connection import get_queue
from jobs.models import AuditEntry, BackgroundTaskRecord, Status
from jobs.push import rq_job
from jobs.reconcile import reconcile_records
from jobs.values import safe_repr
from tests.conftest import clear_redis

pytestmark = pytest.mark.django_db(transaction=True)


def rq_status(connection, record):
    return Job.fetch(str(record.pk), connection=connection).get_status()


def test_enqueue_pushes_after_commit_with_the_row_id(redis_conn):
    with transaction.atomic():
        record = api.enqueue(demo.add, 1, 2, queue="high")
        assert not Job.exists(str(record.pk), connection=redis_conn), "pushed before commit"
    record.refresh_from_db()
    assert record.status == Status.PENDING and record.pushed_at is not None
    job = Job.fetch(str(record.pk), connection=redis_conn)
    assert job.func_name == "jobs.demo.add" and list(job.args) == [1, 2] and job.origin == "high"


def test_rolled_back_transaction_runs_nothing(redis_conn, drain):
    with pytest.raises(RuntimeError):
        with transaction.atomic():
            record = api.enqueue(demo.add, 1, 2)
            raise RuntimeError("roll back")
    assert not BackgroundTaskRecord.objects.exists()
    assert not Job.exists(str(record.pk), connection=redis_conn)
    drain()
    assert not BackgroundTaskRecord.objects.exists()


def test_jobs_enqueued_in_one_transaction_reach_redis_in_one_call_at_commit(redis_conn, monkeypatch):
    from jobs import push

    calls = []
    write_chunk = push._write_chunk
    monkeypatch.setattr(push, "_write_chunk", lambda queue, records: calls.append(len(records))
                        or write_chunk(queue, records))
    with transaction.atomic():
        records = [api.enqueue(demo.add, i, i) for i in range(30)]
        assert calls == [], "pushed before commit"
    assert calls == [30]
    assert get_queue("default").get_job_ids() == [str(r.pk) for r in records], "in enqueue order"


def test_a_rolled_back_savepoint_pushes_none_of_its_jobs_and_all_the_others(redis_conn):
    """Consecutive enqueues share one on-commit push; savepoints keep Django's on_commit rules."""
    others: list[str] = []
    with transaction.atomic():
        before = api.enqueue(demo.noop)
        with pytest.raises(RuntimeError):
            with transaction.atomic():
                inner = [api.enqueue(demo.noop) for _ in range(3)]
                raise RuntimeError("roll back the savepoint")
        kept_savepoint = []
        with transaction.atomic():
            kept_savepoint.append(api.enqueue(demo.noop))
        after = api.enqueue(demo.noop)
        transaction.on_commit(lambda: others.append(",".join(get_queue("default").get_job_ids())))
        last = api.enqueue(demo.noop)
    pushed = get_queue("default").get_job_ids()
    assert pushed == [str(r.pk) for r in (before, *kept_savepoint, after, last)]
    assert not any(Job.exists(str(r.pk), connection=redis_conn) for r in inner)
    assert not BackgroundTaskRecord.objects.filter(pk__in=[r.pk for r in inner]).exists()
    # A callback registered between two enqueues still runs between their pushes.
    assert others == [",".join(pushed[:-1])]


@pytest.mark.parametrize("args, kwargs, named", [
    (({1, 2},), {}, "positional argument 0 (set)"),
    ((1, object()), {}, "positional argument 1 (object)"),
    ((), {"when": __import__("datetime").date(2026, 1, 1)}, "keyword argument 'when' (date)"),
    ((float("nan"),), {}, "positional argument 0 (float)"),
])
def test_non_json_arguments_are_refused_before_anything_is_written(redis_conn, args, kwargs, named):
    with pytest.raises(TypeError, match=named.replace("(", r"\(").replace(")", r"\)")):
        api.enqueue(demo.echo, *args, **kwargs)
    assert not BackgroundTaskRecord.objects.exists()
    assert not list(redis_conn.scan_iter("rq:job:*"))


def test_deeply_nested_and_oversized_arguments_are_refused(redis_conn, settings):
    nested = []
    for _ in range(100_000):
        nested = [nested]
    with pytest.raises(TypeError, match="nested too deeply"):
        api.enqueue(demo.echo, nested)
    settings.JOBS_ARGS_MAX_BYTES = 1000
    with pytest.raises(ValueError, match="limit is 1000"):
        api.enqueue(demo.echo, "x" * 2000)
    assert not BackgroundTaskRecord.objects.exists()


@pytest.mark.parametrize("func, message", [
    ("not a path", "not a dotted path"),
    (lambda: None, "not importable"),
    (42, "expected a function"),
])
def test_unusable_function_references_are_refused(redis_conn, func, message):
    with pytest.raises(TypeError, match=message):
        api.enqueue(func)


def test_unknown_queue_is_refused(redis_conn):
    with pytest.raises(ValueError, match="unknown queue 'nope'"):
        api.enqueue(demo.add, 1, 2, queue="nope")


BAD_OPTIONS = [
    ({"retries": 10**10}, ValueError, r"retries must be a whole number from 0 to 2147483647; got 10000000000"),
    ({"retries": -1}, ValueError, "retries must be"),
    ({"retries": "3"}, TypeError, "retries must be a whole number, got str '3'"),
    ({"retries": True}, TypeError, "retries must be a whole number, got bool"),
    ({"timeout": 10**12}, ValueError, "timeout must be .*; got 1000000000000"),
    ({"timeout": 0}, ValueError, "timeout must be"),
    ({"timeout": 1.5}, TypeError, "timeout must be a whole number of seconds, got float 1.5"),
    ({"delay": 1e12}, ValueError, "delay must be a finite number of seconds, at most 2147483647; got 1000000000000.0"),
    ({"delay": float("inf")}, ValueError, "delay must be .*; got inf"),
    ({"delay": float("nan")}, ValueError, "delay must be .*; got nan"),
    ({"delay": 10**5000}, ValueError, "delay must be at most 2147483647 seconds; got <int of about 5001 digits>"),
    ({"delay": "soon"}, TypeError, "delay must be a number of seconds or a timedelta, got str"),
    ({"retry_intervals": [10, 1e12]}, ValueError, r"retry_intervals\[1\] must be"),
    ({"retry_intervals": float("nan")}, ValueError, "retry_intervals must be"),
    ({"retry_intervals": "10"}, TypeError, "retry_intervals must be seconds or a list of seconds, got str"),
    ({"queue": ["default"]}, TypeError, "queue must be a queue name"),
    ({"a\x00b": 1}, ValueError, r"keyword argument name 'a\\x00b' contains a NUL"),
    ({"a\ud800": 1}, ValueError, r"keyword argument name 'a\\ud800' contains a NUL or a lone surrogate"),
]


@pytest.mark.parametrize("options, error, message", BAD_OPTIONS, ids=[safe_repr(o, 40) for o, _, _ in BAD_OPTIONS])
def test_every_option_and_keyword_name_is_checked_before_anything_is_written(redis_conn, options, error,
                                                                             message):
    with pytest.raises(error, match=message):
        api.enqueue(demo.echo, 1, **options)
    many = {k: v for k, v in options.items() if k not in ("delay",)}
    call_kwargs = {k: v for k, v in many.items() if k not in ("queue", "retries", "timeout", "retry_intervals")}
    options_only = {k: v for k, v in many.items() if k not in call_kwargs}
    if many:
        with pytest.raises(error, match=message):
            api.enqueue_many([api.Call(demo.echo, 1, **call_kwargs)], **options_only)
    assert not BackgroundTaskRecord.objects.exists()
    assert not list(redis_conn.scan_iter("rq:job:*"))


def test_a_keyword_name_that_is_not_a_string_is_refused(redis_conn):
    with pytest.raises(TypeError, match="keyword argument names must be strings, got 1 \\(int\\)"):
        api.build_record(demo.echo, [], {1: "one"})


def test_a_refused_enqueue_leaves_the_callers_transaction_usable(redis_conn):
    """On PostgreSQL an INSERT that overflowed a column aborted the caller's whole transaction."""
    with transaction.atomic():
        kept = api.enqueue(demo.add, 1, 1)
        for bad in ({"retries": 10**10}, {"timeout": 10**12}, {"delay": 1e12}):
            with pytest.raises(ValueError):
                api.enqueue(demo.add, 1, 2, **bad)
        with pytest.raises(ValueError):
            api.enqueue(demo.add, 1, 2, **{"x\x00": 1})
        good = api.enqueue(demo.add, 2, 2, retries=2147483647, timeout=2147483647, delay=2147483647)
    assert set(BackgroundTaskRecord.objects.values_list("pk", flat=True)) == {kept.pk, good.pk}
    good.refresh_from_db()
    assert (good.max_retries, good.timeout) == (2147483647, 2147483647) and good.scheduled_for is not None


def test_the_tasks_backend_checks_its_delay_and_keyword_names(redis_conn):
    from datetime import timedelta

    from django.utils import timezone

    from tests.jobs.test_tasks_backend import add, pair

    with transaction.atomic():
        with pytest.raises(ValueError, match="delay must be"):
            add.using(run_after=timezone.now() + timedelta(days=365 * 100)).enqueue(1, 2)
        with pytest.raises(ValueError, match="contains a NUL"):
            pair.enqueue(**{"queue": "q", "timeout\x00": 1})
        ok = add.enqueue(1, 2)
    assert list(BackgroundTaskRecord.objects.values_list("pk", flat=True)) == [__import__("uuid").UUID(ok.id)]


def test_redis_down_at_commit_keeps_the_row_pending_until_reconcile_pushes_it(private_redis, settings, drain):
    port = private_redis.port
    private_redis.kill()
    record = api.enqueue(demo.add, 2, 3)  # commits at once: autocommit
    record.refresh_from_db()
    assert record.status == Status.PENDING and record.pushed_at is None

    from jobs.redis_server import RedisServer
    revived = RedisServer(port=port).start()
    try:
        settings.JOBS_PENDING_GRACE_SECONDS = 0
        report = reconcile_records()
        assert [str(record.pk)] == report.pushed
        record.refresh_from_db()
        assert record.pushed_at is not None
        drain()
        record.refresh_from_db()
        assert record.status == Status.COMPLETED and record.result == 5 and record.attempts == 1
        # A second pass finds nothing to push: the job is never run twice.
        assert reconcile_records().changed == 0
    finally:
        revived.stop()


def test_enqueue_many_uses_one_insert_and_no_second_write(redis_conn, drain):
    calls = [api.Call(demo.add, i, i) for i in range(50)]
    with CaptureQueriesContext(connection) as queries:
        with transaction.atomic():
            records = api.enqueue_many(calls, queue="low")
    statements = [q["sql"].split()[0] for q in queries.captured_queries]
    # One INSERT (COPY on PostgreSQL; SQLite's 999-parameter limit splits it); pushed_at goes in with it.
    inserts = 1 if connection.vendor != "sqlite" else -(-50 * 27 // 999)
    assert statements.count("INSERT") <= inserts and statements.count("UPDATE") == 0, statements
    assert len(records) == 50
    assert BackgroundTaskRecord.objects.filter(pushed_at__isnull=False).count() == 50
    assert redis_conn.lrange("rq:queue:low", 0, -1) == [str(r.pk).encode() for r in records]
    drain("low")
    assert sorted(BackgroundTaskRecord.objects.values_list("result", flat=True)) == sorted(2 * i for i in range(50))


def test_single_enqueue_is_one_insert_whose_row_reads_back_as_built(redis_conn):
    with CaptureQueriesContext(connection) as queries:
        record = api.enqueue(demo.echo, [1, "two"], {"nested": None}, queue="high", retries=2,
                             retry_intervals=[5, 10], timeout=-1, flag=True)
    assert [q["sql"].split()[0] for q in queries.captured_queries] == ["INSERT"]
    stored = BackgroundTaskRecord.objects.get(pk=record.pk)
    for field in BackgroundTaskRecord._meta.concrete_fields:
        assert getattr(stored, field.attname) == getattr(record, field.attname), field.name
    assert stored.pushed_at == stored.enqueued_at and stored.status == Status.PENDING


@pytest.mark.parametrize("options", [
    {},
    {"queue": "high", "retries": 2, "retry_intervals": [5, 10], "timeout": -1},
    {"retries": 1, "timeout": 30},
], ids=["defaults", "retry-intervals-no-timeout", "retry"])
def test_pushed_job_hash_is_the_one_rq_writes_itself(redis_conn, options):
    """The job hash jobs.api writes directly equals what RQ's own unique enqueue writes for
    the same record, timestamps aside."""
    record = api.enqueue(demo.echo, 1, [2, {"three": 3}], key="value", **options)
    ours = redis_conn.hgetall(Job.key_for(str(record.pk)))
    assert redis_conn.lrange(f"rq:queue:{record.queue_name}", 0, -1) == [str(record.pk).encode()]

    clear_redis(redis_conn)
    queue = get_queue(record.queue_name)
    queue.enqueue_job(rq_job(record, queue), unique=True)
    theirs = redis_conn.hgetall(Job.key_for(str(record.pk)))
    timestamps = {b"created_at", b"enqueued_at"}
    assert {k: v for k, v in ours.items() if k not in timestamps} == \
           {k: v for k, v in theirs.items() if k not in timestamps}
    assert timestamps <= ours.keys()
    job = Job.fetch(str(record.pk), connection=redis_conn)
    assert (job.func_name, job.args, job.kwargs) == ("jobs.demo.echo", [1, [2, {"three": 3}]], {"key": "value"})


def test_directly_written_jobs_run_on_a_real_worker_with_their_retries(redis_conn, drain, tmp_path, monkeypatch):
    monkeypatch.setattr("jobs.push.PUSH_CHUNK", 7)  # several script calls for one queue
    marker = str(tmp_path / "attempts")
    with transaction.atomic():
        adds = api.enqueue_many([api.Call(demo.add, i, 1) for i in range(20)])
        flaky = api.enqueue_many([api.Call(demo.fail_until, marker, 1)], retries=1)
        failing = api.enqueue(demo.fail, "no retries left", retries=1, timeout=-1)
        later = api.enqueue(demo.add, 1, 1, delay=3600)
    assert redis_conn.lrange("rq:queue:default", 0, -1) == [
        str(r.pk).encode() for r in [*adds, *flaky, failing]]
    assert redis_conn.zscore("rq:scheduled:default", str(later.pk)) is not None
    drain()
    rows = {r.pk: r for r in BackgroundTaskRecord.objects.all()}
    assert [(rows[r.pk].status, rows[r.pk].result, rows[r.pk].attempts) for r in adds] == [
        (Status.COMPLETED, i + 1, 1) for i in range(20)]
    assert (rows[flaky[0].pk].status, rows[flaky[0].pk].attempts) == (Status.COMPLETED, 2)
    assert (rows[failing.pk].status, rows[failing.pk].attempts) == (Status.FAILED, 2)
    assert rows[later.pk].status == Status.PENDING


def test_a_second_push_of_the_same_record_queues_nothing(redis_conn, drain):
    record = api.enqueue(demo.add, 2, 2)
    key = Job.key_for(str(record.pk))
    before = redis_conn.hgetall(key)
    assert api.push_many([record]) == 1 and api.push(record)
    assert redis_conn.lrange("rq:queue:default", 0, -1) == [str(record.pk).encode()]
    assert redis_conn.hgetall(key) == before
    drain()
    record.refresh_from_db()
    assert (record.status, record.result, record.attempts) == (Status.COMPLETED, 4, 1)


def test_redis_down_at_commit_of_enqueue_many_clears_pushed_at_until_reconcile(private_redis, settings, drain):
    port = private_redis.port
    private_redis.kill()
    with transaction.atomic():
        records = api.enqueue_many([api.Call(demo.add, i, i) for i in range(3)])
    assert all(r.pushed_at is None for r in records)
    assert list(BackgroundTaskRecord.objects.values_list("pushed_at", flat=True)) == [None] * 3

    from jobs.redis_server import RedisServer
    revived = RedisServer(port=port).start()
    try:
        settings.JOBS_PENDING_GRACE_SECONDS = 0
        assert len(reconcile_records().pushed) == 3
        assert BackgroundTaskRecord.objects.filter(pushed_at__isnull=True).count() == 0
        drain()
        assert sorted(BackgroundTaskRecord.objects.values_list("result", flat=True)) == [0, 2, 4]
        assert reconcile_records().changed == 0
    finally:
        revived.stop()


def test_job_decorator_gives_an_enqueue_shortcut(redis_conn):
    @api.job(queue="high", retries=2)
    def task_like(x):
        return x

    decorated = api.job(queue="high", retries=2)(demo.echo)
    record = decorated.enqueue(1, flag=True)
    assert (record.func_path, record.queue_name, record.max_retries) == ("jobs.demo.echo", "high", 2)
    assert record.args == [1] and record.kwargs == {"flag": True}


def test_cancel_pending_job_leaves_the_queue_and_is_audited(redis_conn, drain, django_user_model):
    user = django_user_model.objects.create_user("op")
    user.user_permissions.add(Permission.objects.get(codename="cancel_job"))  # jobs.api checks it
    record = api.enqueue(demo.add, 1, 1)
    assert api.cancel(record, user) == "cancelled"
    record.refresh_from_db()
    assert record.status == Status.CANCELLED
    assert rq_status(redis_conn, record) == JobStatus.CANCELED
    drain()
    record.refresh_from_db()
    assert record.status == Status.CANCELLED and record.attempts == 0
    entry = AuditEntry.objects.get()
    assert (entry.username, entry.action, entry.record_id, entry.outcome) == ("op", "cancel", record.pk, "cancelled")


def test_actions_that_do_not_apply_raise_and_change_nothing(redis_conn, drain):
    record = api.enqueue(demo.add, 1, 1)
    drain()
    record.refresh_from_db()
    assert record.status == Status.COMPLETED
    with pytest.raises(api.ActionNotAllowed, match="this one is completed"):
        api.cancel(record)
    with pytest.raises(api.ActionNotAllowed, match="this one is completed"):
        api.retry(record)
    pending = api.enqueue(demo.add, 1, 1)
    with pytest.raises(api.ActionNotAllowed, match="cancel it first"):
        api.delete(pending)
    record.refresh_from_db()
    assert record.status == Status.COMPLETED and record.result == 2
    assert not AuditEntry.objects.exists()


def test_retry_runs_a_failed_job_again_as_a_new_attempt_of_the_same_row(redis_conn, drain):
    record = api.enqueue(demo.fail, "first")
    drain()
    record.refresh_from_db()
    assert record.status == Status.FAILED and record.attempts == 1
    api.retry(record)
    record.refresh_from_db()
    assert record.status == Status.PENDING and record.error_message == ""
    drain()
    record.refresh_from_db()
    assert record.status == Status.FAILED and record.attempts == 2
    assert list(record.attempt_set.values_list("number", "outcome")) == [(1, "failed"), (2, "failed")]
    assert AuditEntry.objects.filter(action="retry", record_id=record.pk).count() == 1


def test_delete_removes_the_row_and_the_rq_job_and_keeps_the_audit(redis_conn, drain):
    record = api.enqueue(demo.fail)
    drain()
    record.refresh_from_db()
    api.delete(record)
    assert not BackgroundTaskRecord.objects.filter(pk=record.pk).exists()
    assert not Job.exists(str(record.pk), connection=redis_conn)
    assert AuditEntry.objects.get().record_id == record.pk


def test_pause_and_resume_a_queue(redis_conn, drain):
    api.pause_queue("low")
    assert api.paused_queues() == {"low"}
    record = api.enqueue(demo.add, 1, 1, queue="low")
    drain()
    record.refresh_from_db()
    assert record.status == Status.PENDING, "a paused queue keeps its jobs"
    api.resume_queue("low")
    drain()
    record.refresh_from_db()
    assert record.status == Status.COMPLETED
    assert list(AuditEntry.objects.order_by("created_at").values_list("action", "detail")) == [
        ("pause", {"queue": "low"}), ("resume", {"queue": "low"})]


def test_rows_of_a_removed_queue_can_be_cancelled_and_deleted_but_not_retried(redis_conn, drain, settings, caplog):
    settings.RQ_QUEUES = {**settings.RQ_QUEUES, "retired": dict(settings.RQ_QUEUES["default"])}
    failed = api.enqueue(demo.fail, "once", queue="retired")
    drain("retired")
    waiting = api.enqueue(demo.add, 1, 1, queue="retired")
    settings.RQ_QUEUES = {name: config for name, config in settings.RQ_QUEUES.items() if name != "retired"}

    failed.refresh_from_db()
    with pytest.raises(api.QueueGone, match="queue 'retired' is no longer configured"):
        api.retry(failed)
    assert issubclass(api.QueueGone, api.ActionNotAllowed)  # the dashboard answers it as a refusal, not a 500
    failed.refresh_from_db()
    assert failed.status == Status.FAILED, "refused before the row changed: never left pending"
    assert not AuditEntry.objects.filter(action="retry").exists()

    assert api.cancel(waiting) == "cancelled"
    assert Job.fetch(str(waiting.pk), connection=redis_conn).get_status() == JobStatus.CANCELED
    assert str(waiting.pk) not in redis_conn.lrange("rq:queue:retired", 0, -1)

    for record in (failed, waiting):
        record.refresh_from_db()
        api.delete(record)
        assert not Job.exists(str(record.pk), connection=redis_conn)
    assert not BackgroundTaskRecord.objects.exists()


def test_the_clock_logs_a_removed_queue_once_and_goes_on_with_the_others(redis_conn, settings, caplog):
    settings.JOBS_PENDING_GRACE_SECONDS = 0
    settings.RQ_QUEUES = {**settings.RQ_QUEUES, "withdrawn": dict(settings.RQ_QUEUES["default"])}
    stranded = api.enqueue(demo.add, 1, 1, queue="withdrawn")
    settings.RQ_QUEUES = {name: config for name, config in settings.RQ_QUEUES.items() if name != "withdrawn"}
    lost = api.enqueue(demo.add, 2, 2)
    BackgroundTaskRecord.objects.filter(pk=lost.pk).update(enqueued_at=lost.enqueued_at - timedelta(minutes=1))
    clear_redis(redis_conn)  # Redis restarted empty: the configured queue's row is pushed again
    with caplog.at_level("WARNING", logger="jobs"):
        reports = [reconcile_records(), reconcile_records()]
    assert [r.errors for r in reports] == [[], []]
    assert str(lost.pk) in reports[0].pushed
    warnings = [r.getMessage() for r in caplog.records if "withdrawn" in r.getMessage()]
    assert len(warnings) == 1 and "no longer in RQ_QUEUES" in warnings[0]
    stranded.refresh_from_db()
    assert stranded.status == Status.PENDING
