"""Crons: each periodic entry's schedule, next and last run and recent outcomes; pause, resume, run now."""

from __future__ import annotations

from django.http import Http404
from django.urls import reverse
from django.views.decorators.vary import vary_on_headers

from jobs import periodic
from jobs.actions import ACTIONS

from ..access import action_required, viewer_required
from .base import act_on, render_fragment, render_page

CRON_REGIONS = ("cron-table",)



@viewer_required
@vary_on_headers("HX-Request")
def cron_list(request):
    return render_page(request, "dashboard/cron_list.html", {"rows": periodic.entry_rows()}, CRON_REGIONS)


@action_required()
def cron_action(request, name, action):
    """One of the cron-* actions of jobs.actions on entry `name`."""
    try:
        return act_on(request, ACTIONS[action], name, next_url=reverse("cron_list"),
                      fragment=lambda: render_fragment(request, "dashboard/cron_list.html#cron-table",
                                                       {"rows": periodic.entry_rows()}))
    except periodic.UnknownEntry:
        raise Http404(f"No periodic entry named {name!r}.") from None
