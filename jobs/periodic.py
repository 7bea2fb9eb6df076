"""Periodic jobs: entries declared in JOBS_PERIODIC or with @periodic, run by the clock as tracked rows.

Every run is a BackgroundTaskRecord naming its entry (``periodic_entry``), enqueued through
jobs.api like any other job. Its id is uuid5(entry name, time slot), so a slot runs at most
once however many clocks run it and however often a clock restarts: the second INSERT of the
same id fails on the primary key. Pause state and the newest slot handled live in the
database (PeriodicEntryState), so they survive Redis going away.

RQ 3.0's CronScheduler is not used to enqueue: it pushes straight into Redis under random RQ
ids, so its runs would have no row, no per-slot dedup across clocks and no durable pause.
Its cron library, croniter, does the cron arithmetic here.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from croniter import croniter
from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import Q
from django.utils import timezone
from django.utils.module_loading import import_string

from . import api
from .models import ACTIVE_STATES, BackgroundTaskRecord, PeriodicEntryState
from .schedule_words import describe_cron, describe_every

logger = logging.getLogger(__name__)

# A slot older than this when the clock reaches it was missed (no clock ran then): it runs
# only under catch_up="once". The clock ticks every second; a minute covers a slow tick.
ON_TIME_SECONDS = 60
NAMESPACE = uuid.uuid5(uuid.NAMESPACE_URL, "https://jobdeck/periodic")
OPTIONS = {"func", "cron", "every", "timezone", "queue", "args", "kwargs", "catch_up", "overlap", "retries",
           "retry_intervals", "timeout"}
CATCH_UP = ("once", "skip")
OVERLAP = ("skip", "allow")

_registered: dict[str, dict[str, Any]] = {}


class UnknownEntry(LookupError):
    """No periodic entry of that name is configured."""


@dataclass(frozen=True)
class Entry:
    """One periodic entry, checked: what to call and when."""

    name: str
    func_path: str
    cron: str | None = None
    every: int | None = None
    timezone: str = "UTC"
    queue: str = "default"
    args: list = field(default_factory=list)
    kwargs: dict = field(default_factory=dict)
    catch_up: str = "once"
    overlap: str = "skip"
    retries: int = 0
    retry_intervals: list | None = None
    timeout: int | None = None

    @property
    def tz(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    def slot_at_or_before(self, now: datetime) -> datetime:
        """The newest slot not after `now` (UTC). Interval slots are multiples of `every` since
        the epoch, so every clock computes the same ones."""
        if self.every:
            return datetime.fromtimestamp(now.timestamp() // self.every * self.every, tz=UTC)
        # croniter's get_prev from a time exactly on a slot returns the slot before: step 1 µs on.
        local = now.astimezone(self.tz) + timedelta(microseconds=1)
        return croniter(self.cron, local).get_prev(datetime).astimezone(UTC)

    def next_after(self, now: datetime) -> datetime:
        """The first slot after `now` (UTC)."""
        if self.every:
            return datetime.fromtimestamp((now.timestamp() // self.every + 1) * self.every, tz=UTC)
        return croniter(self.cron, now.astimezone(self.tz)).get_next(datetime).astimezone(UTC)

    @property
    def schedule(self) -> str:
        """The schedule as configured: the cron string, or "every 30 s"."""
        return self.cron if self.cron else f"every {self.every} s"

    @property
    def words(self) -> str:
        """The schedule in words: "every 5 minutes", "daily at 02:00 (Europe/Paris)"."""
        text = describe_every(self.every) if self.every else describe_cron(self.cron)
        return text if self.every or self.timezone == "UTC" else f"{text} ({self.timezone})"


def run_id(name: str, slot: datetime) -> uuid.UUID:
    """The id of the run of entry `name` for `slot`: the same on every clock."""
    return uuid.uuid5(NAMESPACE, f"{name}@{slot.astimezone(UTC).isoformat()}")


# --- declaring entries ------------------------------------------------------------------

def periodic(cron: str | None = None, *, every: int | None = None, name: str | None = None,
             **options) -> Callable:
    """Decorator declaring a module-level function a periodic entry, like one of JOBS_PERIODIC.

    ``@periodic("*/5 * * * *")`` or ``@periodic(every=30, queue="low")``. The entry exists once
    the function's module is imported: jobs' AppConfig imports every installed app's
    ``tasks`` module at start-up, as Celery's autodiscovery does.
    """
    def decorate(func: Callable) -> Callable:
        spec = {"func": api.func_path_of(func), **options}
        spec.update({"cron": cron} if cron is not None else {})
        spec.update({"every": every} if every is not None else {})
        _registered[name or spec["func"]] = spec
        return func
    return decorate


register = periodic


def declared() -> dict[str, tuple[str, Any]]:
    """Every declared entry by name: (where it was declared, its raw options)."""
    found = {name: ("@periodic", spec) for name, spec in _registered.items()}
    found.update({name: ("JOBS_PERIODIC", spec) for name, spec in getattr(settings, "JOBS_PERIODIC", {}).items()})
    return found


def load_entries() -> tuple[dict[str, Entry], dict[str, str]]:
    """The good entries by name, and for each bad one the reason it cannot run."""
    entries, errors = {}, {}
    for name, (source, spec) in declared().items():
        try:
            entries[name] = parse_entry(name, spec)
        except ValueError as exc:
            errors[name] = f"{source}[{name!r}]: {exc}"
    return entries, errors


def parse_entry(name: Any, spec: Any) -> Entry:
    """Check one declared entry; ValueError says what is wrong with it.

    One error type for every way an entry is bad (types included): check() and the clock report them alike.
    """
    if not isinstance(name, str) or not 0 < len(name) <= 100 or "/" in name:
        raise ValueError("the name must be text of 1 to 100 characters, without '/' (it is part of a URL)")
    if not isinstance(spec, dict):
        raise ValueError(f"expected a dict of options, got {type(spec).__name__}")
    if unknown := set(spec) - OPTIONS:
        raise ValueError(f"unknown option(s) {', '.join(sorted(unknown))}; known: {', '.join(sorted(OPTIONS))}")
    if "func" not in spec:
        raise ValueError("'func' is required: the dotted path of the function to run")
    try:
        func_path = api.func_path_of(spec["func"])
        if not callable(import_string(func_path)):
            raise ValueError(f"{func_path} is not callable")
    except (ImportError, TypeError) as exc:
        raise ValueError(f"function {spec['func']!r} does not import: {exc}") from None
    entry = Entry(name=name, func_path=func_path, **{k: v for k, v in spec.items() if k != "func"})
    _check_schedule(entry)
    if entry.catch_up not in CATCH_UP:
        raise ValueError(f"catch_up must be one of {', '.join(CATCH_UP)}, not {entry.catch_up!r}")
    if entry.overlap not in OVERLAP:
        raise ValueError(f"overlap must be one of {', '.join(OVERLAP)}, not {entry.overlap!r}")
    if not isinstance(entry.args, (list, tuple)) or not isinstance(entry.kwargs, dict):
        raise ValueError("args must be a list and kwargs a dict")
    try:  # the same checks as any enqueue: queue, retries, timeout, JSON arguments
        _build(entry)
    except (TypeError, ValueError) as exc:
        raise ValueError(str(exc)) from None
    return entry


def _check_schedule(entry: Entry) -> None:
    if (entry.cron is None) == (entry.every is None):
        raise ValueError("give exactly one of 'cron' (a cron string) and 'every' (seconds)")
    if entry.every is not None and (not isinstance(entry.every, int) or isinstance(entry.every, bool)
                                    or entry.every <= 0):
        raise ValueError(f"'every' must be a whole number of seconds above 0, not {entry.every!r}")
    if entry.cron is not None and (not isinstance(entry.cron, str) or not croniter.is_valid(entry.cron)):
        raise ValueError(f"cron string {entry.cron!r} does not parse (expected 5 fields: minute hour day month weekday)")
    try:
        ZoneInfo(entry.timezone)
    except (ZoneInfoNotFoundError, ValueError, TypeError):
        raise ValueError(f"unknown timezone {entry.timezone!r}") from None


def _build(entry: Entry, record_id: uuid.UUID | None = None) -> BackgroundTaskRecord:
    record = api.build_record(entry.func_path, list(entry.args), entry.kwargs, queue=entry.queue,
                              retries=entry.retries, retry_intervals=entry.retry_intervals, timeout=entry.timeout,
                              record_id=record_id)
    record.periodic_entry = entry.name
    return record


def get_entry(name: str) -> Entry:
    """The configured entry `name`; UnknownEntry if there is none, ActionNotAllowed if it is bad."""
    entries, errors = load_entries()
    if name in errors:
        raise api.ActionNotAllowed(errors[name])
    if name not in entries:
        raise UnknownEntry(f"no periodic entry named {name!r}")
    return entries[name]


# --- the clock's duty -------------------------------------------------------------------

def run_due(now: datetime | None = None, *, reported: set[str] | None = None) -> list[str]:
    """Enqueue each entry's due slot, once; return the lines for the clock's log.

    A bad entry gives a line (once per `reported` set, i.e. once per clock process) and is
    skipped; an entry whose pass fails is logged and the other entries still run.
    """
    now = now or timezone.now()
    entries, errors = load_entries()
    lines = []
    for error in errors.values():
        line = f"periodic: bad entry, not run: {error}"
        if reported is None or line not in reported:
            logger.error("%s", line)
            lines.append(line)
            if reported is not None:
                reported.add(line)
    states = {state.name: state for state in PeriodicEntryState.objects.filter(name__in=list(entries))}
    for entry in entries.values():
        try:
            line = _run_entry(entry, states.get(entry.name), now)
        except Exception as exc:  # the database or Redis failing for one entry: the next pass retries it
            logger.exception("periodic entry %s failed", entry.name)
            line = f"periodic: {entry.name} failed: {exc.__class__.__name__}: {exc}"
        if line:
            lines.append(line)
    return lines


def _run_entry(entry: Entry, state: PeriodicEntryState | None, now: datetime) -> str | None:
    if state is None:
        state, _ = PeriodicEntryState.objects.get_or_create(name=entry.name, defaults={"active_since": now})
    slot = entry.slot_at_or_before(now)
    if state.paused or (state.last_slot_at is not None and slot <= state.last_slot_at):
        return None
    if now - slot > timedelta(seconds=ON_TIME_SECONDS):
        if slot < state.active_since:  # before the entry existed (or was resumed): not missed
            _handled(entry.name, slot)
            return None
        if entry.catch_up == "skip":
            return _skipped(entry.name, slot, "missed while no clock ran (catch_up=skip)")
    this_run = run_id(entry.name, slot)
    if entry.overlap == "skip" and BackgroundTaskRecord.objects.filter(
            periodic_entry=entry.name, status__in=ACTIVE_STATES).exclude(pk=this_run).exists():
        return _skipped(entry.name, slot, "the previous run is still pending or running (overlap=skip)")
    record = _build(entry, this_run)
    try:
        with transaction.atomic():
            # The entry's row lock: a pause committed since the state was read wins (pause takes
            # the same lock), and two clocks on one entry take turns.
            if PeriodicEntryState.objects.select_for_update().filter(name=entry.name).values_list(
                    "paused_at", flat=True).first() is not None:
                return None
            api.save_and_push([record])
    except IntegrityError:  # another clock enqueued this slot first
        _handled(entry.name, slot)
        return None
    _handled(entry.name, slot)
    return f"periodic: {entry.name}: enqueued the {slot:%Y-%m-%d %H:%M:%S} UTC run as {record.pk}"


def _handled(name: str, slot: datetime, **fields) -> None:
    """Note `slot` as the newest one handled, never moving it back (two clocks may race here)."""
    PeriodicEntryState.objects.filter(Q(last_slot_at__isnull=True) | Q(last_slot_at__lt=slot), name=name).update(
        last_slot_at=slot, updated_at=timezone.now(), **fields)


def _skipped(name: str, slot: datetime, reason: str) -> str:
    _handled(name, slot, skipped_at=slot, skip_reason=reason[:255])
    return f"periodic: {name}: skipped the {slot:%Y-%m-%d %H:%M:%S} UTC run: {reason}"


# --- operator actions ---------------------------------------------------------------------

def pause(name: str, user=None) -> PeriodicEntryState:
    """Stop the clock enqueueing entry `name` until resumed; kept in the database, audited."""
    return _set_paused(name, user, paused=True)


def resume(name: str, user=None) -> PeriodicEntryState:
    """Let the clock enqueue entry `name` again, from its next slot (slots missed while paused
    are not caught up); audited."""
    return _set_paused(name, user, paused=False)


def _set_paused(name: str, user, *, paused: bool) -> PeriodicEntryState:
    api.permit(user, "cron-pause" if paused else "cron-resume")
    get_entry(name)
    with transaction.atomic():
        state, _ = PeriodicEntryState.objects.select_for_update().get_or_create(name=name)
        if state.paused == paused:
            raise api.ActionNotAllowed(f"{name} is {'already' if paused else 'not'} paused")
        state.paused_at, state.paused_by = (timezone.now(), _username(user)) if paused else (None, "")
        if not paused:
            state.active_since = timezone.now()
        state.save(update_fields=["paused_at", "paused_by", "active_since", "updated_at"])
        api.audit(user, "cron-pause" if paused else "cron-resume", entry=name)
    return state


def run_now(name: str, user=None) -> BackgroundTaskRecord:
    """Enqueue one run of entry `name` now, outside its schedule (paused or not); audited."""
    api.permit(user, "cron-run")
    record = _build(get_entry(name))
    with transaction.atomic():
        api.save_and_push([record])
        api.audit(user, "cron-run", record, entry=name)
    return record


def _username(user) -> str:
    return user.get_username() if user is not None and getattr(user, "is_authenticated", False) else "system"


# --- the Crons page's rows -------------------------------------------------------------------

RECENT_RUNS = 20


@dataclass
class EntryRow:
    """One entry as the Crons page shows it: configured, bad (`error`) or gone from the configuration."""

    name: str
    entry: Entry | None
    error: str
    state: PeriodicEntryState | None
    next_at: datetime | None
    recent: list[BackgroundTaskRecord]  # newest first

    @property
    def last(self) -> BackgroundTaskRecord | None:
        return self.recent[0] if self.recent else None

    @property
    def gone(self) -> bool:
        return self.entry is None and not self.error

    @property
    def paused(self) -> bool:
        return self.state is not None and self.state.paused

    @property
    def next_local(self) -> str:
        """The next run's time in the entry's own timezone ("02:00 Europe/Paris"), when that is not UTC."""
        if self.next_at is None or self.entry is None or self.entry.timezone == "UTC":
            return ""
        return f"{self.next_at.astimezone(self.entry.tz):%H:%M} {self.entry.timezone}"


def entry_rows(now: datetime | None = None) -> list[EntryRow]:
    """Every configured entry (good or bad) by name, then the gone ones that left state or runs behind."""
    now = now or timezone.now()
    entries, errors = load_entries()
    states = {state.name: state for state in PeriodicEntryState.objects.all()}
    ran = set(BackgroundTaskRecord.objects.filter(periodic_entry__isnull=False)
              .values_list("periodic_entry", flat=True).distinct())
    configured = sorted(set(entries) | set(errors))
    rows = []
    for name in configured + sorted((set(states) | ran) - set(configured)):
        entry, state = entries.get(name), states.get(name)
        recent = list(BackgroundTaskRecord.objects.filter(periodic_entry=name).order_by("-enqueued_at", "-id")
                      .only("id", "status", "enqueued_at", "started_at", "finished_at")[:RECENT_RUNS])
        next_at = entry.next_after(now) if entry is not None and not (state and state.paused) else None
        rows.append(EntryRow(name, entry, errors.get(name, ""), state, next_at, recent))
    return rows
