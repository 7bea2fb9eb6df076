"""Periodic entries run by the clock: one row per slot, catch-up, overlap, bad entries, pause, run now."""

import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta

import pytest
import redis
from django.core.checks import run_checks
from django.db import connection

from jobs import demo, periodic
from jobs.clock import run_clock
from jobs.models import AuditEntry, BackgroundTaskRecord, PeriodicEntryState, Status
from tests.conftest import wait_for

pytestmark = pytest.mark.django_db(transaction=True)

DAY1 = datetime(2026, 3, 2, 2, 0, tzinfo=UTC)


@pytest.fixture
def entries(settings, redis_conn):
    """Declare JOBS_PERIODIC for the test; @periodic entries it registers are dropped afterwards."""
    registered = dict(periodic._registered)

    def declare(**specs):
        settings.JOBS_PERIODIC = specs
    declare()
    yield declare
    periodic._registered.clear()
    periodic._registered.update(registered)


def runs(name: str) -> list[BackgroundTaskRecord]:
    return list(BackgroundTaskRecord.objects.filter(periodic_entry=name).order_by("enqueued_at"))


def test_two_clock_passes_for_the_same_slot_make_one_row(entries, drain):
    entries(add={"func": "jobs.demo.add", "every": 60, "args": [1, 2]})
    now = datetime(2026, 3, 2, 10, 0, 5, tzinfo=UTC)
    first = periodic.run_due(now)
    assert periodic.run_due(now + timedelta(seconds=20)) == []  # the same slot: nothing new
    # A second clock that read the state before the first wrote it, or a clock restarted after
    # its INSERT but before noting the slot: the deterministic id stops the second row.
    PeriodicEntryState.objects.filter(name="add").update(last_slot_at=None)
    assert periodic.run_due(now) == []
    [record] = runs("add")
    assert record.pk == periodic.run_id("add", datetime(2026, 3, 2, 10, 0, tzinfo=UTC))
    assert first == [f"periodic: add: enqueued the 2026-03-02 10:00:00 UTC run as {record.pk}"]
    drain()
    record.refresh_from_db()
    assert (record.status, record.result) == (Status.COMPLETED, 3)
    periodic.run_due(now + timedelta(seconds=60))  # the next slot is a new row
    assert len(runs("add")) == 2


def test_two_clocks_at_once_make_one_row(entries):
    entries(**{f"e{i}": {"func": "jobs.demo.noop", "every": 60, "overlap": "allow"} for i in range(5)})
    now = datetime(2026, 3, 2, 10, 0, 5, tzinfo=UTC)
    start = threading.Barrier(2)

    def clock(_) -> None:
        try:
            start.wait()
            periodic.run_due(now)
        finally:
            connection.close()  # the thread's own connection

    with ThreadPoolExecutor(2) as pool:
        list(pool.map(clock, range(2)))
    names = sorted(BackgroundTaskRecord.objects.values_list("periodic_entry", flat=True))
    assert names == [f"e{i}" for i in range(5)]


def test_the_clock_runs_periodic_entries_as_one_of_its_duties(entries, drain):
    entries(echo={"func": "jobs.demo.echo", "every": 1, "kwargs": {"hello": "world"}, "queue": "high"})
    lines: list[str] = []
    run_clock(once=True, write=lines.append, sleep=lambda _: None)
    [record] = runs("echo")
    assert any(str(record.pk) in line for line in lines) and record.queue_name == "high"
    drain()
    record.refresh_from_db()
    assert record.status == Status.COMPLETED and record.result == {"args": [], "kwargs": {"hello": "world"}}


@pytest.mark.parametrize("catch_up, expected_runs", [("once", 2), ("skip", 1)])
def test_a_slot_missed_while_no_clock_ran(entries, drain, catch_up, expected_runs):
    entries(nightly={"func": "jobs.demo.noop", "cron": "0 2 * * *", "catch_up": catch_up})
    periodic.run_due(DAY1 + timedelta(seconds=5))  # on time
    drain()
    # No clock for two days and eight hours: three slots missed, at most one of them runs.
    lines = periodic.run_due(DAY1 + timedelta(days=2, hours=8))
    periodic.run_due(DAY1 + timedelta(days=2, hours=8, seconds=30))
    assert len(runs("nightly")) == expected_runs
    if catch_up == "skip":
        assert lines == [("periodic: nightly: skipped the 2026-03-04 02:00:00 UTC run: missed while no clock ran "
                          "(catch_up=skip)")]
        assert "catch_up=skip" in PeriodicEntryState.objects.get(name="nightly").skip_reason
    else:
        assert runs("nightly")[-1].pk == periodic.run_id("nightly", DAY1 + timedelta(days=2))
    drain()
    periodic.run_due(DAY1 + timedelta(days=3, seconds=10))  # the next slot runs on time either way
    assert len(runs("nightly")) == expected_runs + 1


