"""Unique jobs: one pending or running job per unique_key, enforced by the database."""

import threading

import pytest
from django.db import IntegrityError, connection, connections, transaction

from jobs import api, demo
from jobs.connection import get_queue
from jobs.models import AuditEntry, BackgroundTaskRecord, Status

pytestmark = pytest.mark.django_db(transaction=True)


def test_a_second_enqueue_with_the_key_returns_the_pending_job(redis_conn):
    first = api.enqueue(demo.add, 1, 2, unique_key="invoice:42")
    second = api.enqueue(demo.add, 3, 4, unique_key="invoice:42")
    assert second.pk == first.pk
    assert second.args == [1, 2]
    assert BackgroundTaskRecord.objects.filter(unique_key="invoice:42").count() == 1
    assert get_queue("default").count == 1


def test_another_key_or_no_key_is_a_job_of_its_own(redis_conn):
    a = api.enqueue(demo.add, 1, 2, unique_key="invoice:42")
    b = api.enqueue(demo.add, 1, 2, unique_key="invoice:43")
    c = api.enqueue(demo.add, 1, 2)
    assert len({a.pk, b.pk, c.pk}) == 3
    assert get_queue("default").count == 3


def test_the_clash_inside_the_callers_transaction_leaves_it_usable(redis_conn):
    with transaction.atomic():
        first = api.enqueue(demo.add, 1, 2, unique_key="k")
        again = api.enqueue(demo.add, 1, 2, unique_key="k")
        other = api.enqueue(demo.add, 5, 6)  # the transaction still works after the IntegrityError
        assert again.pk == first.pk
    assert BackgroundTaskRecord.objects.count() == 2
    assert {r.pk for r in BackgroundTaskRecord.objects.all()} == {first.pk, other.pk}
    assert get_queue("default").count == 2


def test_a_rolled_back_enqueue_frees_the_key(redis_conn):
    with pytest.raises(RuntimeError), transaction.atomic():
        api.enqueue(demo.add, 1, 2, unique_key="k")
        raise RuntimeError("caller gives up")
    record = api.enqueue(demo.add, 1, 2, unique_key="k")
    assert BackgroundTaskRecord.objects.get().pk == record.pk


def test_the_key_is_free_again_once_the_job_has_ended(redis_conn, drain):
    first = api.enqueue(demo.add, 1, 2, unique_key="invoice:42")
    drain()
    first.refresh_from_db()
    assert first.status == Status.COMPLETED
    second = api.enqueue(demo.add, 1, 2, unique_key="invoice:42")
    assert second.pk != first.pk
    drain()
    second.refresh_from_db()
    assert second.status == Status.COMPLETED
    assert BackgroundTaskRecord.objects.filter(unique_key="invoice:42").count() == 2


def test_a_running_job_holds_its_key(redis_conn, start_worker):
    from tests.conftest import wait_for

    running = api.enqueue(demo.sleep, 30, unique_key="slow")
    worker = start_worker("default")
    try:
        wait_for(lambda: BackgroundTaskRecord.objects.get(pk=running.pk).status == Status.RUNNING)
        assert api.enqueue(demo.sleep, 1, unique_key="slow").pk == running.pk
        assert BackgroundTaskRecord.objects.count() == 1
    finally:
        api.cancel(BackgroundTaskRecord.objects.get(pk=running.pk))
        worker.stop()


def test_the_database_refuses_a_second_active_row_with_the_key(redis_conn):
    api.enqueue(demo.add, 1, 2, unique_key="k")
    with pytest.raises(IntegrityError), transaction.atomic():
        BackgroundTaskRecord.objects.create(func_path="jobs.demo.add", unique_key="k")
    # A finished row may share it.
    BackgroundTaskRecord.objects.create(func_path="jobs.demo.add", unique_key="k", status=Status.COMPLETED)


def test_twenty_concurrent_enqueues_make_one_row(redis_conn):
    if connection.vendor != "postgresql":
        pytest.skip("SQLite serialises writers with a file lock; the race needs PostgreSQL's concurrent inserts")
    barrier = threading.Barrier(20)
    got, errors = [], []

    def enqueue():
        try:
            barrier.wait()
            with transaction.atomic():
                got.append(api.enqueue(demo.add, 1, 2, unique_key="race").pk)
        except Exception as exc:  # noqa: BLE001 (any failure of a thread is reported below)
            errors.append(exc)
        finally:
            connections.close_all()  # each thread's own connection

    threads = [threading.Thread(target=enqueue) for _ in range(20)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert len(got) == 20 and len(set(got)) == 1
    assert BackgroundTaskRecord.objects.filter(unique_key="race").count() == 1
    assert get_queue("default").count == 1


def test_retrying_a_failed_job_whose_key_is_taken_is_refused(redis_conn, drain):
    failed = api.enqueue(demo.fail, "x", unique_key="k")
    drain()
    failed.refresh_from_db()
    assert failed.status == Status.FAILED
    holder = api.enqueue(demo.add, 1, 2, unique_key="k")
    with pytest.raises(api.ActionNotAllowed, match="holds unique key"):
        api.retry(failed)
    failed.refresh_from_db()
    assert failed.status == Status.FAILED
    assert not AuditEntry.objects.filter(record_id=failed.pk).exists()
    assert holder.pk != failed.pk


@pytest.mark.parametrize("key, error", [(42, TypeError), ("", ValueError), ("x" * 256, ValueError),
                                        ("a\x00b", ValueError)])
def test_a_bad_key_is_refused_before_anything_is_written(redis_conn, key, error):
    with pytest.raises(error, match="unique_key"):
        api.enqueue(demo.add, 1, 2, unique_key=key)
    assert not BackgroundTaskRecord.objects.exists()
