"""The admin: what the hall edits (content the terminals pull, rules), what it follows (work orders,
alerts) and what it may only read (ratings, events: evidence). Department managers see their own
department only (``roles.scope``); auditors read everything and change nothing (their group has view
permissions only)."""

import json
import re

from django import forms
from django.contrib import admin, messages
from django.utils import timezone

from terminal.core.checks import kept_json
from terminal.core.levels import Level
from terminal.core.rating import MAX_INDICATOR
from terminal.core.session import Rules

from . import chains, exports, link_tokens, masking, roles, upward, workorders
from .models import (Alert, AlertRule, BusinessSystem, Case, Chain, CommentForReview, CommentReviewEntry, Department,
                     CallbackTask, EnrollmentCode, Hall, RatingAddition, SmsMessage, UpwardDay, UpwardItem,
                     UpwardPlatform,
                     Notice, Operator, Policy, Rating,
                     ReasonTag, RejectedItem, ServiceGuide, Staff, Terminal, TerminalEvent, TerminalSettings,
                     Window, WorkOrder, WorkOrderNote)


class FilteredAdmin(admin.ModelAdmin):
    """Every list here filters by its own filters and dates only: any other lookup in the address is
    refused as a bad request, not tried. A list's count answers whatever it is asked, so a lookup on
    a field no page shows (``?secret__startswith=``, a terminal's or a system's key;
    ``?text__contains=``, a rater's masked words; ``?payload__contains=``, which SQLite cannot run)
    would read it a character at a time."""

    def lookup_allowed(self, lookup, value, request=None):
        filters = self.get_list_filter(request) if request is not None else self.list_filter
        allowed = {f.parameter_name if isinstance(f, type) else f if isinstance(f, str) else f[0]
                   for f in filters} | {self.date_hierarchy}
        return (lookup.split("__", 1)[0] in allowed and super().lookup_allowed(lookup, value, request)
                and fits(self.model, lookup, value))


#: parts of a lookup that take a date's or a time's part: the admin's date links (``__year``, ``__month``, ``__day``)
DATE_PARTS = {"year", "iso_year", "quarter", "month", "week", "week_day", "iso_week_day", "day", "hour", "minute",
              "second"}


def fits(model, lookup: str, value: str) -> bool:
    """Whether a list filter's value can reach the database as asked: an integer within its column's
    range, a date or time, or a date's part, within the years 2..9998 (a day, a month or a year
    added by the date links, or the hall's time zone, keeps it on the calendar). Past that, the
    query failed only as the page was drawn (``?hall=99999999999999999999``: SQLite cannot bind it;
    ``?rated_at__year=9999``: no year 10000; ``?rated_at__gte=0001-01-01``: no UTC time for it):
    a 500, where a value no filter link makes is a 400 (``DisallowedModelAdminLookup``)."""
    from django.core.exceptions import FieldDoesNotExist, ValidationError
    from django.db import connection, models
    parts, field, opts = lookup.split("__"), None, model._meta
    while parts:
        try:
            field = opts.get_field(parts[0])
        except FieldDoesNotExist:
            break
        parts.pop(0)
        if field.is_relation and field.related_model is not None:
            opts = field.related_model._meta
            field = getattr(field, "target_field", field)
    if field is None or parts[-1:] in (["isnull"], ["isempty"]):
        return True
    pieces = value.split(",") if parts[-1:] in (["in"], ["range"]) else [value]
    if DATE_PARTS.intersection(parts):
        return all(p.isdigit() and len(p) <= 4 and ("year" not in parts or 2 <= int(p) <= 9998) for p in pieces)
    if isinstance(field, (models.DateField, models.DateTimeField)):
        for piece in pieces:
            try:
                when = field.to_python(piece)
            except ValidationError:
                continue  # not a date: the admin refuses it itself
            if when is not None and not 2 <= when.year <= 9998:
                return False
        return True
    if isinstance(field, (models.IntegerField, models.AutoField)):
        low, high = connection.ops.integer_field_range(field.get_internal_type())
        for piece in pieces:
            try:
                number = int(piece)
            except ValueError:
                continue
            if (low is not None and number < low) or (high is not None and number > high):
                return False
    return True


class Scoped(FilteredAdmin):
    """Rows limited to a department manager's department, through ``scope_field``."""

    scope_field = ""  # a lookup ending at Department

    def get_queryset(self, request):
        found = super().get_queryset(request)
        if issubclass(self.model, (Rating, TerminalEvent)):  # the department of their day, not their window's now
            return roles.scope_ratings(found, request.user)
        return roles.scope(found, request.user, self.scope_field)


class ReadOnlyAdmin(FilteredAdmin):
    """Ratings are evidence: nobody edits or deletes them through the admin."""

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


