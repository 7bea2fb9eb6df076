"""The record's state rules: every transition from every starting state, the fast path on and off.

jobs.models.transitions is the one table; jobs.models.intents carries the writes out through
the ORM, and jobs.fastpath as single PostgreSQL statements generated from the same table. On
PostgreSQL each case runs both ways and the rows and attempts must be identical; on SQLite the
ORM half runs. Either way the fence holds: a write from an attempt the record has moved past
changes the record not at all, and lands on that attempt, marked late.
"""

from datetime import timedelta

import pytest
from django.db import connection
from django.forms.models import model_to_dict
from django.utils import timezone

from jobs import fastpath
from jobs.models import AuditEntry, BackgroundTaskRecord, Status, TaskAttempt, intents
from jobs.models.transitions import TABLE

pytestmark = pytest.mark.django_db

T0 = timezone.now().replace(microsecond=0) - timedelta(minutes=5)
T1 = T0 + timedelta(seconds=3)
E = "exec-e"

# Starting states: (record status, record execution id, cancel requested, [(attempt execution id, outcome)])
STATES = {
    "pending, never run": (Status.PENDING, "", False, []),
    "pending, e lost and requeued": (Status.PENDING, E, False, [(E, "lost")]),
    "pending, e's start write lost": (Status.PENDING, "exec-old", False, [("exec-old", "failed")]),
    "running on e": (Status.RUNNING, E, False, [(E, "running")]),
    "running on e, cancel requested": (Status.RUNNING, E, True, [(E, "running")]),
    # The row's write was lost after its attempt's (or repaired from Redis): still on e.
    "running on e, its attempt closed already": (Status.RUNNING, E, False, [(E, "completed")]),
    "running on another attempt": (Status.RUNNING, "exec-x", False, [(E, "lost"), ("exec-x", "running")]),
    # A newer attempt runs; e (older, from a cut-off host) was never seen: its writes get a row.
    "running on a newer attempt, e unseen": (Status.RUNNING, "exec-x", False, [("exec-x", "running")]),
    "completed": (Status.COMPLETED, E, False, [(E, "completed")]),
    "failed": (Status.FAILED, E, False, [(E, "failed")]),
    "cancelled": (Status.CANCELLED, E, False, [(E, "cancelled")]),
}


def _start(pk):
    return intents.Start(pk, E, worker_name="w1", hostname="host-a", pid=41, started_at=T0)


WRITES = {
    "start(e)": _start,
    "complete(e)": lambda pk: intents.Complete(pk, E, result={"n": 1}, finished_at=T1, started_at=T0),
    "complete(e), start time unknown": lambda pk: intents.Complete(pk, E, result=[1], finished_at=T1),
    "fail(e)": lambda pk: intents.Fail(pk, E, error_type="ValueError", error_message="no", traceback="tb",
                                       finished_at=T1),
    "fail(e), retry": lambda pk: intents.Fail(pk, E, error_type="ValueError", error_message="no", traceback="tb",
                                              finished_at=T1, retry=True, retry_at=T1 + timedelta(seconds=60)),
    "stop(e)": lambda pk: intents.Stop(pk, E, error_message="stopped by an operator", finished_at=T1),
    "interrupt(e)": lambda pk: intents.Interrupt(pk, E, error_message="shutdown", finished_at=T1),
    "lose(e)": lambda pk: intents.Lose(pk, E, error_message="worker lost", finished_at=T1),
    "progress(e)": lambda pk: intents.Progress(pk, E, fraction=0.5, message="half"),
    "cancel, by an operator": lambda pk: intents.Stop(pk, None, error_message="cancelled by ops", finished_at=T1),
    "complete, unfenced": lambda pk: intents.Complete(pk, None, result=2, finished_at=T1, started_at=T0),
    "start and complete(e)": lambda pk: intents.Ran(pk, E, start=_start(pk), end=intents.Complete(
        pk, E, result=7, finished_at=T1, started_at=T0)),
}

OPERATOR = {  # transitions of the table that open or close no attempt
    "push": {"pushed_at": T1},
    "unpush": {},
    "request_cancel": {"cancel_requested_at": T1},
    "requeue": {"enqueued_at": T1},
}


def build(state: str, pk) -> BackgroundTaskRecord:
    status, execution_id, cancelling, attempts = STATES[state]
    record = BackgroundTaskRecord.objects.create(
        pk=pk, func_path="jobs.demo.noop", status=status, execution_id=execution_id, attempts=len(attempts),
        enqueued_at=T0 - timedelta(seconds=10), pushed_at=T0 - timedelta(seconds=10), max_retries=2,
        started_at=(T1 if "newer" in state else T0) if attempts else None, worker_name="w0" if attempts else "",
        cancel_requested_at=T0 if cancelling else None)
    for number, (attempt_id, outcome) in enumerate(attempts, 1):
        TaskAttempt.objects.create(record=record, number=number, execution_id=attempt_id, started_at=T0,
                                   outcome=outcome, finished_at=None if outcome == "running" else T0)
    return record


def snapshot(pk) -> tuple:
    record = model_to_dict(BackgroundTaskRecord.objects.get(pk=pk))
    record.pop("updated_at", None)
    attempts = [model_to_dict(a, exclude=["id", "record"]) for a in TaskAttempt.objects.filter(record_id=pk)]
    audit = list(AuditEntry.objects.filter(record_id=pk).values_list("action", "outcome"))
    return record, attempts, audit


