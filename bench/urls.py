"""Bench-only URLs: jobdeck's own, plus django-rq's views for the reference columns of
bench/reference.py. Never the site's ROOT_URLCONF."""

from django.urls import include, path

from dashboard.urls import urlpatterns as dashboard_urlpatterns

urlpatterns = [path("django-rq/", include("django_rq.urls")), *dashboard_urlpatterns]