# -- content the terminals pull ------------------------------------------------------------------

@admin.register(Hall)
class HallAdmin(FilteredAdmin):
    list_display = ["code", "name"]


@admin.register(Department)
class DepartmentAdmin(Scoped):
    scope_field = "pk"
    list_display = ["code", "name"]
    search_fields = ["code", "name"]

    def get_queryset(self, request):
        department = roles.department_of(request.user)
        found = admin.ModelAdmin.get_queryset(self, request)
        if department is None:
            return found
        return found.none() if department is roles.NOTHING else found.filter(pk=department.pk)


@admin.register(Window)
class WindowAdmin(Scoped):
    scope_field = "department"
    list_display = ["code", "name", "hall", "department"]
    list_filter = ["hall", ("department", admin.RelatedOnlyFieldListFilter)]
    actions = ["print_plaque", "renew_plaque"]

    @admin.action(description="打印窗口二维码桌牌（A6 SVG，选一个窗口）", permissions=["change"])
    def print_plaque(self, request, queryset, renew: bool = False):
        from . import plaques
        if queryset.count() != 1:
            messages.warning(request, "请只选择一个窗口")
            return None
        return plaques.plaque_response(request, queryset.select_related("hall").get(), renew)

    @admin.action(description="换新二维码并打印（旧桌牌作废）", permissions=["change"])
    def renew_plaque(self, request, queryset):
        return self.print_plaque(request, queryset, renew=True)


@admin.register(Staff)
class StaffAdmin(Scoped):
    scope_field = "window__department"
    list_display = ["staff_no", "name", "unit", "window", "has_photo"]
    search_fields = ["staff_no", "name"]
    list_filter = [("window", admin.RelatedOnlyFieldListFilter)]

    @admin.display(boolean=True, description="照片")
    def has_photo(self, obj):
        return bool(obj.photo)


@admin.register(Notice)
class NoticeAdmin(FilteredAdmin):
    list_display = ["title", "hall", "order", "active"]
    list_editable = ["order", "active"]


@admin.register(ServiceGuide)
class ServiceGuideAdmin(FilteredAdmin):
    list_display = ["item_code", "title", "department", "active"]
    search_fields = ["item_code", "title"]
    list_filter = ["department", "active"]


@admin.register(ReasonTag)
class ReasonTagAdmin(FilteredAdmin):
    list_display = ["code", "label", "label_en", "order", "active"]
    list_editable = ["label", "label_en", "order", "active"]


class SettingsForm(forms.ModelForm):
    class Meta:
        model = TerminalSettings
        fields = "__all__"

    def clean_dimensions(self):
        """The terminal's own rule (``Rules.from_settings``): settings it would refuse are never saved."""
        value = self.cleaned_data["dimensions"]
        try:
            Rules.from_settings({"dimensions": value})
        except ValueError:
            raise forms.ValidationError(f'评价指标须为至多 8 个互不相同的名称（每个至多 {MAX_INDICATOR} 字），'
                                        f'例如 ["服务效率", "服务态度"]') from None
        return value


@admin.register(TerminalSettings)
class TerminalSettingsAdmin(FilteredAdmin):
    form = SettingsForm
    list_display = ["__str__", "hall", "window", "rating_mode", "language", "invite_timeout_s"]


@admin.register(Policy)
class PolicyAdmin(FilteredAdmin):
    list_display = ["__str__", "contact_days", "rectify_days", "complex_days", "default_after_days",
                    "default_level", "default_channel"]

    def has_add_permission(self, request):
        return super().has_add_permission(request) and not Policy.objects.exists()

    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(Operator)
class OperatorAdmin(FilteredAdmin):
    list_display = ["user", "department"]


# -- records: evidence, read only ----------------------------------------------------------------

def masked(text: str) -> str:
    """A rater's own words as any page shows them: a run of six or more digits (a phone or ID
    number) and an e-mail address masked, as on /public/. The words stay as written in the database,
    in the platforms' records and in the exports."""
    return masking.anonymise(text) if text else ""


def masked_payload(payload):
    """A stored record's JSON as a page shows it: its text masked (``masked``), the rest as stored."""
    if isinstance(payload, dict) and isinstance(payload.get("text"), str):
        payload = {**payload, "text": masked(payload["text"])}
    return json.dumps(payload, ensure_ascii=False)


def phone_additions(rating) -> str:
    """What the rater added on their phone to this rating (扫码补充: reasons and a comment), shown
    beside it wherever the rating is read: the rating itself stays as the terminal sent it."""
    from .mobile import additions_of  # only those through the rating's own terminal's QR codes
    labels = dict(ReasonTag.objects.values_list("code", "label"))
    return "；".join(
        f"{timezone.localtime(a.submitted_at):%Y-%m-%d %H:%M} 原因 "
        f"{'、'.join(labels.get(str(code), str(code)) for code in a.reasons) or '—'} · “{masked(a.text) or '无文字'}”"
        for a in additions_of({rating.rating_id: rating.terminal_id}).get(rating.rating_id, []))


