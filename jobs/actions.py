"""The operator actions, written down once: verb, permission, audit word and jobs.api function.

jobs.api checks the permission here before it acts; the dashboard's URLs, buttons, bulk form,
messages and audit filter read this table, as Django admin's changelist reads its action
registry (`ModelAdmin.get_actions`). A new action is one row here and one function in jobs.api.

Permissions: each action has its own (a "retry only" role holds `jobs.retry_job` alone);
`jobs.operate_backgroundtaskrecord`, the original operator permission, still grants them all.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

# Only the status module: jobs.models.record reads PERMISSIONS below while jobs.models loads.
from .models.status import Status

if TYPE_CHECKING:
    from .models import BackgroundTaskRecord

OPERATE = "jobs.operate_backgroundtaskrecord"  # every action below
BULK = "jobs.bulk_job"  # acting on many jobs at once; each job still needs its action's permission

# The new permissions, (codename, name), for BackgroundTaskRecord.Meta and the operators group.
PERMISSIONS = [
    ("retry_job", "Can retry failed or cancelled jobs"),
    ("cancel_job", "Can cancel pending or running jobs"),
    ("delete_job", "Can delete finished jobs"),
    ("pause_queue", "Can pause and resume queues"),
    ("bulk_job", "Can act on many jobs at once"),
    ("control_worker", "Can quiet and stop workers"),
    ("control_cron", "Can pause, resume and run periodic entries"),
    ("schedule_job", "Can run scheduled jobs now or move them to another time"),
]


def _retryable(record: BackgroundTaskRecord) -> bool:
    return record.status in (Status.FAILED, Status.CANCELLED)


def _cancellable(record: BackgroundTaskRecord) -> bool:
    return record.status == Status.PENDING or (record.status == Status.RUNNING and not record.cancel_requested_at)


def _deletable(record: BackgroundTaskRecord) -> bool:
    return record.is_final


def _scheduled(record: BackgroundTaskRecord) -> bool:
    """Pending with a future time: a delayed job or a retry waiting (jobs.scheduled acts on it)."""
    from django.utils import timezone

    return record.status == Status.PENDING and record.scheduled_for is not None and (
        record.scheduled_for > timezone.now())


@dataclass(frozen=True)
class Action:
    """One operator action. `target` is what it acts on: a job, a queue or a worker (by name)."""

    verb: str  # the URL's and the form's word
    permission: str  # "app_label.codename"
    audit: str  # the audit log's action word
    function: str  # the name of the jobs.api function: function(target, user)
    target: str  # "job", "queue" or "worker"
    label: str  # the button
    done: str  # past tense, for messages and bulk summaries
    style: str = ""  # the button's css class
    confirm: str = ""  # a destructive action's question; {name} is the target's name
    applies: Callable[[BackgroundTaskRecord], bool] | None = None  # job actions: in this state?
    bulk: bool = False  # offered by the job list's bulk bar
    removes: bool = False  # the job is gone afterwards: offered on its page only, which then leaves
    message: str = "{kind} {name} {outcome}."  # after it worked; {outcome} is what the api function returned
    asks: str = ""  # an input the action needs besides its target: "at" (a new time, jobs.scheduled.reschedule)

    def allowed(self, user) -> bool:
        """Whether `user` may do this (None is the system: the clock, a script)."""
        return user is None or permitted(user, self.permission)

    def run(self, target, user=None, **given):
        """Call the jobs.api function, or jobs.periodic's for a cron entry (imported late: both read this table);
        `given`: the input the action asks for."""
        from . import api, periodic

        return getattr(periodic if self.target == "cron" else api, self.function)(target, user, **given)

    def question(self, name: str) -> str:
        return self.confirm.format(name=name)

    def said(self, name: str, outcome=None, **extra) -> str:
        """The message after it worked: an api function's outcome word (cancel's "stopping"), else `done`."""
        outcome = OUTCOME_TEXT.get(outcome, outcome) if isinstance(outcome, str) else self.done
        return self.message.format(kind=self.target.capitalize(), name=name, outcome=outcome, **extra)


OUTCOME_TEXT = {"stopping": "is stopping"}  # api.cancel on a running job: its worker stops it


ACTIONS: dict[str, Action] = {action.verb: action for action in (
    Action("retry", "jobs.retry_job", "retry", "retry", "job", "Retry", "retried", applies=_retryable, bulk=True,
           message="Job {name} queued again (attempt {next_attempt})."),
    Action("cancel", "jobs.cancel_job", "cancel", "cancel", "job", "Cancel", "cancelled or stopping", " warn",
           "Cancel job {name}?", applies=_cancellable, bulk=True),
    Action("delete", "jobs.delete_job", "delete", "delete", "job", "Delete", "deleted", " danger",
           "Delete job {name} and its history?", applies=_deletable, bulk=True, removes=True),
    # Scheduled jobs (jobs.scheduled): delayed jobs and retries waiting for their backoff.
    Action("run-now", "jobs.schedule_job", "run-now", "run_now", "job", "Run now", "queued to run now",
           applies=_scheduled),
    Action("reschedule", "jobs.schedule_job", "reschedule", "reschedule", "job", "Move to", "moved",
           applies=_scheduled, asks="at"),
    Action("pause", "jobs.pause_queue", "pause", "pause_queue", "queue", "Pause", "paused", " warn",
           "Pause queue {name}? No worker takes a job from it after this click, including jobs enqueued "
           "later; a job already running finishes. Resume to let them run."),
    Action("resume", "jobs.pause_queue", "resume", "resume_queue", "queue", "Resume", "resumed"),
    Action("quiet", "jobs.control_worker", "quiet", "quiet_worker", "worker", "Quiet", "quieted", " warn",
           "Quiet worker {name}? It finishes its current job and takes no new one until unquieted."),
    Action("unquiet", "jobs.control_worker", "unquiet", "unquiet_worker", "worker", "Unquiet", "unquieted"),
    Action("stop", "jobs.control_worker", "stop", "stop_worker", "worker", "Stop", "asked to stop", " danger",
           "Stop worker {name}? It finishes its current job (a warm shutdown), then exits; "
           "start it again on its host."),
    # Periodic entries (jobs.periodic, the Crons page): the function is jobs.periodic's, by name.
    Action("cron-pause", "jobs.control_cron", "cron-pause", "pause", "cron", "Pause", "paused", " warn",
           "Pause periodic entry {name}? Its slots are skipped until resumed (and not caught up).",
           message="{name}: {outcome}."),
    Action("cron-resume", "jobs.control_cron", "cron-resume", "resume", "cron", "Resume", "resumed",
           message="{name}: {outcome}."),
    Action("cron-run", "jobs.control_cron", "cron-run", "run_now", "cron", "Run now", "run enqueued now",
           message="{name}: {outcome}."),
)}
BULK_VERBS = tuple(verb for verb, action in ACTIONS.items() if action.bulk)


def permitted(user, permission: str) -> bool:
    """`user` holds `permission`, or the operate permission that grants every action."""
    return bool(user is not None and user.is_active and (user.has_perm(OPERATE) or user.has_perm(permission)))


def operates(user) -> bool:
    """`user` may do everything an operator may: the operate permission, or every action's own (the
    operators group). The level that sees whole rows: the admin's job pages need it."""
    return permitted(user, OPERATE) or bool(
        user is not None and user.is_active and user.has_perms([f"jobs.{codename}" for codename, _ in PERMISSIONS]))


def allowed_verbs(user) -> frozenset[str]:
    """The verbs `user` may use, plus "bulk" if they may act on many jobs at once."""
    verbs = {verb for verb, action in ACTIONS.items() if permitted(user, action.permission)}
    if permitted(user, BULK):
        verbs.add("bulk")
    return frozenset(verbs)


def audit_words() -> list[str]:
    """Every action word the audit log can hold: one per action, and bulk-<verb> for a bulk run's summary."""
    words = dict.fromkeys(action.audit for action in ACTIONS.values())
    return [*words, *(f"bulk-{verb}" for verb in BULK_VERBS)]


def for_target(target: str) -> list[Action]:
    return [action for action in ACTIONS.values() if action.target == target]
