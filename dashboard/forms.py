"""Filters that live in the URL, and the bulk-action selection frozen into a signed token."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from django import forms
from django.conf import settings
from django.core import signing
from django.db.models import Q, QuerySet
from django.http import QueryDict
from django.utils import timezone

from jobs.actions import BULK_VERBS, audit_words
from jobs.models import BackgroundTaskRecord, Status

STATE_CHOICES = [
    ("", "any state"),
    ("pending", "pending (ready)"),
    ("scheduled", "scheduled"),
    ("overdue", "scheduled, overdue"),
    ("running", "running"),
    ("completed", "completed"),
    ("failed", "failed"),
    ("cancelled", "cancelled"),
]
TIME_FIELDS = {"enqueued": "enqueued_at", "finished": "finished_at"}
AUDIT_ACTIONS = audit_words()


class FilterForm(forms.Form):
    """Base for GET filter forms: the cleaned, non-empty values as a canonical query string."""

    def query_string(self) -> str:
        query = QueryDict(mutable=True)
        for name, value in self.cleaned_data.items():
            if value in (None, ""):
                continue
            query[name] = value.strftime("%Y-%m-%dT%H:%M:%S") if isinstance(value, datetime) else str(value)
        return query.urlencode()

    @property
    def active(self) -> bool:
        return self.is_bound and self.is_valid() and any(v not in (None, "") for v in self.cleaned_data.values())


class UTCDateTimeField(forms.DateTimeField):
    """A date and time, as UTC. An offset is applied, not kept: PostgreSQL refuses offsets past
    ±15:59 ("+20:00" was a 500), and the filter's URL writes the time without one, as UTC."""

    def to_python(self, value):
        result = super().to_python(value)
        if result is None:
            return None
        try:
            return result.astimezone(UTC)
        except OverflowError:  # 9999-12-31T23:00-15:00 is past the last representable instant
            raise forms.ValidationError("Enter a date and time between the years 1 and 9999.",
                                        code="invalid") from None


def _local_input():
    return forms.DateTimeInput(attrs={"type": "datetime-local", "step": "1"}, format="%Y-%m-%dT%H:%M:%S")


class JobFilterForm(FilterForm):
    state = forms.ChoiceField(choices=STATE_CHOICES, required=False)
    queue = forms.ChoiceField(required=False)
    function = forms.CharField(required=False, max_length=255,
                               widget=forms.TextInput(attrs={"placeholder": "jobs.demo.add", "list": "functions"}))
    q = forms.CharField(required=False, max_length=200, label="Search",
                        widget=forms.SearchInput(attrs={"placeholder": "id or short id, function, args, error"}))
    since = UTCDateTimeField(required=False, widget=_local_input(), help_text="UTC")
    until = UTCDateTimeField(required=False, widget=_local_input(), help_text="UTC")
    on = forms.ChoiceField(choices=[("", "enqueued"), ("enqueued", "enqueued"), ("finished", "finished")],
                           required=False, widget=forms.HiddenInput)
    error_type = forms.CharField(required=False, max_length=255, widget=forms.HiddenInput)
    worker = forms.CharField(required=False, max_length=255, widget=forms.HiddenInput)

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["queue"].choices = [("", "any queue")] + [(name, name) for name in settings.RQ_QUEUES]

    def clean(self):
        data = super().clean()
        if data.get("since") and data.get("until") and data["since"] > data["until"]:
            raise forms.ValidationError("“since” must be before “until”.")
        return data

    def filter(self, queryset: QuerySet, now: datetime | None = None) -> QuerySet:
        """Apply the cleaned filters; call only on a valid form."""
        now = now or timezone.now()
        data = self.cleaned_data
        state = data.get("state")
        if state == "pending":
            queryset = queryset.ready(now)
        elif state == "scheduled":
            queryset = queryset.scheduled(now)
        elif state == "overdue":
            late = now - timedelta(seconds=settings.DASHBOARD_OVERDUE_SECONDS)
            queryset = queryset.filter(status=Status.PENDING, scheduled_for__lt=late)
        elif state:
            queryset = queryset.filter(status=state)
        exact = {"queue_name": data.get("queue"), "func_path": data.get("function"),
                 "error_type": data.get("error_type"), "worker_name": data.get("worker")}
        queryset = queryset.filter(**{k: v for k, v in exact.items() if v})
        time_field = TIME_FIELDS[data.get("on") or "enqueued"]
        if data.get("since"):
            queryset = queryset.filter(**{f"{time_field}__gte": data["since"]})
        if data.get("until"):
            queryset = queryset.filter(**{f"{time_field}__lt": data["until"]})
        if data.get("q"):
            queryset = queryset.search(data["q"])
        return queryset


class AuditFilterForm(FilterForm):
    user = forms.CharField(required=False, max_length=150, widget=forms.TextInput(attrs={"placeholder": "username"}))
    action = forms.CharField(required=False, max_length=32, widget=forms.TextInput(attrs={"list": "audit-actions"}))
    record = forms.UUIDField(required=False, label="Record id")

    def filter(self, queryset: QuerySet) -> QuerySet:
        data = self.cleaned_data
        exact = {"username": data.get("user"), "action": data.get("action"), "record_id": data.get("record")}
        return queryset.filter(**{k: v for k, v in exact.items() if v})