@admin.register(Rating)
class RatingAdmin(ReadOnlyAdmin, Scoped):
    scope_field = "department"  # the department the rating counts for (roles.scope_ratings)
    list_display = ["rating_id", "rated_at", "window_code", "staff_no", "level", "channel", "excluded", "flags",
                    "terminal_id", "chain_seq"]
    list_filter = ["level", "channel", "excluded", "window_code"]
    search_fields = ["rating_id", "case_no", "staff_no"]
    date_hierarchy = "rated_at"
    exclude = ["text", "payload", "comment_public"]  # shown masked
    readonly_fields = ["text_shown", "added_by_phone", "comment_public_shown", "payload_shown"]

    @admin.display(description="文字评价")
    def text_shown(self, obj):
        return masked(obj.text) or "—"

    @admin.display(description="公示内容")
    def comment_public_shown(self, obj):
        return masked(obj.comment_public) or "—"

    @admin.display(description="原始记录")
    def payload_shown(self, obj):
        return masked_payload(obj.payload)

    @admin.display(description="手机补充意见")
    def added_by_phone(self, obj):
        return phone_additions(obj) or "—"


def masked_refusal(excerpt: str) -> str:
    """A refused item's kept JSON as a page shows it. A whole record shows as ``masked_payload``
    does, its ``text`` masked whatever its type; an excerpt cut at ``MAX_KEPT_CHARS``, or anything
    but a JSON object, cannot say where the rater's words are, so all of it is masked, its escaped
    characters shown as written first."""
    try:
        item = kept_json(excerpt)
    except ValueError:
        item = None
    if not isinstance(item, dict):
        return masked(_ESCAPED.sub(_unescaped, excerpt))
    if "text" in item and not isinstance(item["text"], str):
        item["text"] = json.dumps(item["text"], ensure_ascii=False)
    return masked_payload(item)


_ESCAPED = re.compile(r"\\u([0-9a-fA-F]{4})")


def _unescaped(match: re.Match) -> str:
    """One ``\\uXXXX`` of a cut JSON text as its character (a lone surrogate stays escaped): so
    that 一三八… written in Chinese numerals is seen, and masked, like any other number."""
    code = int(match.group(1), 16)
    return match.group(0) if 0xD800 <= code <= 0xDFFF else chr(code)


@admin.register(RejectedItem)
class RejectedItemAdmin(ReadOnlyAdmin):
    list_display = ["received_at", "terminal_id", "rating_id", "code", "reason", "chain_seq"]
    list_filter = ["code", "kind"]
    search_fields = ["rating_id", "terminal_id"]
    exclude = ["payload"]  # shown masked
    readonly_fields = ["payload_shown"]

    @admin.display(description="原始数据")
    def payload_shown(self, item):
        return masked_refusal(item.payload)


class ReviewEntryInline(admin.TabularInline):
    model = CommentReviewEntry
    extra = 0
    fields = ["at", "by", "action", "text_shown"]
    readonly_fields = fields

    @admin.display(description="内容")
    def text_shown(self, entry):
        return masked(entry.text)

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


class CommentReviewForm(forms.ModelForm):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        # an edit kept before shows masked too (the public page masks it the same way when shown)
        self.initial["comment_public"] = masked(self.initial.get("comment_public") or "")

    class Meta:
        model = CommentForReview
        fields = ["comment_public"]
        help_texts = {"comment_public": "公示的内容：可删去姓名、地址等能识别评价人的文字；号码与邮箱在公示时另行遮盖。"
                                        "保存即按修改后的内容通过，原文不变，修改留有记录。"}


