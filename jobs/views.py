"""Endpoints the engine serves in any project that includes jobs.urls: health and metrics."""

from __future__ import annotations

import secrets

from django.db import connections
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_safe
from prometheus_client import CONTENT_TYPE_LATEST

from .conf import jobs_setting
from .connection import get_connection, queue_names
from .metrics import render_metrics


@never_cache
@require_safe
def healthz(request: HttpRequest) -> JsonResponse:
    """200 {"database": "ok", "redis": "ok"}, or 503 naming the failing part and its error class."""
    report = {"database": _check_database(), "redis": _check_redis()}
    healthy = all(value == "ok" for value in report.values())
    return JsonResponse(report, status=200 if healthy else 503)


def _check_database() -> str:
    try:
        with connections["default"].cursor() as cursor:
            cursor.execute("SELECT 1")
    except Exception as exc:  # any failure is the answer; the class only, never a DSN or password
        return f"error: {exc.__class__.__name__}"
    return "ok"


def _check_redis() -> str:
    try:
        for name in queue_names():
            get_connection(name).ping()
    except Exception as exc:
        return f"error: {exc.__class__.__name__}"
    return "ok"


@never_cache
@require_safe
def metrics(request: HttpRequest) -> HttpResponse:
    """Prometheus metrics, for a session allowed to view jobs or a bearer token equal to JOBS_METRICS_TOKEN."""
    if not (_has_metrics_token(request) or _may_view_jobs(request)):
        user = getattr(request, "user", None)
        if user is not None and user.is_authenticated:
            return HttpResponse("the jobs view permission is required\n", status=403, content_type="text/plain")
        response = HttpResponse("authentication required\n", status=401, content_type="text/plain")
        response["WWW-Authenticate"] = 'Bearer realm="metrics"'
        return response
    return HttpResponse(render_metrics(), content_type=CONTENT_TYPE_LATEST)


def _has_metrics_token(request: HttpRequest) -> bool:
    expected = jobs_setting("JOBS_METRICS_TOKEN")
    scheme, _, given = request.headers.get("Authorization", "").partition(" ")
    if not expected or scheme.lower() != "bearer" or not given:
        return False
    return secrets.compare_digest(given.strip().encode(), str(expected).encode())


def _may_view_jobs(request: HttpRequest) -> bool:
    # The same rule as the dashboard's pages: staff is not enough, the metrics are the jobs' figures.
    user = getattr(request, "user", None)
    return bool(user is not None and user.is_active and user.is_staff
                and user.has_perm("jobs.view_backgroundtaskrecord"))
