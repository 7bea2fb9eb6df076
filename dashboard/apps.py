from django.apps import AppConfig
from django.contrib.admin import apps as admin_apps


class DashboardConfig(AppConfig):
    name = "dashboard"
    verbose_name = "Dashboard"


class AdminConfig(admin_apps.AdminConfig):
    """django.contrib.admin with dashboard.admin_site.AdminSite as admin.site (INSTALLED_APPS names this)."""

    default = False  # dashboard.apps' default stays DashboardConfig
    default_site = "dashboard.admin_site.AdminSite"
