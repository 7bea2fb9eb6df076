from django.contrib import admin
from django.urls import include, path

from . import views
from .throttle import AdminLoginForm

# The admin's login is a second door to the same accounts: the same throttle guards it.
admin.site.login_form = AdminLoginForm

urlpatterns = [
    path("", views.overview, name="overview"),
    path("jobs/", views.job_list, name="job_list"),
    path("jobs/bulk/", views.job_bulk, name="job_bulk"),
    path("jobs/<uuid:pk>/", views.job_detail, name="job_detail"),
    path("jobs/<uuid:pk>/retry/", views.job_action, {"action": "retry"}, name="job_retry"),
    path("jobs/<uuid:pk>/cancel/", views.job_action, {"action": "cancel"}, name="job_cancel"),
    path("jobs/<uuid:pk>/delete/", views.job_action, {"action": "delete"}, name="job_delete"),
    path("failures/", views.failure_list, name="failure_list"),
    path("workers/", views.worker_list, name="worker_list"),
    path("queues/", views.queue_list, name="queue_list"),
    path("queues/<str:name>/pause/", views.queue_action, {"action": "pause"}, name="queue_pause"),
    path("queues/<str:name>/resume/", views.queue_action, {"action": "resume"}, name="queue_resume"),
    path("crons/", views.cron_list, name="cron_list"),
    path("crons/<str:name>/pause/", views.cron_action, {"action": "pause"}, name="cron_pause"),
    path("crons/<str:name>/resume/", views.cron_action, {"action": "resume"}, name="cron_resume"),
    path("crons/<str:name>/run/", views.cron_action, {"action": "run"}, name="cron_run"),
    path("audit/", views.audit_list, name="audit_list"),
    path("accounts/login/", views.LoginView.as_view(), name="login"),
    path("accounts/", include("django.contrib.auth.urls")),
    path("admin/", admin.site.urls),
    path("", include("jobs.urls")),
]
