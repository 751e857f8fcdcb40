from django.contrib import admin

from .models import Department, Hall, Rating, RejectedItem, Staff, Window


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