@admin.register(CommentForReview)
class CommentReviewAdmin(Scoped):
    """审核: a citizen's comment reaches the public page only once a hall administrator approved it,
    as written or edited (names, addresses); every step is kept (审核记录) and the original never changes."""

    scope_field = "department"  # a rating's: the department it counts for (roles.scope_ratings)
    form = CommentReviewForm
    list_display = ["received_at", "window_code", "level", "text_shown", "comment_state", "public_preview"]
    list_filter = ["comment_state", "level"]
    readonly_fields = ["rating_id", "window_code", "level", "received_at", "text_shown", "comment_state",
                       "comment_reviewed_at", "public_preview"]
    fields = readonly_fields + ["comment_public"]
    inlines = [ReviewEntryInline]
    actions = ["approve", "reject"]

    def get_queryset(self, request):
        return super().get_queryset(request).exclude(text="").order_by("comment_state", "-received_at")

    @admin.display(description="原文（号码与邮箱已遮盖）")
    def text_shown(self, rating):
        return masked(rating.text)

    @admin.display(description="公示时显示为")
    def public_preview(self, rating):
        return masking.anonymise(rating.comment_public or rating.text) if rating.comment_state != "rejected" else "—"

    def has_add_permission(self, request):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    def _review(self, request, rating, action: str, text: str) -> None:
        rating.comment_state = "rejected" if action == "rejected" else "approved"
        rating.comment_public = "" if action == "rejected" else text
        rating.comment_reviewed_at = timezone.now()
        rating.save(update_fields=["comment_state", "comment_public", "comment_reviewed_at"])
        CommentReviewEntry.objects.create(rating=rating, by=request.user, action=action, text=rating.comment_public)

    def save_model(self, request, obj, form, change):
        edited = obj.comment_public.strip()
        self._review(request, obj, "edited" if edited and edited != obj.text else "approved", edited or obj.text)

    @admin.action(description="通过：按原文公示", permissions=["change"])
    def approve(self, request, queryset):
        for rating in queryset:
            self._review(request, rating, "approved", rating.text)
        messages.success(request, f"{queryset.count()} 条评价内容已通过")

    @admin.action(description="不公示", permissions=["change"])
    def reject(self, request, queryset):
        for rating in queryset:
            self._review(request, rating, "rejected", "")
        messages.success(request, f"{queryset.count()} 条评价内容不公示")


@admin.register(Chain)
class ChainAdmin(FilteredAdmin):
    """Each terminal's record chains as the chain check left them; a hall administrator who has
    looked into a gap, fork or restart says what they found (核查), and only a newer problem raises
    its alert again. Nothing else here is editable: it is evidence."""

    list_display = ["terminal_id", "epoch", "first_seen", "contiguous", "head_seq", "state_word", "state_detail",
                    "reviewed_at"]
    search_fields = ["terminal_id", "epoch"]
    readonly_fields = ["terminal_id", "epoch", "first_seen", "head_seq", "contiguous", "missing", "gap_since", "forks",
                       "breaks", "first_of_terminal", "restart_why", "restart_detail", "problem_at", "reviewed_at"]
    fields = readonly_fields + ["review_note"]

    @admin.display(description="状态")
    def state_word(self, chain):
        return chains.state(chain)[0]

    @admin.display(description="情况")
    def state_detail(self, chain):
        return chains.state(chain)[1]

    def has_add_permission(self, request):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    def save_model(self, request, obj, form, change):
        if "review_note" in form.changed_data and obj.review_note.strip():
            obj.reviewed_at = timezone.now()
        obj.save(update_fields=["review_note", "reviewed_at"])  # never the chain check's own fields


@admin.register(TerminalEvent)
class TerminalEventAdmin(ReadOnlyAdmin, Scoped):
    scope_field = "department"  # the department of the event's day (roles.scope_ratings)
    list_display = ["at", "kind", "why", "terminal_id", "window_code", "department", "staff_no", "case_no"]
    list_filter = ["kind", "why", "window_code"]
    search_fields = ["event_id", "staff_no", "case_no", "session_id"]


@admin.register(Terminal)
class TerminalAdmin(Scoped):
    """Each terminal's health as its last heartbeat told it. The secret is never shown."""

    scope_field = "window__department"
    list_display = ["terminal_id", "window", "online", "last_seen", "version", "queue_depth",
                    "oldest_pending_s", "dead_letters", "clock_offset_s", "revoked_at"]
    list_filter = [("window", admin.RelatedOnlyFieldListFilter), "version"]  # the windows of the rows shown
    exclude = ["secret"]
    readonly_fields = ["terminal_id", "window", "enrolled_at", "last_seen", "version", "queue_depth",
                       "oldest_pending_s", "dead_letters", "clock_offset_s", "heartbeat", "device_down_since"]
    actions = ["revoke"]

    @admin.display(boolean=True, description="在线")
    def online(self, obj):
        return bool(obj.last_seen and (timezone.now() - obj.last_seen).total_seconds() < 180)

    @admin.action(description="吊销所选终端", permissions=["change"])
    def revoke(self, request, queryset):
        queryset.filter(revoked_at__isnull=True).update(revoked_at=timezone.now())

    def has_add_permission(self, request):
        return False  # terminals join only by enrollment code


@admin.register(EnrollmentCode)
class EnrollmentCodeAdmin(ReadOnlyAdmin):
    list_display = ["window", "created_at", "expires_at", "used_at", "terminal"]


