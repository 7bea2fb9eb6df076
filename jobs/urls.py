"""URLs the engine serves itself (health and metrics), for any Django project that includes them."""

from django.urls import path

from . import views

app_name = "jobs"

urlpatterns = [
    # No trailing slash: the paths probes and Prometheus use by default, without a redirect.
    path("healthz", views.healthz, name="healthz"),
    path("metrics", views.metrics, name="metrics"),
]
