from django.contrib import admin

from .models import Department, Hall, Rating, ReasonTag, RejectedItem, Staff, Terminal, TerminalEvent, Window


@admin.register(Hall)
class HallAdmin(admin.ModelAdmin):
    list_display = ["code", "name"]


@admin.register(Department)
class DepartmentAdmin(admin.ModelAdmin):
    list_display = ["code", "name"]
    search_fields = ["code", "name"]


@admin.register(Window)
class WindowAdmin(admin.ModelAdmin):
    list_display = ["code", "name", "hall", "department"]
    list_filter = ["hall", "department"]


@admin.register(Staff)
class StaffAdmin(admin.ModelAdmin):
    list_display = ["staff_no", "name", "unit", "window"]
    search_fields = ["staff_no", "name"]
    list_filter = ["window"]


@admin.register(ReasonTag)
class ReasonTagAdmin(admin.ModelAdmin):
    list_display = ["code", "label", "label_en", "order", "active"]
    list_editable = ["label", "label_en", "order", "active"]


class ReadOnlyAdmin(admin.ModelAdmin):
    """Ratings are evidence: nobody edits or deletes them through the admin."""

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(Rating)
class RatingAdmin(ReadOnlyAdmin):
    list_display = ["rating_id", "rated_at", "window_code", "staff_no", "level", "channel", "terminal_id"]
    list_filter = ["level", "channel", "window_code"]
    search_fields = ["rating_id", "case_no", "staff_no"]
    date_hierarchy = "rated_at"


@admin.register(RejectedItem)
class RejectedItemAdmin(ReadOnlyAdmin):
    list_display = ["received_at", "terminal_id", "rating_id", "reason"]
    search_fields = ["rating_id", "terminal_id"]


@admin.register(Terminal)
class TerminalAdmin(admin.ModelAdmin):
    """Each terminal's health as its last heartbeat told it. The secret is never shown."""

    list_display = ["terminal_id", "window", "online", "last_seen", "version", "queue_depth",
                    "oldest_pending_s", "dead_letters", "clock_offset_s", "revoked_at"]
    list_filter = ["window", "version"]
    exclude = ["secret"]
    readonly_fields = ["terminal_id", "window", "enrolled_at", "last_seen", "version", "queue_depth",
                       "oldest_pending_s", "dead_letters", "clock_offset_s", "heartbeat"]
    actions = ["revoke"]

    @admin.display(boolean=True, description="在线")
    def online(self, obj):
        from django.utils import timezone
        return bool(obj.last_seen and (timezone.now() - obj.last_seen).total_seconds() < 180)

    @admin.action(description="吊销所选终端")
    def revoke(self, request, queryset):
        from django.utils import timezone
        queryset.filter(revoked_at__isnull=True).update(revoked_at=timezone.now())

    def has_add_permission(self, request):
        return False  # terminals join only by enrollment code


@admin.register(TerminalEvent)
class TerminalEventAdmin(ReadOnlyAdmin):
    list_display = ["at", "kind", "why", "terminal_id", "window_code", "staff_no", "case_no"]
    list_filter = ["kind", "why", "window_code"]
    search_fields = ["event_id", "staff_no", "case_no", "session_id"]