@admin.register(RatingAddition)
class RatingAdditionAdmin(ReadOnlyAdmin):
    """What raters added on their phones (扫码评价) to ratings they made at a terminal. Each joins its
    rating by id; a hall administrator reviews the text before any of it could be shown in public."""

    list_display = ["submitted_at", "rating_id", "terminal", "reason_labels", "text_shown", "language", "comment_state"]
    list_filter = ["comment_state", "language"]
    search_fields = ["rating_id"]
    date_hierarchy = "submitted_at"
    actions = ["approve", "reject"]
    exclude = ["text"]  # shown masked
    readonly_fields = ["text_shown"]

    @admin.display(description="补充意见")
    def text_shown(self, obj):
        return masked(obj.text) or "—"

    @admin.display(description="原因")
    def reason_labels(self, obj):
        labels = dict(ReasonTag.objects.values_list("code", "label"))
        return "、".join(labels.get(code, code) for code in obj.reasons) or "—"

    @admin.action(description="审核通过（可公示）", permissions=["review"])
    def approve(self, request, queryset):
        queryset.update(comment_state="approved")

    @admin.action(description="不公示", permissions=["review"])
    def reject(self, request, queryset):
        queryset.update(comment_state="rejected")

    def has_review_permission(self, request):
        return request.user.has_perm("ratings.change_ratingaddition")


class CallbackForm(forms.ModelForm):
    outcome = forms.ChoiceField(label="回访结果", choices=[("reached", "已接通"), ("unreached", "未接通")],
                                widget=forms.RadioSelect)

    class Meta:
        model = CallbackTask
        fields = ["level", "notes"]

    def clean(self):
        from . import callbacks
        data = super().clean()
        level = data.get("level")
        try:  # self.instance still holds the task as stored: the form's values reach it after clean
            callbacks.check_level_kept(self.instance, data.get("outcome") == "reached", Level(level) if level else None)
        except callbacks.Refused as exc:
            raise forms.ValidationError(str(exc)) from None
        return data


@admin.register(CallbackTask)
class CallbackTaskAdmin(Scoped):
    """The call-back list (电话回访): bad ratings with a known number and each quarter's sample. The
    number is shown only on a task's own page, to whoever may call, and every showing is recorded."""

    scope_field = "case__department"  # the case's, as its case page: not the window's now, which may have moved
    form = CallbackForm
    list_display = ["created_at", "reason", "quarter", "window_code", "case", "masked_number", "state", "level",
                    "called_at"]
    list_filter = ["state", "reason", "quarter"]
    search_fields = ["case__case_no"]
    readonly_fields = ["case", "reason", "rating", "quarter", "seed", "window_code", "number", "called_at",
                       "called_by", "rating_id_given"]
    fields = ["case", "reason", "rating", "quarter", "window_code", "number", "outcome", "level", "notes",
              "called_at", "called_by", "rating_id_given"]

    @admin.display(description="手机号码")
    def masked_number(self, obj):
        return obj.case.mobile_masked

    @admin.display(description="拨打号码")
    def number(self, obj):
        from . import personal_data
        request = getattr(obj, "asked_by", None)
        if obj.pk is None or request is None or not self.has_change_permission(request, obj):
            return obj.case.mobile_masked
        shown = [*obj.number_shown, {"by": request.user.get_username(), "at": timezone.now().isoformat()}][-50:]
        CallbackTask.objects.filter(pk=obj.pk).update(number_shown=shown)
        try:
            return personal_data.decrypt(obj.case.mobile_token)
        except ValueError as exc:
            return str(exc)

    def get_readonly_fields(self, request, obj=None):
        """The request travels on its own copy of the task to ``number``: this admin serves every
        request at once (threads), so a request kept on it could be another user's by then."""
        if obj is not None:
            obj.asked_by = request
        return super().get_readonly_fields(request, obj)

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("case")

    def has_add_permission(self, request):
        return False  # tasks open themselves (bad ratings) or by the quarter's sample

    def has_delete_permission(self, request, obj=None):
        return False

    def save_model(self, request, obj, form, change):
        from . import callbacks
        level = form.cleaned_data.get("level")
        try:
            callbacks.record(obj, form.cleaned_data["outcome"] == "reached", Level(level) if level else None,
                             form.cleaned_data.get("notes", ""), request.user)
        except callbacks.Refused as exc:  # another caller saved the task since this form was checked
            self.message_user(request, str(exc), messages.ERROR)


