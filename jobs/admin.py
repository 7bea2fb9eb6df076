"""A read-only admin for records, attempts and the audit log: changes go through jobs.api."""

from django.contrib import admin
from django.contrib.admin.options import IncorrectLookupParameters
from django.contrib.admin.views.main import ChangeList
from django.urls import NoReverseMatch, reverse
from django.utils.html import format_html

from .models import AuditEntry, BackgroundTaskRecord, TaskAttempt


def dashboard_url(record_id) -> str | None:
    """The dashboard's page for a job, or None where the project does not serve the dashboard."""
    try:
        return reverse("job_detail", args=[record_id])
    except NoReverseMatch:
        return None


class CheckedChangeList(ChangeList):
    """A lookup value the database or Python cannot take (a NUL byte, the year after 9999) gets the
    admin's own answer to a bad lookup (a redirect to `?e=1`), not a 500."""

    def get_filters(self, request):
        if any("\x00" in value for _, values in request.GET.lists() for value in values):
            raise IncorrectLookupParameters("a lookup value holds a NUL byte")
        try:
            return super().get_filters(request)
        except (ValueError, OverflowError) as exc:  # date_hierarchy's year + 1 past datetime's range
            raise IncorrectLookupParameters(exc) from exc


class ReadOnlyAdmin(admin.ModelAdmin):
    def get_changelist(self, request, **kwargs):
        return CheckedChangeList

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


class AttemptInline(admin.TabularInline):
    model = TaskAttempt
    extra = 0
    can_delete = False
    fields = ("number", "outcome", "started_at", "finished_at", "worker_name", "hostname", "error_type",
              "error_message")
    readonly_fields = fields

    def has_add_permission(self, request, obj=None):
        return False


@admin.register(BackgroundTaskRecord)
class BackgroundTaskRecordAdmin(ReadOnlyAdmin):
    list_display = ("id", "func_path", "queue_name", "status", "attempts", "enqueued_at", "finished_at",
                    "worker_name", "dashboard_link")
    list_filter = ("status", "queue_name")
    search_fields = ("=id", "func_path", "error_message")
    date_hierarchy = "enqueued_at"
    show_full_result_count = False  # no COUNT(*) over a million rows on every page
    readonly_fields = ("dashboard_link",)
    inlines = [AttemptInline]

    @admin.display(description="dashboard")
    def dashboard_link(self, obj: BackgroundTaskRecord) -> str:
        url = dashboard_url(obj.pk)
        return format_html('<a href="{}">open in dashboard</a>', url) if url else "-"


@admin.register(TaskAttempt)
class TaskAttemptAdmin(ReadOnlyAdmin):
    list_display = ("record", "number", "outcome", "started_at", "finished_at", "worker_name", "hostname",
                    "error_type", "dashboard_link")
    list_filter = ("outcome",)
    search_fields = ("=record__id", "worker_name", "error_type")
    list_select_related = ("record",)
    date_hierarchy = "started_at"
    show_full_result_count = False
    readonly_fields = ("dashboard_link",)

    @admin.display(description="dashboard")
    def dashboard_link(self, obj: TaskAttempt) -> str:
        url = dashboard_url(obj.record_id)
        return format_html('<a href="{}">open job</a>', url) if url else "-"


@admin.register(AuditEntry)
class AuditEntryAdmin(ReadOnlyAdmin):
    list_display = ("created_at", "username", "action", "record_id", "outcome")
    list_filter = ("action", "outcome")
    search_fields = ("=record_id", "username")