def test_a_new_entry_does_not_run_a_slot_from_before_it_existed(entries):
    entries(nightly={"func": "jobs.demo.noop", "cron": "0 2 * * *"})
    assert periodic.run_due(DAY1 + timedelta(hours=12)) == []
    assert runs("nightly") == []
    periodic.run_due(DAY1 + timedelta(days=1, seconds=1))
    assert len(runs("nightly")) == 1


def test_overlap_skip_while_the_previous_run_is_still_running(entries, start_worker):
    entries(slow={"func": "jobs.demo.sleep", "every": 60, "args": [30]})
    now = datetime.now(UTC)
    periodic.run_due(now)
    [first] = runs("slow")
    start_worker()
    wait_for(lambda: BackgroundTaskRecord.objects.get(pk=first.pk).status == Status.RUNNING,
             message="the first run to start")
    lines = periodic.run_due(now + timedelta(seconds=60))
    assert len(runs("slow")) == 1
    assert lines and "the previous run is still pending or running (overlap=skip)" in lines[0]


def test_overlap_allow_runs_anyway(entries):
    entries(busy={"func": "jobs.demo.noop", "every": 60, "overlap": "allow"})
    now = datetime(2026, 3, 2, 10, 0, 1, tzinfo=UTC)
    periodic.run_due(now)
    periodic.run_due(now + timedelta(seconds=60))  # the first is still pending: no worker ran
    assert [r.status for r in runs("busy")] == [Status.PENDING, Status.PENDING]


BAD = {
    "no-import": ({"func": "app.tasks.missing", "every": 60}, "does not import"),
    "bad-cron": ({"func": "jobs.demo.noop", "cron": "61 * * * *"}, "cron string '61 * * * *' does not parse"),
    "bad-queue": ({"func": "jobs.demo.noop", "every": 60, "queue": "nowhere"}, "unknown queue 'nowhere'"),
    "bad-tz": ({"func": "jobs.demo.noop", "every": 60, "timezone": "Mars/Olympus"}, "unknown timezone"),
    "two-schedules": ({"func": "jobs.demo.noop", "every": 60, "cron": "* * * * *"}, "exactly one of"),
}


def test_a_bad_entry_is_a_check_error_and_a_clock_line_and_the_others_run(entries, drain):
    entries(good={"func": "jobs.demo.add", "every": 1, "args": [2, 2]}, **{name: spec for name, (spec, _) in BAD.items()})
    errors = {error.obj: error.msg for error in run_checks() if error.id == "jobs.E101"}
    assert set(errors) == set(BAD)
    for name, (_, why) in BAD.items():
        assert why in errors[name] and f"JOBS_PERIODIC[{name!r}]" in errors[name]
    lines: list[str] = []
    run_clock(once=True, write=lines.append, sleep=lambda _: None)  # no crash
    text = "\n".join(lines)
    for name, (_, why) in BAD.items():
        assert f"periodic: bad entry, not run: JOBS_PERIODIC[{name!r}]" in text and why in text
    [good] = runs("good")
    drain()
    good.refresh_from_db()
    assert good.result == 4
    reported: set[str] = set()
    assert len(periodic.run_due(reported=reported)) >= len(BAD)
    assert [line for line in periodic.run_due(reported=reported) if "bad entry" in line] == []  # logged once


def test_the_decorator_declares_an_entry(entries, drain):
    periodic.periodic("*/5 * * * *", name="decorated", args=[20, 22], queue="low")(demo.add)
    entry = periodic.get_entry("decorated")
    assert (entry.func_path, entry.words, entry.schedule) == ("jobs.demo.add", "every 5 minutes", "*/5 * * * *")
    periodic.run_due(datetime(2026, 3, 2, 10, 5, 3, tzinfo=UTC))
    drain()
    [record] = runs("decorated")
    record.refresh_from_db()
    assert (record.queue_name, record.result) == ("low", 42)