@admin.register(SmsMessage)
class SmsMessageAdmin(ReadOnlyAdmin):
    """Every SMS sent and received (评价短信), the number masked; dead letters are the sends the gateway
    never took after every retry: 重新发送 queues them again (the same id: never a second SMS)."""

    list_display = ["created_at", "kind", "case", "mobile_masked", "state", "attempts", "sent_at", "note",
                    "error_shown"]
    list_filter = ["kind", "state"]
    search_fields = ["case__case_no"]
    date_hierarchy = "created_at"
    exclude = ["mobile_token", "mobile_index", "link_token", "text", "last_error"]
    readonly_fields = ["text_shown", "error_shown"]
    actions = ["resend"]

    @admin.display(description="内容")
    def text_shown(self, obj):
        return masked(link_tokens.hidden(obj.text))

    @admin.display(description="最近错误")
    def error_shown(self, obj):
        """The gateway's words, masked: a refusal names the number it refused."""
        return masked(obj.last_error)

    @admin.action(description="重新发送（死信）", permissions=["resend"])
    def resend(self, request, queryset):
        done = queryset.filter(state="dead").update(state="pending", attempts=0, next_attempt_at=timezone.now())
        messages.info(request, f"已重新排队 {done} 条")

    def has_resend_permission(self, request):
        return request.user.has_perm("ratings.change_smsmessage")


@admin.register(BusinessSystem)
class BusinessSystemAdmin(FilteredAdmin):
    """The business and queue systems that report cases. A system is added by
    ``rating-central add_system NAME``, which prints its secret once; the secret is never shown here."""

    list_display = ["system_id", "name", "created_at", "last_seen", "revoked_at"]
    exclude = ["secret"]
    readonly_fields = ["system_id", "created_at", "last_seen", "revoked_at"]
    actions = ["revoke"]

    @admin.action(description="吊销所选系统", permissions=["change"])
    def revoke(self, request, queryset):
        queryset.filter(revoked_at__isnull=True).update(revoked_at=timezone.now())

    def has_add_permission(self, request):
        return False  # made with its secret by the command line, shown once there


@admin.register(Case)
class CaseAdmin(ReadOnlyAdmin, Scoped):
    """Cases as their systems reported them, each with its ratings from every channel. The
    applicant's mobile number is shown masked; the clear number is never on a page."""

    scope_field = "department"
    list_display = ["case_no", "item_name", "window", "staff_no", "status", "accepted_at", "completed_at",
                    "mobile_masked", "ticket_no"]
    list_filter = ["status", ("window", admin.RelatedOnlyFieldListFilter), "system"]
    search_fields = ["case_no", "item_code", "item_name"]
    date_hierarchy = "accepted_at"
    readonly_fields = ["case_no", "system", "item_code", "item_name", "department", "window", "staff_no",
                       "applicant_type", "mobile_masked", "ticket_no", "status", "accepted_at", "completed_at",
                       "reported_at", "updated_at", "ratings"]

    def get_readonly_fields(self, request, obj=None):
        """The request travels on this request's own copy of the case to ``ratings`` (as for call-back tasks)."""
        if obj is not None:
            obj.asked_by = request
        return super().get_readonly_fields(request, obj)

    @admin.display(description="评价（各渠道）")
    def ratings(self, obj):
        """Every channel's ratings naming the case that the user may see: any terminal may name any
        case number, and a department manager sees only the ratings counting for their department."""
        request = getattr(obj, "asked_by", None)
        found = Rating.objects.filter(case_no=obj.case_no).order_by("rating_no", "rated_at")
        found = roles.scope_ratings(found, request.user) if request is not None else found.none()
        return "；".join(f"{r.rating_id[:12]} 第{r.rating_no}次 {Level(r.level).zh} 渠道{r.channel}"
                        + ("（不计入）" if r.excluded else "") for r in found) or "—"


# -- work orders ----------------------------------------------------------------------------------

class OverdueFilter(admin.SimpleListFilter):
    title = "是否逾期"
    parameter_name = "overdue"

    def lookups(self, request, model_admin):
        return [("yes", "已逾期"), ("no", "未逾期")]

    def queryset(self, request, queryset):
        if self.value() == "yes":
            return queryset.filter(workorders.overdue_q())
        if self.value() == "no":
            return queryset.exclude(workorders.overdue_q())
        return queryset


class NoteInline(admin.TabularInline):
    model = WorkOrderNote
    extra = 1
    fields = ["at", "author", "text"]
    readonly_fields = ["at", "author"]

    def has_change_permission(self, request, obj=None):
        return False  # a note, once written, is part of the record

    def has_delete_permission(self, request, obj=None):
        return False


class WorkOrderForm(forms.ModelForm):
    advance_to = forms.ChoiceField(label="办理", required=False, choices=[("", "（不变）")] + WorkOrder.STATES[1:],
                                   help_text="进入下一步：已联系 → 已整改 → 已办结")
    request_recheck = forms.BooleanField(label="申请复核", required=False,
                                         help_text="认为是恶意评价或误评时勾选，并在“复核理由”中写明依据")

    class Meta:
        model = WorkOrder
        fields = ["assignee", "complex_case", "contact_record", "rectification", "recheck_reason"]


