"""Crons: each periodic entry's schedule, next and last run and recent outcomes; pause, resume, run now."""

from __future__ import annotations

from django.http import Http404
from django.urls import reverse
from django.views.decorators.vary import vary_on_headers

from jobs import api, periodic
from jobs.actions import ACTIONS

from ..access import action_required, viewer_required
from .base import acted, render_fragment, render_page

CRON_REGIONS = ("cron-table",)



@viewer_required
@vary_on_headers("HX-Request")
def cron_list(request):
    return render_page(request, "dashboard/cron_list.html", {"rows": periodic.entry_rows()}, CRON_REGIONS)


@action_required()
def cron_action(request, name, action):
    """One of the cron-* actions of jobs.actions on entry `name`."""
    try:
        ACTIONS[action].run(name, request.user)
        text, ok = f"{name}: {ACTIONS[action].done}.", True
    except periodic.UnknownEntry:
        raise Http404(f"No periodic entry named {name!r}.") from None
    except api.ActionNotAllowed as exc:
        text, ok = f"{name}: {exc}", False
    fragment = None
    if request.htmx:
        fragment = render_fragment(request, "dashboard/cron_list.html#cron-table", {"rows": periodic.entry_rows()})
    return acted(request, text, ok=ok, next_url=reverse("cron_list"), fragment=fragment)
