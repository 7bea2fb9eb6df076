"""Who may see the dashboard and who may act: staff with the record's view permission, and
each action's own permission (jobs.actions) for its POST."""

from __future__ import annotations

from functools import wraps

from django.contrib.auth.views import redirect_to_login
from django.core.exceptions import PermissionDenied
from django.views.decorators.http import require_POST, require_safe

from jobs.actions import ACTIONS, BULK, OPERATE, permitted

VIEW = "jobs.view_backgroundtaskrecord"
__all__ = ["OPERATE", "VIEW", "action_required", "can_act", "can_view", "viewer_required"]


def can_view(user) -> bool:
    return user.is_active and user.is_staff and user.has_perm(VIEW)


def can_act(user, verb: str) -> bool:
    """May `user` do `verb` (an action of jobs.actions, or "bulk")?"""
    permission = BULK if verb == "bulk" else ACTIONS[verb].permission
    return can_view(user) and permitted(user, permission)


def _guard(check):
    def decorator(view):
        @wraps(view)
        def wrapped(request, *args, **kwargs):
            if not request.user.is_authenticated:
                return redirect_to_login(request.get_full_path())
            if not check(request.user, kwargs):
                raise PermissionDenied
            return view(request, *args, **kwargs)
        return wrapped
    return decorator


def viewer_required(view):
    """GET or HEAD only (405 otherwise), by a user holding the view permission (403 otherwise)."""
    return require_safe(_guard(lambda user, kwargs: can_view(user))(view))


def action_required(verb: str | None = None):
    """POST only, by a user holding the permission of `verb` (default: the URL's `action`), else 403."""
    return lambda view: require_POST(_guard(lambda user, kwargs: can_act(user, verb or kwargs["action"]))(view))
