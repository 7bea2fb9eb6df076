"""The job list (filters, search, keyset pages, bulk actions), the job page, and actions."""

from __future__ import annotations

from django.conf import settings
from django.core import signing
from django.http import HttpResponse
from django.shortcuts import get_object_or_404, render
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.vary import vary_on_headers
from django_htmx.http import HttpResponseClientRedirect

from jobs import api, bulk, retry_policy, stats
from jobs.adopt import relations
from jobs.actions import ACTIONS
from jobs.models import BackgroundTaskRecord

from ..access import action_required, viewer_required
from ..forms import BulkForm, JobFilterForm, NewTimeForm, Selection, StaleSelection
from ..paging import BadCursor, keyset
from ..timeline import timeline
from .base import acted, render_fragment, render_page, safe_next


@viewer_required
@vary_on_headers("HX-Request")
def job_list(request):
    form = JobFilterForm(request.GET)
    context = {"form": form, "page": None, "here": request.get_full_path(), "error": ""}
    status = 200
    if form.is_valid():
        try:
            # The table shows none of the large columns; a failed page would otherwise fetch 50 tracebacks.
            records = form.filter(BackgroundTaskRecord.objects.defer("traceback", "result", "kwargs"))
            context["page"] = keyset(records, request.GET.get("cursor"), settings.DASHBOARD_PAGE_SIZE, "enqueued_at")
            _mark_waiting(context["page"].rows)
            context["filter_query"] = form.query_string()
        except BadCursor as exc:
            context["error"], status = str(exc), 400
    else:
        context["error"], status = "Some filters are not valid: " + form.errors.as_text(), 400
    return render_page(request, "dashboard/job_list.html", context, ("job-table",), status=status,
                       live=status == 200 and not _settled(form, context["page"]))


def _mark_waiting(records) -> None:
    """Note on each row that waits for a slot of its concurrency limit which key it waits for."""
    waiting = stats.waiting_for(records)
    for record in records:
        record.waiting_for = waiting.get(str(record.pk), "")


def _settled(form, page) -> bool:
    """Nothing on this page can change: a closed time range whose rows all finished."""
    until = form.cleaned_data.get("until")
    return bool(until and until < timezone.now() and page and all(r.is_final for r in page.rows))


def _detail_context(record: BackgroundTaskRecord) -> dict:
    attempts = list(record.attempt_set.order_by("number"))
    _mark_waiting([record])
    return {"record": record, "attempts": attempts, "events": timeline(record, attempts),
            "policy": retry_policy.describe(record), "relations": relations(record)}


@viewer_required
@vary_on_headers("HX-Request")
def job_detail(request, pk):
    record = get_object_or_404(BackgroundTaskRecord, pk=pk)
    return render_page(request, "dashboard/job_detail.html", _detail_context(record), ("job-live",),
                       live=not record.is_final)


@action_required()
def job_action(request, pk, action):
    action = ACTIONS[action]
    record = get_object_or_404(BackgroundTaskRecord, pk=pk)
    next_url = safe_next(request, reverse("job_list") if action.removes else reverse("job_detail", args=[pk]))
    if action.confirm and not request.POST.get("confirmed"):
        return render(request, "dashboard/job_confirm.html",
                      {"record": record, "action": action, "next": next_url, "now": timezone.now()})
    try:
        outcome = action.run(record, request.user, **_asked(request, action))
        text, ok = action.said(record.pk, outcome, next_attempt=record.attempts + 1), True
    except (ValueError, TypeError) as exc:  # the input an action asks for (a new time) is not valid
        return _refused(request, record, str(exc), 400)
    except api.ActionNotAllowed as exc:
        # Scheduled jobs, and a job that can never run again here (its queue was removed, or only a
        # preview of its arguments is stored): say it with a 409 and the job's page, not a redirect.
        if action.asks or action.verb == "run-now" or isinstance(exc, (api.QueueGone, api.ArgumentsNotStored)):
            return _refused(request, record, str(exc), 409)
        text, ok = str(exc), False
    if request.htmx and action.removes and ok and request.htmx.target == "job-live":
        return acted(request, text, next_url=next_url, fragment=HttpResponseClientRedirect(reverse("job_list")))
    return acted(request, text, ok=ok, next_url=next_url, fragment=_job_fragment(request, pk))


