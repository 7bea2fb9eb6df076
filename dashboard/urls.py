from django.contrib import admin
from django.urls import include, path

from jobs.actions import for_target

from . import views
from .throttle import AdminLoginForm

# The admin's login is a second door to the same accounts: the same throttle guards it.
admin.site.login_form = AdminLoginForm

urlpatterns = [
    path("", views.overview, name="overview"),
    path("jobs/", views.job_list, name="job_list"),
    path("jobs/bulk/", views.job_bulk, name="job_bulk"),
    path("jobs/<uuid:pk>/", views.job_detail, name="job_detail"),
    # One URL per operator action, from the table in jobs.actions: job_retry, queue_pause, worker_stop...
    *(path(f"jobs/<uuid:pk>/{a.verb}/", views.job_action, {"action": a.verb}, name=f"job_{a.verb}")
      for a in for_target("job")),
    path("failures/", views.failure_list, name="failure_list"),
    path("workers/", views.worker_list, name="worker_list"),
    path("queues/", views.queue_list, name="queue_list"),
    *(path(f"queues/<str:name>/{a.verb}/", views.queue_action, {"action": a.verb}, name=f"queue_{a.verb}")
      for a in for_target("queue")),
    *(path(f"workers/<str:name>/{a.verb}/", views.worker_action, {"action": a.verb}, name=f"worker_{a.verb}")
      for a in for_target("worker")),
    path("crons/", views.cron_list, name="cron_list"),
    path("crons/<str:name>/pause/", views.cron_action, {"action": "cron-pause"}, name="cron_pause"),
    path("crons/<str:name>/resume/", views.cron_action, {"action": "cron-resume"}, name="cron_resume"),
    path("crons/<str:name>/run/", views.cron_action, {"action": "cron-run"}, name="cron_run"),
    path("audit/", views.audit_list, name="audit_list"),
    path("accounts/login/", views.LoginView.as_view(), name="login"),
    path("accounts/", include("django.contrib.auth.urls")),
    path("admin/", admin.site.urls),
    path("", include("jobs.urls")),
]
