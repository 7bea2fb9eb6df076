"""Queues: depth and latency now, pause and resume, and charts of the last hour or day."""

from __future__ import annotations

from datetime import datetime, timedelta
from datetime import timezone as dt_timezone

from django.conf import settings
from django.http import Http404
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.vary import vary_on_headers

from jobs import stats
from jobs.actions import ACTIONS
from jobs.models import QueueSample

from .. import charts
from ..access import action_required, viewer_required
from ..health import jobs_url
from .base import act_on, render_fragment, render_page, rendered_regions
from .pages import count_workers, read_queues, read_workers

# window name → (span, bucket size)
WINDOWS = {"hour": (timedelta(hours=1), timedelta(minutes=1)), "day": (timedelta(days=1), timedelta(minutes=20))}


def _link(queue_name: str, on: str = ""):
    def link(slot, state) -> str:
        params = {"queue": queue_name, "since": f"{slot.start:%Y-%m-%dT%H:%M:%S}",
                  "until": f"{slot.end:%Y-%m-%dT%H:%M:%S}"}
        return jobs_url(**params, **({"state": state, "on": on} if on else {}))
    return link


def queue_charts(window: str, now) -> list[dict]:
    """Per queue: a depth chart and a throughput chart over the window, from the clock's samples."""
    span, size = WINDOWS[window]
    # Slots on round boundaries (…:00, :20, :40 for the day), the last one holding now.
    step = size.total_seconds()
    until = datetime.fromtimestamp((now.timestamp() // step + 1) * step, tz=dt_timezone.utc)
    since = until - span
    samples: dict[str, list] = {name: [] for name in settings.RQ_QUEUES}
    for sample in QueueSample.objects.filter(taken_at__gte=since).order_by("taken_at"):
        samples.setdefault(sample.queue_name, []).append(sample)
    return [{"queue": name, "depth": charts.depth_chart(f"{name}: depth", slots, _link(name)),
             "throughput": charts.throughput_chart(f"{name}: throughput", slots, _link(name, "finished"))}
            for name, rows in samples.items() for slots in [charts.buckets(rows, since, until, size)]]


QUEUE_REGIONS = ("queue-table", "queue-charts")


@viewer_required
@vary_on_headers("HX-Request")
def queue_list(request):
    now = timezone.now()
    window = request.GET.get("window") or "hour"
    if window not in WINDOWS:
        window, status, error = "hour", 400, "Unknown chart window: choose “hour” or “day”."
    else:
        status, error = 200, ""
    wanted = rendered_regions(request, QUEUE_REGIONS)
    context = {"error": error, "window": window, "windows": list(WINDOWS)}
    if "queue-table" in wanted:
        queues, context["redis_error"] = read_queues(now)
        count_workers(queues, read_workers()[0])
        context["queues"], context["limits"] = queues, stats.limits()
    if "queue-charts" in wanted:
        context["charts"] = queue_charts(window, now)
    return render_page(request, "dashboard/queue_list.html", context, QUEUE_REGIONS, status=status)


@action_required()
def queue_action(request, name, action):
    if name not in settings.RQ_QUEUES:
        raise Http404(f"No queue named {name!r}.")
    return act_on(request, ACTIONS[action], name, next_url=reverse("queue_list"),
                  fragment=lambda: _queue_row(request, name))


def _queue_row(request, name: str):
    queues, _ = read_queues(timezone.now())
    queue = next(q for q in queues if q.name == name)
    return render_fragment(request, "dashboard/partials/queue_row.html", {"queue": queue})