def _asked(request, action) -> dict:
    """The input `action` asks for (jobs.actions `asks`), checked; ValueError saying what is wrong."""
    if action.asks != "at":
        return {}
    form = NewTimeForm(request.POST)
    if not form.is_valid():
        raise ValueError(form.errors["at"][0])
    return {"at": form.cleaned_data["at"]}


def _refused(request, record: BackgroundTaskRecord, text: str, status: int) -> HttpResponse:
    """A refused action with a 4xx: the job's page (or its live region) with the reason."""
    if request.htmx:
        response = acted(request, text, ok=False, next_url="", fragment=_job_fragment(request, record.pk))
        response.status_code = status
        return response
    return render_page(request, "dashboard/job_detail.html", {**_detail_context(record), "refused": text},
                       ("job-live",), status=status)


def _job_fragment(request, pk) -> HttpResponse:
    """The job's region the action came from: its row in a list, or the live part of its page."""
    record = BackgroundTaskRecord.objects.filter(pk=pk).first()
    if record is None:
        return HttpResponse("")  # deleted: the row's outerHTML swap removes it
    if request.htmx and request.htmx.target == "job-live":
        return render_page(request, "dashboard/job_detail.html", _detail_context(record), ("job-live",))
    return render_fragment(request, "dashboard/partials/job_row.html", {"record": record})


@action_required("bulk")
def job_bulk(request):
    """Step 1 (no token): count and seal the selection, ask to confirm. Step 2: act in chunks."""
    next_url = safe_next(request, reverse("job_list"))
    if "token" not in request.POST:
        form = BulkForm(request.POST)
        if not form.is_valid():
            return _bulk_panel(request, {"errors": form.non_field_errors() or form.errors, "next": next_url}, 400)
        bulk.check_permitted(form.cleaned_data["action"], request.user)  # a 403 before any confirmation
        return _bulk_panel(request, {"selection": form.freeze(request.user), "next": next_url})
    try:
        selection = Selection.open(request.POST["token"], request.user)
        records = selection.queryset()  # its filter may no longer validate (a queue removed since)
    except StaleSelection as exc:
        return _bulk_panel(request, {"errors": [str(exc)], "next": next_url}, 400)
    except (signing.BadSignature, ValueError, KeyError):
        return _bulk_panel(request, {"errors": ["This confirmation is not valid or has expired; select again."],
                                     "next": next_url}, 400)
    batches = bulk.chunks(records, upto=selection.upto, limit=selection.limit,
                          chunk_size=settings.DASHBOARD_BULK_CHUNK) if selection.count else []
    result = bulk.run(selection.action, batches, request.user)
    text = _summary(result)
    if not request.htmx:
        return acted(request, text, ok=True, next_url=next_url)
    return acted(request, text, next_url=next_url,
                 fragment=_bulk_panel(request, {"result": result, "summary": text, "next": next_url}))


def _bulk_panel(request, context: dict, status: int = 200) -> HttpResponse:
    template = "dashboard/partials/bulk_panel.html" if request.htmx else "dashboard/job_bulk.html"
    return render_fragment(request, template, context, status)


def _summary(result: bulk.BulkResult) -> str:
    text = f"{result.succeeded} of {result.total} jobs {ACTIONS[result.action].done}."
    if result.skipped:
        reasons = "; ".join(f"{n} × {reason}" for reason, n in result.skipped.most_common())
        text += f" Skipped {result.skipped_count}: {reasons}."
    return text