# --- bulk actions ------------------------------------------------------------------

class UUIDListField(forms.Field):
    widget = forms.MultipleHiddenInput

    def to_python(self, value) -> list[uuid.UUID]:
        try:
            return [uuid.UUID(str(v)) for v in value or []]
        except ValueError:
            raise forms.ValidationError("A selected job id is not valid.") from None


class BulkForm(forms.Form):
    """Step one of a bulk action: which action, on the selected rows or on all matching a filter."""

    action = forms.ChoiceField(choices=[(a, a) for a in BULK_VERBS])
    scope = forms.ChoiceField(choices=[("selected", "selected"), ("all", "all matching")], required=False)
    ids = UUIDListField(required=False)
    filter = forms.CharField(required=False, max_length=2000, widget=forms.HiddenInput)

    def clean(self):
        data = super().clean()
        if data.get("scope") == "all":
            self.filter_form = JobFilterForm(QueryDict(data.get("filter") or ""))
            if not self.filter_form.is_valid():
                raise forms.ValidationError("The filter of this selection is not valid.")
        elif not data.get("ids"):
            raise forms.ValidationError("Select at least one job, or “all matching this filter”.")
        elif len(data["ids"]) > settings.DASHBOARD_BULK_MAX:
            raise forms.ValidationError(f"Select at most {settings.DASHBOARD_BULK_MAX} jobs at once.")
        return data

    def freeze(self, user) -> "Selection":
        """Count the selection now and seal it: confirming acts on these rows, not later arrivals."""
        action = self.cleaned_data["action"]
        if self.cleaned_data.get("scope") == "all":
            filter_query = self.filter_form.query_string()
            queryset = self.filter_form.filter(BackgroundTaskRecord.objects.all())
            top = queryset.order_by("-enqueued_at", "-pk").values_list("enqueued_at", "pk").first()
            count = 0
            if top:
                count = Selection.bounded(queryset, (top[0], str(top[1]))).count()
            payload = {"a": action, "u": user.pk, "f": filter_query, "n": count,
                       "b": [top[0].isoformat(), str(top[1])] if top else None}
        else:
            ids = [str(pk) for pk in BackgroundTaskRecord.objects.filter(pk__in=self.cleaned_data["ids"])
                   .values_list("pk", flat=True)]
            filter_query = ""
            payload = {"a": action, "u": user.pk, "ids": ids, "n": len(ids)}
        token = signing.dumps(payload, salt=Selection.SALT, compress=True)
        return Selection(action=action, count=payload["n"], filter_query=filter_query, token=token,
                         scope=self.cleaned_data.get("scope") or "selected")


@dataclass
class Selection:
    """A bulk action's frozen selection, as sealed in its confirmation token."""

    SALT = "dashboard.bulk.selection"

    action: str
    count: int
    filter_query: str
    token: str
    scope: str
    ids: list[str] | None = None
    upto: tuple[datetime, str] | None = None

    @property
    def capped(self) -> bool:
        return self.count > settings.DASHBOARD_BULK_MAX

    @property
    def limit(self) -> int:
        return min(self.count, settings.DASHBOARD_BULK_MAX)

    @staticmethod
    def bounded(queryset: QuerySet, upto: tuple[datetime, str]) -> QuerySet:
        at, pk = upto
        return queryset.filter(Q(enqueued_at__lt=at) | Q(enqueued_at=at, pk__lte=pk))

    @classmethod
    def open(cls, token: str, user) -> "Selection":
        """Unseal a confirmation token; raises signing.BadSignature if forged, stale or someone else's."""
        payload = signing.loads(token, salt=cls.SALT, max_age=settings.DASHBOARD_BULK_TOKEN_SECONDS)
        if payload.get("u") != user.pk or payload.get("a") not in BULK_VERBS:
            raise signing.BadSignature("this confirmation belongs to another user")
        bound = payload.get("b")
        return cls(action=payload["a"], count=payload["n"], filter_query=payload.get("f", ""), token=token,
                   scope="selected" if "ids" in payload else "all", ids=payload.get("ids"),
                   upto=(datetime.fromisoformat(bound[0]), bound[1]) if bound else None)

    def queryset(self) -> QuerySet:
        records = BackgroundTaskRecord.objects.all()
        if self.ids is not None:
            return records.filter(pk__in=self.ids)
        form = JobFilterForm(QueryDict(self.filter_query))
        if not form.is_valid():
            raise StaleSelection("The filter of this selection is no longer valid (" + "; ".join(
                f"{name}: {' '.join(errors)}" for name, errors in form.errors.items()) + "). Nothing was done; "
                "select again.")
        return form.filter(records)


class StaleSelection(ValueError):
    """A sealed selection whose filter no longer validates (e.g. its queue was removed from RQ_QUEUES)."""



class NewTimeForm(forms.Form):
    """A scheduled job's new time (jobs.actions `asks="at"`): the page's datetime-local, in the site's time
    zone, or ISO 8601 with an offset. Whether it is in the future, jobs.scheduled decides."""

    at = forms.DateTimeField(error_messages={"required": "Give the new time.",
                                             "invalid": "The new time is not a date and time (YYYY-MM-DDTHH:MM)."})
