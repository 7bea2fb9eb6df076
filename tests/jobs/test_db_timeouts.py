"""Timeouts toward PostgreSQL, a stalled row write logged, and the overview's warning when a
worker's writes lag behind."""

import io
import threading

import pytest
from django.contrib.auth.models import Permission
from django.db import OperationalError, connection
from django.urls import reverse

from jobs import dbtimeouts
from jobs.connection import get_queue
from jobs.worker import WRITER_LAG_FIELD, Worker
from jobs.writer import RowWriter, Write
from tests.conftest import wait_for

pytestmark = pytest.mark.django_db(transaction=True)
postgresql_only = pytest.mark.skipif("connection.vendor != 'postgresql'", reason="PostgreSQL's timeouts")


@postgresql_only
def test_every_connection_has_a_connect_timeout_and_a_tcp_user_timeout(settings):
    connection.ensure_connection()
    dsn = connection.connection.info.dsn
    assert f"connect_timeout={settings.JOBS_DB_CONNECT_TIMEOUT_SECONDS}" in dsn
    assert f"tcp_user_timeout={settings.JOBS_DB_TCP_USER_TIMEOUT_MS}" in dsn
    assert "keepalives=1" in dsn


@postgresql_only
def test_a_statement_timeout_ends_a_stalled_row_write_and_not_a_jobs_own_query(settings, caplog):
    settings.JOBS_DB_STATEMENT_TIMEOUT_MS = 200
    failures = []

    def stalled_write():
        try:
            with connection.cursor() as cursor:
                cursor.execute("SELECT pg_sleep(5)")
        except OperationalError as exc:
            failures.append(exc)
            raise
        return True

    writer = RowWriter("probe-writer")
    writer.submit(Write("probe", "job-1", stalled_write))
    assert writer.close(timeout=30)
    assert len(failures) == 1 and "statement timeout" in str(failures[0])
    assert any("could not record probe of job job-1" in r.getMessage() for r in caplog.records)
    # This thread is not the writer: its queries (a job's own, in a work horse) keep no such bound.
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_sleep(0.5), 1")
        assert cursor.fetchone()[1] == 1


@postgresql_only
def test_the_clock_bounds_its_statements(settings):
    from django.core.management import call_command

    settings.JOBS_DB_STATEMENT_TIMEOUT_MS = 200
    connection.close()
    try:
        call_command("jobs_clock", "--once", stdout=io.StringIO())
        connection.close()  # the next connection is the clock's own, as after its reconnect
        with pytest.raises(OperationalError, match="statement timeout"), connection.cursor() as cursor:
            cursor.execute("SELECT pg_sleep(5)")
    finally:
        dbtimeouts.bound_this_process(False)
        connection.close()


def test_a_stalled_writer_is_logged_and_the_overview_warns_until_it_recovers(redis_conn, settings, caplog, client,
                                                                           django_user_model):
    settings.JOBS_WRITER_STALL_SECONDS = 0.5
    user = django_user_model.objects.create_user("reader", password="pw", is_staff=True)
    user.user_permissions.add(Permission.objects.get(codename="view_backgroundtaskrecord"))
    client.force_login(user)
    worker = Worker([get_queue("default")], connection=redis_conn)
    worker.register_birth()
    release = threading.Event()
    try:
        worker.rows.submit(Write("stuck", "job-2", lambda: release.wait(60)))
        wait_for(lambda: worker.rows.lag_seconds() > 1.2, timeout=30, message="the write to stall")
        worker.heartbeat()
        assert float(redis_conn.hget(worker.key, WRITER_LAG_FIELD)) > 1
        body = client.get(reverse("overview")).content.decode()
        assert f"Worker {worker.name}&#x27;s row writes have waited" in body
        wait_for(lambda: any("has been waiting on the database" in r.getMessage() for r in caplog.records),
                 timeout=30, message="the watchdog's log line")
    finally:
        release.set()
    assert worker.rows.flush(timeout=30)
    worker.heartbeat()
    assert float(redis_conn.hget(worker.key, WRITER_LAG_FIELD)) == 0
    assert "row writes have waited" not in client.get(reverse("overview")).content.decode()
    wait_for(lambda: any("row writes go through again" in r.getMessage() for r in caplog.records),
             timeout=30, message="the watchdog's recovery line")
    worker.rows.close()
    worker.register_death()
