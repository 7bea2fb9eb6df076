"""Worker controls: quiet, unquiet and stop a worker from the workers page (jobs.actions, target "worker")."""

from __future__ import annotations

from django.shortcuts import render
from django.urls import reverse
from django.utils import timezone

from jobs.actions import ACTIONS

from ..access import action_required
from .base import act_on, render_page
from .pages import worker_context


@action_required()
def worker_action(request, name, action):
    action = ACTIONS[action]
    if action.confirm and not request.POST.get("confirmed"):  # without JavaScript: ask on a page of its own
        return render(request, "dashboard/confirm.html", {"question": action.question(name), "action": action,
                                                          "back": reverse("worker_list"), "now": timezone.now()})
    return act_on(request, action, name, next_url=reverse("worker_list"), fragment=lambda: render_page(
        request, "dashboard/worker_list.html", worker_context(), ("worker-table",)))
