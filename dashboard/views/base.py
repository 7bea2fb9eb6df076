"""Shared plumbing of the views: page-or-fragment rendering, polling, and acting."""

from __future__ import annotations

from django.conf import settings
from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect
from django.template.loader import render_to_string
from django.utils import timezone
from django.utils.http import url_has_allowed_host_and_scheme
from django_htmx.http import HttpResponseStopPolling, trigger_client_event

from jobs.api import ActionNotAllowed

CHANGED = "jobs-changed"  # the HX-Trigger event after any action: polled regions refresh at once


def rendered_regions(request: HttpRequest, regions: tuple[str, ...]) -> tuple[str, ...]:
    """The regions this request shows: all of them for the page, for an htmx request the
    one it targets (default: the first). A view computes only what these need."""
    if request.htmx and not request.htmx.boosted:
        return (request.htmx.target if request.htmx.target in regions else regions[0],)
    return regions


def render_page(request: HttpRequest, template: str, context: dict, regions: tuple[str, ...], *,
                status: int = 200, live: bool = True) -> HttpResponse:
    """The full page; on an htmx request only the region it targets (default: the first).

    A region that can no longer change (`live` False) is rendered without its poll
    trigger and, to a poll, answered with 286 so htmx stops asking.
    """
    context = {"now": timezone.now(), "poll_seconds": settings.DASHBOARD_POLL_SECONDS, "live": live,
               "chart_poll_seconds": settings.DASHBOARD_CHART_POLL_SECONDS, **context}
    if request.htmx and not request.htmx.boosted:
        [region] = rendered_regions(request, regions)
        content = render_to_string(f"{template}#{region}", context, request)
        if not live and status == 200:
            return HttpResponseStopPolling(content)
        return HttpResponse(content, status=status)
    return HttpResponse(render_to_string(template, context, request), status=status)


def render_fragment(request: HttpRequest, template: str, context: dict, status: int = 200) -> HttpResponse:
    context = {"now": timezone.now(), "poll_seconds": settings.DASHBOARD_POLL_SECONDS, **context}
    return HttpResponse(render_to_string(template, context, request), status=status)


def safe_next(request: HttpRequest, default: str) -> str:
    """The form's `next` if it is a path on this site, else `default`."""
    target = request.POST.get("next") or ""
    # Only paths: a bare word would go to redirect() as a URL pattern name (NoReverseMatch, a 500).
    if target.startswith("/") and url_has_allowed_host_and_scheme(target, {request.get_host()},
                                                                  require_https=request.is_secure()):
        return target
    return default


def acted(request: HttpRequest, text: str, *, ok: bool = True, next_url: str,
          fragment: HttpResponse | None = None) -> HttpResponse:
    """After an action. Without htmx: message and redirect. With htmx: the updated
    fragment plus events that refresh counts and show the message."""
    if not request.htmx:
        messages.add_message(request, messages.SUCCESS if ok else messages.ERROR, text)
        return redirect(next_url)
    response = fragment if fragment is not None else HttpResponse(status=200 if ok else 409)
    if not ok and response.status_code == 200:
        response.status_code = 409
    trigger_client_event(response, CHANGED)
    trigger_client_event(response, "dashboard:message", {"level": "success" if ok else "error", "text": text})
    return response


def act_on(request: HttpRequest, action, name: str, *, next_url: str, fragment) -> HttpResponse:
    """Run an action of jobs.actions on the target named `name` (a queue, a worker, a cron entry)
    as the request's user, then answer as `acted` does: a refusal is its message (a 409 under
    htmx), never a 500. `fragment()` renders the region an htmx request swaps back."""
    try:
        outcome = action.run(name, request.user)
        text, ok = action.said(name, outcome), True
    except ActionNotAllowed as exc:
        text, ok = str(exc), False
    return acted(request, text, ok=ok, next_url=next_url, fragment=fragment() if request.htmx else None)
