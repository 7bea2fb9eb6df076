from .crons import cron_action, cron_list
from .jobs import job_action, job_bulk, job_detail, job_list
from .login import LoginView
from .pages import audit_list, failure_list, overview, worker_list
from .queues import queue_action, queue_list
from .workers import worker_action

__all__ = ["LoginView", "audit_list", "cron_action", "cron_list", "failure_list", "job_action", "job_bulk",
           "job_detail", "job_list", "overview", "queue_action", "queue_list", "worker_action", "worker_list"]