@admin.register(WorkOrder)
class WorkOrderAdmin(Scoped):
    """A bad rating's follow-up. Each step needs its record; re-checks are decided by a hall administrator."""

    scope_field = "department"
    form = WorkOrderForm
    list_display = ["pk", "opened_on", "window_code", "department", "level", "state", "stage_due", "overdue",
                    "recheck", "assignee"]
    list_filter = ["state", OverdueFilter, "recheck", "department", "complex_case"]
    search_fields = ["window_code", "rating__rating_id", "rating__case_no"]
    date_hierarchy = "opened_on"
    inlines = [NoteInline]
    readonly_fields = ["rating_summary", "stage_due", "overdue", "state", "department", "opened_on", "contact_due", "rectify_due",
                       "close_due", "provisional", "contacted_at", "rectified_at", "closed_at", "recheck",
                       "recheck_by", "recheck_at", "public_rectification", "published_at", "published_by"]
    fieldsets = [
        ("差评", {"fields": ["rating_summary", "department", "opened_on"]}),
        ("时限（工作日，按国家法定节假日和调休）", {"fields": [("contact_due", "rectify_due", "close_due"), "provisional"]}),
        ("办理", {"fields": [("state", "stage_due", "overdue"), "advance_to", "assignee", "complex_case", "contact_record", "contacted_at",
                           "rectification", "rectified_at", "closed_at"]}),
        ("复核", {"fields": ["request_recheck", "recheck_reason", "recheck", "recheck_by", "recheck_at"]}),
        ("整改情况公示", {"fields": ["public_rectification", "published_at", "published_by"]}),
    ]
    actions = ["exclude_after_recheck", "uphold_after_recheck", "publish_rectification", "unpublish_rectification"]

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("rating", "department", "assignee")

    @admin.action(description="公示整改情况（已办结的工单）", permissions=["publish_rectification"])
    def publish_rectification(self, request, queryset):
        done = 0
        for order in queryset.select_related("rating"):
            try:
                workorders.publish(order, request.user)
                done += 1
            except workorders.Refused as exc:
                messages.warning(request, f"{order}：{exc}")
        messages.info(request, f"已公示 {done} 件整改情况")

    @admin.action(description="撤回整改情况公示", permissions=["publish_rectification"])
    def unpublish_rectification(self, request, queryset):
        for order in queryset:
            workorders.unpublish(order)

    def has_publish_rectification_permission(self, request):
        return request.user.has_perm("ratings.publish_rectification")

    def formfield_for_foreignkey(self, db_field, request, **kwargs):
        if db_field.name == "assignee":
            kwargs["queryset"] = roles.colleagues(request.user)
        return super().formfield_for_foreignkey(db_field, request, **kwargs)

    def get_list_filter(self, request):
        if roles.department_of(request.user) is None:
            return self.list_filter
        return [f for f in self.list_filter if f != "department"]  # one department: nothing to choose

    def has_add_permission(self, request):
        return False  # work orders open themselves when a bad rating arrives

    def has_delete_permission(self, request, obj=None):
        return False

    @admin.display(description="等级")
    def level(self, obj):
        return obj.rating.get_level_display()

    @admin.display(description="当前时限")
    def stage_due(self, obj):
        return workorders.stage_due(obj)

    @admin.display(boolean=True, description="逾期")
    def overdue(self, obj):
        return workorders.is_overdue(obj)

    @admin.display(description="评价")
    def rating_summary(self, obj):
        r = obj.rating
        labels = dict(ReasonTag.objects.values_list("code", "label"))
        reasons = "、".join(labels.get(code, code) for code in r.reasons) or "—"
        added = phone_additions(r)
        return (f"{r.get_level_display()} · {timezone.localtime(r.rated_at):%Y-%m-%d %H:%M} · 窗口 {r.window_code} · "
                f"工号 {r.staff_no or '—'} · 办件 {r.case_no or '—'} · 原因 {reasons} · “{masked(r.text) or '无文字'}”"
                + (f" · 手机补充：{added}" if added else ""))

    def save_model(self, request, obj, form, change):
        try:
            step = form.cleaned_data.get("advance_to")
            if step:
                workorders.advance(obj, step)
            if form.cleaned_data.get("request_recheck"):
                workorders.request_recheck(obj, form.cleaned_data.get("recheck_reason", ""))
        except workorders.Refused as exc:
            messages.error(request, str(exc))
            obj.refresh_from_db()
            return
        # what the form changed, alone: the whole row from the form's copy would write back a step
        # or a re-check another user made meanwhile
        obj.save(update_fields=[f for f in form.changed_data if f in WorkOrderForm.Meta.fields])

    def save_formset(self, request, form, formset, change):
        for note in formset.save(commit=False):
            note.author = request.user
            note.save()

    def _decide(self, request, queryset, exclude: bool):
        done = 0
        for order in queryset:
            try:
                workorders.decide_recheck(order, exclude, request.user)
                done += 1
            except workorders.Refused as exc:
                messages.warning(request, f"{order}：{exc}")
        messages.info(request, f"已决定 {done} 件复核")

    @admin.action(description="复核：评价不计入统计（保留记录）", permissions=["decide_recheck"])
    def exclude_after_recheck(self, request, queryset):
        self._decide(request, queryset, True)

    @admin.action(description="复核：维持评价", permissions=["decide_recheck"])
    def uphold_after_recheck(self, request, queryset):
        self._decide(request, queryset, False)

    def has_decide_recheck_permission(self, request):
        return request.user.has_perm("ratings.decide_recheck")