def run(state: str, write, fast: bool) -> tuple:
    pk = BackgroundTaskRecord._meta.pk.default()
    build(state, pk)
    before = snapshot(pk)
    fastpath.set_enabled(fast)
    try:
        changed = write(pk)
    finally:
        fastpath.set_enabled(True)
    after = snapshot(pk)
    BackgroundTaskRecord.objects.filter(pk=pk).delete()
    AuditEntry.objects.filter(record_id=pk).delete()
    return changed, before, after


def _strip_ids(result):
    changed, _before, after = result
    return changed, after


@pytest.mark.parametrize("state", STATES)
@pytest.mark.parametrize("name", WRITES)
def test_every_write_from_every_state_is_the_same_with_and_without_the_fast_path(name, state):
    slow = run(state, lambda pk: WRITES[name](pk).apply(), fast=False)
    if connection.vendor == "postgresql":
        assert _strip_ids(run(state, lambda pk: WRITES[name](pk).apply(), fast=True)) == _strip_ids(slow)
    changed, before, after = slow
    record_before, record_after = before[0], after[0]
    on_e = record_before["status"] in (Status.PENDING, Status.RUNNING) and (
        record_before["execution_id"] == E and state.startswith("running")
        or state in ("pending, never run", "pending, e's start write lost"))
    if name.startswith(("complete(e)", "fail(e)", "stop(e)", "interrupt(e)", "lose(e)")) and not on_e:
        # The fence: the record is unchanged (but for counting a run it had not seen); attempt e
        # has the write's real outcome, marked late.
        assert {**record_after, "attempts": 0} == {**record_before, "attempts": 0} and not changed
        attempt = next(a for a in after[1] if a["execution_id"] == E)
        assert record_after["attempts"] == len(after[1]), "every run has its attempt row"
        assert attempt["late_at"] == T1 and attempt["late_outcome"] == (
            TABLE[WRITES[name]("-").event()].outcome if not name.startswith(("interrupt", "lose"))
            else attempt["late_outcome"])
    if name == "start(e)" and "newer" in state:
        assert record_after == {**record_before, "attempts": 2} and not changed, "a late start moves nothing"
        assert [a["execution_id"] for a in after[1]] == ["exec-x", E]
    if name == "cancel, by an operator":
        assert len(after[1]) == len(before[1]), "an operator's cancel ends no run of its own"
    if changed:
        assert len([a for a in after[1] if a["outcome"] == "running"]) <= 1, "one attempt runs at a time"
        assert record_after["attempts"] == len(after[1]), "every run has its attempt row"


@pytest.mark.parametrize("state", STATES)
@pytest.mark.parametrize("event", OPERATOR)
def test_every_operator_transition_moves_only_from_its_states(event, state):
    changed, before, after = run(state, lambda pk: BackgroundTaskRecord(pk=pk).transition(event, **OPERATOR[event]),
                                 fast=False)
    assert changed == (before[0]["status"] in TABLE[event].from_states)
    if not changed:
        assert after == before
    if event == "requeue" and changed:
        assert (after[0]["status"], after[0]["pushed_at"], after[0]["interruptions"]) == (Status.PENDING, None, 0)


def test_pushed_at_and_attempts_are_written_by_transitions_only():
    """No module of jobs/ outside the table's carriers writes these fields itself."""
    import pathlib
    import re

    root = pathlib.Path(__file__).resolve().parents[2] / "jobs"
    allowed = {"models/intents.py", "models/transitions.py", "models/record.py", "fastpath.py", "api.py",
               "seed.py", "copy.py"}
    pattern = re.compile(r"\.update\([^)]*\b(pushed_at|attempts|interruptions)\s*=")
    offenders = [str(path.relative_to(root)) for path in root.rglob("*.py")
                 if str(path.relative_to(root)) not in allowed and pattern.search(path.read_text())]
    assert offenders == []


@pytest.mark.skipif(connection.vendor != "postgresql", reason="the one-statement path is PostgreSQL's")
@pytest.mark.parametrize(("state", "name", "event"), [
    ("pending, never run", "start(e)", "start"),
    ("running on e", "complete(e)", "complete"),
    ("running on e", "fail(e)", "fail"),
    ("running on e", "fail(e), retry", "retry"),
    ("running on e", "stop(e)", "stop"),
    ("pending, never run", "start and complete(e)", "complete"),
])
def test_the_common_case_is_one_statement(state, name, event, django_assert_num_queries):
    """The hot path stays one statement per write (the matrix above proves it ends the same)."""
    pk = BackgroundTaskRecord._meta.pk.default()
    build(state, pk)
    write = WRITES[name](pk)
    statement = write.statement()
    with django_assert_num_queries(1):
        assert statement.settled(fastpath.run_one(statement))
    write.settled_fast()
    assert write.applied == event
    assert BackgroundTaskRecord.objects.get(pk=pk).status == TABLE[event].to_state


def test_a_completion_with_no_start_recorded_counts_that_attempt():
    record = build("pending, never run", BackgroundTaskRecord._meta.pk.default())
    assert intents.Complete(record.pk, E, result=1, finished_at=T1, started_at=T0).apply()
    record.refresh_from_db()
    assert (record.status, record.attempts, record.execution_id, record.duration_ms) == (
        Status.COMPLETED, 1, E, 3000)
    assert list(record.attempt_set.values_list("number", "execution_id", "outcome")) == [(1, E, "completed")]
