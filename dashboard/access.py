"""Who may see the dashboard and who may act: staff with the record's view permission, and
the separate operate permission for every POST."""

from __future__ import annotations

from functools import wraps

from django.contrib.auth.views import redirect_to_login
from django.core.exceptions import PermissionDenied
from django.views.decorators.http import require_POST, require_safe

VIEW = "jobs.view_backgroundtaskrecord"
OPERATE = "jobs.operate_backgroundtaskrecord"


def can_view(user) -> bool:
    return user.is_active and user.is_staff and user.has_perm(VIEW)


def can_operate(user) -> bool:
    return can_view(user) and user.has_perm(OPERATE)


def can_use_admin(user) -> bool:
    """Superusers, and staff holding a permission the admin serves them a page for: its job pages
    need the operate permission (they show whole rows), so the read-only role stays out."""
    if not (user.is_active and user.is_staff):
        return False
    if user.is_superuser or user.has_perm(OPERATE):
        return True
    return any(not perm.startswith("jobs.") for perm in user.get_all_permissions())


def _guard(check):
    def decorator(view):
        @wraps(view)
        def wrapped(request, *args, **kwargs):
            if not request.user.is_authenticated:
                return redirect_to_login(request.get_full_path())
            if not check(request.user):
                raise PermissionDenied
            return view(request, *args, **kwargs)
        return wrapped
    return decorator


def viewer_required(view):
    """GET or HEAD only (405 otherwise), by a user holding the view permission (403 otherwise)."""
    return require_safe(_guard(can_view)(view))


def operator_required(view):
    """POST only, by a user holding the operate permission (403 otherwise)."""
    return require_POST(_guard(can_operate)(view))