# -- early warning --------------------------------------------------------------------------------

@admin.register(AlertRule)
class AlertRuleAdmin(FilteredAdmin):
    list_display = ["name", "kind", "threshold", "hours", "minutes", "enabled"]
    list_editable = ["enabled"]


@admin.register(Alert)
class AlertAdmin(FilteredAdmin):
    list_display = ["raised_at", "rule", "subject", "detail", "cleared_at", "webhook_sent"]
    list_filter = ["rule", ("cleared_at", admin.EmptyFieldListFilter)]
    readonly_fields = ["rule", "subject", "detail", "raised_at", "cleared_at", "webhook_sent"]

    def get_queryset(self, request):
        return roles.scope_alerts(super().get_queryset(request), request.user)

    def has_add_permission(self, request):
        return False


# -- upward: platforms, their outboxes and reconciliation ----------------------------------------------

class UpwardPlatformForm(forms.ModelForm):
    start_from = forms.ChoiceField(label="以此规范开始", required=False,
                                   help_text="新建时可留空“对接规范”，从仓库中的规范复制一份再按省平台规定修改")

    class Meta:
        model = UpwardPlatform
        fields = ["code", "name", "enabled", "start_from", "profile", "batch_size", "counts_path"]

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["start_from"].choices = [("", "—")] + [(n, p.title) for n, p in exports.shipped().items()]
        self.fields["profile"].required = False
        self.fields["profile"].widget.attrs.update(rows=30, style="font-family: monospace; width: 90%")

    def clean(self):
        data = super().clean()
        if not data.get("profile") and data.get("start_from"):
            data["profile"] = exports.shipped_text(data["start_from"])
            self.instance.profile = data["profile"]
        if not data.get("profile"):
            self.add_error("profile", "请填写对接规范，或选择一个仓库中的规范开始")
        return data


@admin.register(UpwardPlatform)
class UpwardPlatformAdmin(FilteredAdmin):
    """A platform this hall reports to. Its profile is checked when saved, and before every push
    against what we hold: a value it has no code for stops the push, named on the upward page."""

    form = UpwardPlatformForm
    list_display = ["code", "name", "enabled", "batch_size"]


@admin.register(UpwardItem)
class UpwardItemAdmin(ReadOnlyAdmin):
    """Each platform's outbox: every record and change, its state, the platform's reason for a dead
    one. 重新推送 queues a dead item again as a new version, once its cause is mended."""

    list_display = ["id", "platform", "rating_id", "change", "state", "attempts", "created_at", "acked_at", "last_error"]
    list_filter = ["platform", "state", "change"]
    search_fields = ["rating_id"]
    date_hierarchy = "created_at"
    actions = ["resend"]

    @admin.action(description="重新推送（死信）", permissions=["resend"])
    def resend(self, request, queryset):
        messages.info(request, f"已重新排队 {upward.resend(queryset)} 条")

    def has_resend_permission(self, request):
        return request.user.has_perm("ratings.change_upwarditem")


@admin.register(UpwardDay)
class UpwardDayAdmin(ReadOnlyAdmin):
    """The daily reconciliation. 重新推送该日 sends every record of a mismatched day again, each as a new
    version: a record the platform lost is added again, one it holds is updated to the same content."""

    list_display = ["day", "platform", "mismatched", "pending", "dead", "detail", "checked_at"]
    list_filter = ["platform", "mismatched"]
    date_hierarchy = "day"
    actions = ["requeue"]

    @admin.action(description="重新推送该日全部记录", permissions=["requeue"])
    def requeue(self, request, queryset):
        from . import reconciliation
        messages.info(request, f"已重新排队 {sum(reconciliation.requeue(d) for d in queryset)} 条")

    def has_requeue_permission(self, request):
        return request.user.has_perm("ratings.change_upwarditem")
