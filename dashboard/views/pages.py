"""The read-only pages: overview, failures, workers and the audit log."""

from __future__ import annotations

from urllib.parse import urlencode

from django.conf import settings
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.vary import vary_on_headers

from jobs import api, stats
from jobs.models import AuditEntry, BackgroundTaskRecord

from .. import charts
from ..access import viewer_required
from ..forms import AUDIT_ACTIONS, AuditFilterForm
from ..health import jobs_url, warnings
from ..paging import BadCursor, keyset
from .base import render_page, rendered_regions


def read_workers() -> tuple[list[stats.WorkerInfo] | None, str]:
    """The workers, or None and why not (Redis down must not take the dashboard down)."""
    try:
        workers = stats.workers(stale_after=settings.DASHBOARD_STALE_HEARTBEAT_SECONDS)
    except stats.Unavailable as exc:
        return None, str(exc)
    quiet = api.quiet_workers()
    for worker in workers:
        worker.quiet = worker.name in quiet
    return workers, ""


def read_queues(now) -> tuple[list[stats.QueueStats], str]:
    queues, error = stats.queue_stats(now), ""
    try:
        paused = stats.paused_queues()
    except stats.Unavailable as exc:
        paused, error = set(), str(exc)
    for queue in queues:
        queue.paused = queue.name in paused
        queue.configured = queue.name in settings.RQ_QUEUES  # only these can be paused (rows may name others)
    return queues, error


def split_workers(workers: list[stats.WorkerInfo] | None) -> tuple[list, list]:
    """(live, stale or gone): a worker that stopped beating is not a live one, and is shown apart."""
    workers = workers or []
    return [w for w in workers if not w.stale], [w for w in workers if w.stale]


def count_workers(queues: list[stats.QueueStats], workers: list[stats.WorkerInfo] | None) -> None:
    """Set each queue's number of live (not stale) workers listening to it."""
    for queue in queues:
        queue.workers = sum(1 for w in workers or [] if queue.name in w.queues and not w.stale)


def _minute_link(slot, state) -> str:
    return jobs_url(state=state, on="finished", since=f"{slot.start:%Y-%m-%dT%H:%M:%S}",
                    until=f"{slot.end:%Y-%m-%dT%H:%M:%S}")


OVERVIEW_REGIONS = ("overview-live", "overview-chart")


@viewer_required
@vary_on_headers("HX-Request")
def overview(request):
    now = timezone.now()
    wanted = rendered_regions(request, OVERVIEW_REGIONS)
    context = {}
    if "overview-live" in wanted:
        queues, redis_error = read_queues(now)
        workers, workers_error = read_workers()
        count_workers(queues, workers)
        context["live_workers"], context["stale_workers"] = split_workers(workers)
        context.update({
            "counts": stats.state_counts(queues), "queues": queues, "workers": workers,
            "redis_error": redis_error or workers_error, "warnings": warnings(queues, workers, now),
            "failures": BackgroundTaskRecord.objects.failed().defer("traceback", "result", "kwargs")
                                                              .order_by("-finished_at")[:8],
        })
    if "overview-chart" in wanted:  # polled on its own, at the charts' slower pace
        context["chart"] = charts.throughput_chart("Completed and failed per minute, last hour (UTC)",
                                                   charts.minute_buckets(stats.throughput(60, now)), _minute_link)
    return render_page(request, "dashboard/overview.html", context, OVERVIEW_REGIONS)


@viewer_required
@vary_on_headers("HX-Request")
def failure_list(request):
    groups = stats.failure_groups()
    for group in groups:
        group.filter_query = urlencode({"state": "failed", "function": group.func_path, "error_type": group.error_type})
        group.jobs_url = f"{reverse('job_list')}?{group.filter_query}"
        group.sample_url = reverse("job_detail", args=[group.sample.pk]) if group.sample else ""
    context = {"groups": groups}
    return render_page(request, "dashboard/failure_list.html", context, ("failure-groups",))


def worker_context() -> dict:
    """The workers page's table: live workers, and apart from them the stale or gone ones."""
    workers, error = read_workers()
    live, stale = split_workers(workers)
    return {"workers": live, "stale_workers": stale, "redis_error": error,
            "stale_after": settings.DASHBOARD_STALE_HEARTBEAT_SECONDS}


@viewer_required
@vary_on_headers("HX-Request")
def worker_list(request):
    return render_page(request, "dashboard/worker_list.html", worker_context(), ("worker-table",))


@viewer_required
@vary_on_headers("HX-Request")
def audit_list(request):
    form = AuditFilterForm(request.GET)
    context, status = {"form": form, "page": None, "error": "", "actions": AUDIT_ACTIONS,
                       "here": request.get_full_path()}, 200
    if form.is_valid():
        try:
            entries = form.filter(AuditEntry.objects.all())
            context["page"] = keyset(entries, request.GET.get("cursor"), settings.DASHBOARD_PAGE_SIZE, "created_at")
        except BadCursor as exc:
            context["error"], status = str(exc), 400
    else:
        context["error"], status = "Some filters are not valid: " + form.errors.as_text(), 400
    return render_page(request, "dashboard/audit_list.html", context, ("audit-table",), status=status)
