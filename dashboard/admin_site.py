"""The admin site of the dashboard's project: the same throttled login as the dashboard (429 when
locked), and only for users to whom it has a page to show (dashboard.access.can_use_admin)."""

from __future__ import annotations

from django.contrib import admin

from .access import can_use_admin
from .throttle import AdminLoginForm, answer_throttled


class AdminSite(admin.AdminSite):
    login_form = AdminLoginForm

    def has_permission(self, request) -> bool:
        return can_use_admin(request.user)

    def login(self, request, extra_context=None):
        return answer_throttled(super().login(request, extra_context))