def test_a_pause_survives_a_redis_flush_and_resume_does_not_catch_up(entries, private_redis, admin_user, drain):
    entries(tick={"func": "jobs.demo.noop", "every": 60})
    now = datetime(2026, 3, 2, 10, 0, 1, tzinfo=UTC)
    periodic.run_due(now)
    drain()
    periodic.pause("tick", admin_user)
    redis.Redis.from_url(private_redis.url).flushall()  # the test's own server
    assert periodic.run_due(now + timedelta(minutes=5)) == []
    assert len(runs("tick")) == 1 and PeriodicEntryState.objects.get(name="tick").paused
    with pytest.raises(periodic.api.ActionNotAllowed):
        periodic.pause("tick", admin_user)
    periodic.resume("tick", admin_user)
    assert list(AuditEntry.objects.values_list("action", "username", "detail")) == [
        ("cron-resume", "admin", {"entry": "tick"}), ("cron-pause", "admin", {"entry": "tick"})]


def test_a_pause_committed_during_a_clock_pass_wins(entries):
    entries(tick={"func": "jobs.demo.noop", "every": 60})
    now = datetime(2026, 3, 2, 10, 0, 1, tzinfo=UTC)
    entry = periodic.get_entry("tick")
    state = PeriodicEntryState.objects.create(name="tick", active_since=now)  # read by the pass, not paused
    periodic.pause("tick")  # the operator's pause lands after that read
    assert periodic._run_entry(entry, state, now) is None
    assert runs("tick") == []


def test_resume_runs_the_next_slot_but_not_those_missed_while_paused(entries):
    entries(nightly={"func": "jobs.demo.noop", "cron": "0 2 * * *"})
    PeriodicEntryState.objects.create(name="nightly", active_since=DAY1 - timedelta(days=10))
    periodic.pause("nightly")
    periodic.resume("nightly")  # active since now (real time, after DAY1)
    assert periodic.run_due(DAY1 + timedelta(hours=5)) == [] and runs("nightly") == []


def test_run_now_is_audited_and_runs(entries, admin_user, drain):
    entries(report={"func": "jobs.demo.echo", "cron": "0 2 * * *", "timezone": "Europe/Paris",
                    "args": [1], "kwargs": {"full": True}})
    periodic.pause("report", admin_user)
    record = periodic.run_now("report", admin_user)  # paused or not
    assert record.periodic_entry == "report"
    audit = AuditEntry.objects.get(action="cron-run")
    assert (audit.record_id, audit.username, audit.detail) == (record.pk, "admin", {"entry": "report"})
    drain()
    record.refresh_from_db()
    assert record.result == {"args": [1], "kwargs": {"full": True}}
    with pytest.raises(periodic.UnknownEntry):
        periodic.run_now("nope", admin_user)


def test_cron_slots_follow_the_entry_timezone():
    entry = periodic.parse_entry("paris", {"func": "jobs.demo.noop", "cron": "0 2 * * *", "timezone": "Europe/Paris"})
    now = datetime(2026, 7, 1, 12, 0, tzinfo=UTC)
    assert entry.slot_at_or_before(now) == datetime(2026, 7, 1, 0, 0, tzinfo=UTC)  # 02:00 CEST
    assert entry.next_after(now) == datetime(2026, 7, 2, 0, 0, tzinfo=UTC)
    assert entry.words == "daily at 02:00 (Europe/Paris)"
    assert entry.slot_at_or_before(datetime(2026, 7, 1, 0, 0, tzinfo=UTC)) == datetime(2026, 7, 1, 0, 0, tzinfo=UTC)


@pytest.mark.parametrize("cron, words", [("*/15 * * * *", "every 15 minutes"), ("30 * * * *", "hourly at :30"),
                                         ("0 9 * * 1-5", "on weekdays at 09:00"), ("@daily", "daily at 00:00"),
                                         ("0 6 * * 1", "on Mondays at 06:00"), ("0 3 1 * *", "monthly on day 1 at 03:00"),
                                         ("5 4 * 1 *", "on a custom schedule")])
def test_schedules_in_words(cron, words):
    assert periodic.describe_cron(cron) == words
