"""A read-only admin for records, attempts and the audit log: changes go through jobs.api."""

from django.contrib import admin

from .models import AuditEntry, BackgroundTaskRecord, TaskAttempt


class ReadOnlyAdmin(admin.ModelAdmin):
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
                    "worker_name")
    list_filter = ("status", "queue_name")
    search_fields = ("=id", "func_path", "error_message")
    date_hierarchy = "enqueued_at"
    show_full_result_count = False  # no COUNT(*) over a million rows on every page
    inlines = [AttemptInline]


@admin.register(AuditEntry)
class AuditEntryAdmin(ReadOnlyAdmin):
    list_display = ("created_at", "username", "action", "record_id", "outcome")
    list_filter = ("action", "outcome")
    search_fields = ("=record_id", "username")
