"""The record's state rules, in one table.

Every change of a record's status, and every write of ``pushed_at``, ``attempts`` and
``interruptions``, is one of the transitions below. The ORM path (jobs.models.intents) and
PostgreSQL's one-statement path (jobs.fastpath) both read their guards from here: the
states a transition leaves from, whether it is fenced to the write's attempt, whether a
pending cancel sends it to the careful path. docs/OPERATIONS.md states the same rules
for users; tests/jobs/test_transitions.py runs every transition from every state.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from django.db.models import Q

from .status import Status

PENDING, RUNNING = Status.PENDING.value, Status.RUNNING.value
COMPLETED, FAILED, CANCELLED = Status.COMPLETED.value, Status.FAILED.value, Status.CANCELLED.value
ACTIVE = (PENDING, RUNNING)


@dataclass(frozen=True)
class Transition:
    """One row of the table: which states it leaves from, where it goes, what it does to an attempt."""

    event: str
    from_states: tuple[str, ...]
    to_state: str | None  # None: the status stays as it is
    # "opens" a new attempt, "closes" the write's attempt with `outcome`, or "none".
    attempt: str = "none"
    outcome: str = ""
    # Fenced: it changes the record only while the record is on the write's execution id;
    # otherwise it goes to that attempt alone, marked late (see intents.apply_end).
    fenced: bool = False
    # Record fields it sets to constants, besides those the write carries.
    resets: dict = field(default_factory=dict)
    # It counts an attempt that did not use up a retry (interrupted or lost, then requeued).
    interruption: bool = False
    # The states PostgreSQL's one statement covers (the common case); the ORM path decides the
    # rest of `from_states`. None: all of them.
    common_from: tuple[str, ...] | None = None

    def status_q(self) -> Q:
        """The ORM guard: the record is in one of the from-states."""
        return Q(status__in=self.from_states)

    def status_sql(self, column: str = "status") -> str:
        """The one statement's guard as SQL, generated from the table (the enum's own values)."""
        states = self.common_from or self.from_states
        return f"{column} IN ({', '.join(repr(str(state)) for state in states)})"


_CLEAR_ERROR = {"error_type": "", "error_message": "", "traceback": ""}
_CLEAR_RUN = {"progress": None, "progress_message": ""}

TABLE: dict[str, Transition] = {t.event: t for t in (
    Transition("push", (PENDING,), None),
    Transition("unpush", (PENDING,), None, resets={"pushed_at": None}),
    # From running too: the attempt before ended without any write landing (it closes as lost),
    # unless this start is older than the record's (a late start: it gets its own attempt row).
    Transition("start", ACTIVE, RUNNING, attempt="opens", resets={"finished_at": None, "scheduled_for": None},
               common_from=(PENDING,)),
    Transition("complete", ACTIVE, COMPLETED, attempt="closes", outcome="completed", fenced=True,
               resets={**_CLEAR_ERROR, "scheduled_for": None, "progress": 1.0, "cancel_requested_at": None}),
    Transition("fail", ACTIVE, FAILED, attempt="closes", outcome="failed", fenced=True,
               resets={"scheduled_for": None, "cancel_requested_at": None}),
    Transition("retry", ACTIVE, PENDING, attempt="closes", outcome="failed", fenced=True, resets=_CLEAR_RUN),
    Transition("interrupt", ACTIVE, PENDING, attempt="closes", outcome="interrupted", fenced=True,
               resets={**_CLEAR_RUN, "scheduled_for": None, "pushed_at": None}, interruption=True),
    Transition("interrupt_final", ACTIVE, FAILED, attempt="closes", outcome="interrupted", fenced=True,
               resets={"scheduled_for": None, "cancel_requested_at": None}),
    Transition("lose", ACTIVE, PENDING, attempt="closes", outcome="lost", fenced=True,
               resets={**_CLEAR_RUN, "scheduled_for": None, "pushed_at": None}, interruption=True),
    Transition("lose_final", ACTIVE, FAILED, attempt="closes", outcome="lost", fenced=True,
               resets={"scheduled_for": None, "cancel_requested_at": None}),
    Transition("stop", ACTIVE, CANCELLED, attempt="closes", outcome="cancelled", fenced=True,
               resets={"scheduled_for": None}),
    Transition("cancel", ACTIVE, CANCELLED, attempt="closes", outcome="cancelled", resets={"scheduled_for": None}),
    Transition("request_cancel", ACTIVE, None),
    Transition("requeue", (FAILED, CANCELLED), PENDING,
               resets={**_CLEAR_ERROR, **_CLEAR_RUN, "pushed_at": None, "scheduled_for": None, "started_at": None,
                       "finished_at": None, "duration_ms": None, "result": None, "cancel_requested_at": None,
                       "interruptions": 0}),
    Transition("progress", ACTIVE, None),
)}

# The events that end an attempt, by the outcome they give it.
ENDS = tuple(t.event for t in TABLE.values() if t.attempt == "closes")


def get(event: str) -> Transition:
    """The transition of `event` (KeyError for an event the table does not know)."""
    return TABLE[event]


def record_fields(event: str, values: dict) -> dict:
    """The record's columns a transition writes: its constants, then the write's values, then the status."""
    transition = TABLE[event]
    fields = {**transition.resets, **values}
    if transition.to_state is not None:
        fields["status"] = transition.to_state
    return fields


def apply_to(queryset, event: str, **values) -> int:
    """A transition that opens or closes no attempt, on every row of `queryset` its guard allows;
    how many rows it changed."""
    from django.utils import timezone

    return queryset.filter(TABLE[event].status_q()).update(**record_fields(event, values), updated_at=timezone.now())
