"""What the central server keeps: the hall's roster (what terminals show) and the ratings."""

import hashlib

from django.core.validators import RegexValidator
from django.db import models
from django.utils import timezone

from terminal.core.channels import Channel, InputDevice
from terminal.core.levels import Level

from .validators import staff_photo, unified_code

LEVEL_CHOICES = [(int(lv), lv.zh) for lv in Level]
CHANNEL_CHOICES = [(int(c), c.zh) for c in Channel]
# system: a default rating; phone: a rater's own phone (a window's QR plaque, an SMS link); sms: a reply;
# telephone: a satisfaction given on a call-back (电话回访)
DEVICE_CHOICES = [(d.value, d.value) for d in InputDevice] + [("system", "system"), ("phone", "phone"), ("sms", "sms"),
                                                               ("telephone", "telephone")]


class Hall(models.Model):
    code = models.CharField("编码", max_length=64, unique=True)
    name = models.CharField("名称", max_length=100)
    # moves with every change of what this hall's terminals pull (content.changed): their ETags' key
    content_generation = models.BigIntegerField(default=0, editable=False)

    class Meta:
        verbose_name = verbose_name_plural = "政务服务大厅"

    def __str__(self):
        return self.name


class Department(models.Model):
    code = models.CharField("统一社会信用代码", max_length=18, unique=True, validators=[unified_code])
    name = models.CharField("名称", max_length=100)

    class Meta:
        verbose_name = verbose_name_plural = "部门"

    def __str__(self):
        return self.name


class Window(models.Model):
    hall = models.ForeignKey(Hall, on_delete=models.PROTECT, related_name="windows", verbose_name="大厅")
    department = models.ForeignKey(Department, on_delete=models.PROTECT, null=True, blank=True,
                                   verbose_name="部门")
    code = models.CharField("窗口编号", max_length=64, unique=True)
    name = models.CharField("窗口名称", max_length=100)
    # the window's content ETag and the generations it was made for (content.etag_for): shared by
    # every server process and node, so a manifest is built once per change, not once per process
    content_etag = models.CharField(max_length=64, blank=True, editable=False)
    content_etag_for = models.CharField(max_length=64, blank=True, editable=False)
    # the window's printed QR plaque opens /w/<plaque_code>; a new code retires every plaque printed before
    plaque_code = models.CharField(max_length=24, blank=True, editable=False, db_index=True)
    # a reported case done here waits to invite the window's idle terminal (its next heartbeat answer):
    # read with the terminal on every signed request, so a heartbeat asks nothing more when none waits
    invite_waiting = models.BooleanField(default=False, editable=False)

    class Meta:
        verbose_name = verbose_name_plural = "窗口"
        ordering = ["code"]

    def __str__(self):
        return f"{self.name} ({self.code})"


class Staff(models.Model):
    staff_no = models.CharField("工号", max_length=64, unique=True)
    name = models.CharField("姓名", max_length=50)
    unit = models.CharField("单位", max_length=100, blank=True)
    title = models.CharField("岗位", max_length=50, blank=True)
    window = models.ForeignKey(Window, on_delete=models.SET_NULL, null=True, blank=True,
                               related_name="staff", verbose_name="窗口")
    photo = models.FileField("照片", upload_to="staff/", blank=True, validators=[staff_photo],
                             help_text="JPEG、PNG 或 WebP，不超过 2 MB")
    photo_sha256 = models.CharField(max_length=64, blank=True, editable=False)
    badge_id = models.CharField("工牌卡号", max_length=64, blank=True)

    def clean(self):
        """One badge, one person: a terminal logs in nobody with a badge two roster entries hold
        (whose services would its ratings be?), so the admin says so when the second is saved."""
        from django.core.exceptions import ValidationError
        self.badge_id = self.badge_id.strip()
        if self.badge_id and Staff.objects.filter(badge_id=self.badge_id).exclude(pk=self.pk).exists():
            raise ValidationError({"badge_id": "该工牌卡号已登记给其他工作人员（一卡一人）；请先清除原登记"})

    def save(self, *args, **kwargs):
        """Keep the photo's hash: terminals fetch files by content hash."""
        if self.photo:
            self.photo.open("rb")
            self.photo.seek(0)
            self.photo_sha256 = hashlib.file_digest(self.photo, "sha256").hexdigest()
            self.photo.seek(0)
        else:
            self.photo_sha256 = ""
        super().save(*args, **kwargs)

    class Meta:
        verbose_name = verbose_name_plural = "工作人员"
        ordering = ["staff_no"]

    def __str__(self):
        return f"{self.name} ({self.staff_no})"


class Terminal(models.Model):
    """An enrolled terminal: its own secret, its window, and what its last heartbeat said."""

    terminal_id = models.CharField("终端编号", max_length=64, unique=True)
    window = models.ForeignKey(Window, on_delete=models.PROTECT, related_name="terminals", verbose_name="窗口")
    secret = models.CharField(max_length=128, editable=False)  # HMAC key; never shown, never logged
    enrolled_at = models.DateTimeField("登记时间", auto_now_add=True)
    revoked_at = models.DateTimeField("吊销时间", null=True, blank=True)
    last_seen = models.DateTimeField("最近联络", null=True, blank=True)
    version = models.CharField("软件版本", max_length=32, blank=True)
    queue_depth = models.PositiveIntegerField("待上传", default=0)
    oldest_pending_s = models.PositiveIntegerField("最久待上传（秒）", null=True, blank=True)
    dead_letters = models.PositiveIntegerField("死信", default=0)
    clock_offset_s = models.FloatField("时钟偏差（秒）", null=True, blank=True)
    heartbeat = models.JSONField("最近心跳", default=dict, blank=True)
    device_down_since = models.DateTimeField("设备断开起始", null=True, blank=True)  # box reported disconnected

    class Meta:
        verbose_name = verbose_name_plural = "终端"
        ordering = ["terminal_id"]

    def __str__(self):
        return self.terminal_id


class EnrollmentCode(models.Model):
    """A one-time, expiring code a technician types into a new terminal. Only its hash is kept."""

    code_hash = models.CharField(max_length=64, unique=True, editable=False)
    window = models.ForeignKey(Window, on_delete=models.CASCADE, verbose_name="窗口")
    created_at = models.DateTimeField("生成时间", auto_now_add=True)
    expires_at = models.DateTimeField("失效时间")
    used_at = models.DateTimeField("使用时间", null=True, blank=True)
    terminal = models.ForeignKey(Terminal, on_delete=models.SET_NULL, null=True, blank=True, verbose_name="终端")

    class Meta:
        verbose_name = verbose_name_plural = "终端登记码"
        ordering = ["-created_at"]


class BusinessSystem(models.Model):
    """A business or queue system (业务办理系统, 排队叫号系统) that reports cases: its own id and secret,
    signing its requests as a terminal does (``X-System-Id``). Made by ``rating-central add_system``,
    which shows the secret once; revoked here."""

    system_id = models.CharField("系统编号", max_length=64, unique=True, editable=False)
    name = models.CharField("系统名称", max_length=100)
    secret = models.CharField(max_length=128, editable=False)  # HMAC key; never shown again, never logged
    created_at = models.DateTimeField("创建时间", auto_now_add=True)
    revoked_at = models.DateTimeField("吊销时间", null=True, blank=True)
    last_seen = models.DateTimeField("最近联络", null=True, blank=True)

    class Meta:
        verbose_name = verbose_name_plural = "业务系统"
        ordering = ["system_id"]

    def __str__(self):
        return f"{self.name}（{self.system_id}）"


class SeenNonce(models.Model):
    """Nonces of accepted signed requests (a terminal's or a business system's), kept for the
    clock-skew window to refuse replays."""

    terminal = models.ForeignKey(Terminal, on_delete=models.CASCADE, null=True)
    system = models.ForeignKey(BusinessSystem, on_delete=models.CASCADE, null=True)
    nonce = models.CharField(max_length=64)
    seen_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["terminal", "nonce"], name="unique_nonce_per_terminal"),
                       models.UniqueConstraint(fields=["system", "nonce"], name="unique_nonce_per_system"),
                       models.CheckConstraint(condition=models.Q(terminal__isnull=True) ^ models.Q(system__isnull=True),
                                              name="nonce_of_one_caller")]


class Case(models.Model):
    """A case (办件) as its business system reported it: accepted, then completed. Every channel's
    rating of it names its case number; one counts per ``rating_no`` (``Rating.case_counted``).
    The applicant's mobile number is kept encrypted (``personal_data``), found by its keyed hash,
    and shown masked."""

    STATUSES = [("accepted", "已受理"), ("completed", "已办结"), ("cancelled", "已撤件")]
    APPLICANTS = [("person", "自然人"), ("company", "法人")]

    case_no = models.CharField("办件编号", max_length=50, unique=True)
    system = models.ForeignKey(BusinessSystem, on_delete=models.PROTECT, related_name="cases",
                               verbose_name="报送系统")
    item_code = models.CharField("事项编码", max_length=64, blank=True)
    item_name = models.CharField("事项名称", max_length=200, blank=True)
    department = models.ForeignKey(Department, on_delete=models.PROTECT, verbose_name="部门")
    window = models.ForeignKey(Window, on_delete=models.PROTECT, related_name="cases", verbose_name="窗口")
    staff_no = models.CharField("工号", max_length=64, blank=True)
    applicant_type = models.CharField("申请人类型", max_length=10, choices=APPLICANTS, default="person")
    mobile_token = models.TextField(blank=True, editable=False)  # Fernet token; clear only to send or call
    mobile_index = models.CharField(max_length=64, blank=True, db_index=True, editable=False)
    mobile_masked = models.CharField("手机号码", max_length=16, blank=True, editable=False)
    ticket_no = models.CharField("排队号", max_length=16, blank=True)
    status = models.CharField("状态", max_length=10, choices=STATUSES)
    accepted_at = models.DateTimeField("受理时间")
    completed_at = models.DateTimeField("办结时间", null=True, blank=True)
    reported_at = models.DateTimeField("首次报送", auto_now_add=True)
    updated_at = models.DateTimeField("最近报送", auto_now=True)
    # inviting the window's terminal through its heartbeat: "" → offered → invited (or missed, when no
    # heartbeat could take it within INVITE_WITHIN of completion); busy or paused terminals are asked again
    invite_state = models.CharField("邀评状态", max_length=10, blank=True, default="", choices=[
        ("", "—"), ("waiting", "等待终端空闲"), ("offered", "已发给终端"), ("invited", "终端已邀评"),
        ("missed", "终端未能邀评")])
    invite_note = models.CharField("邀评说明", max_length=100, blank=True)

    class Meta:
        verbose_name = verbose_name_plural = "办件"
        ordering = ["-accepted_at"]
        indexes = [models.Index(fields=["status", "completed_at"], name="case_completed")]

    def __str__(self):
        return self.case_no


class BootClock(models.Model):
    """When a terminal's boot began, in server time (server time minus the monotonic clock).

    Ratings of that boot get ``boot_started + mono_ms`` as their corrected time, whatever the
    terminal's wall clock said. Network delay only makes the estimate later, so the earliest wins.
    """

    terminal = models.ForeignKey(Terminal, on_delete=models.CASCADE)
    boot_id = models.CharField(max_length=64)
    boot_started = models.DateTimeField()
    first_seen = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["terminal", "boot_id"], name="unique_boot_per_terminal")]


class Notice(models.Model):
    hall = models.ForeignKey(Hall, on_delete=models.CASCADE, verbose_name="大厅")
    title = models.CharField("标题", max_length=100)
    body = models.TextField("内容")
    order = models.IntegerField("排序", default=0)
    active = models.BooleanField("发布", default=True)

    class Meta:
        verbose_name = verbose_name_plural = "通知公告"
        ordering = ["order", "id"]


class ServiceGuide(models.Model):
    item_code = models.CharField("事项编码", max_length=64)
    title = models.CharField("事项名称", max_length=200)
    body = models.TextField("办事指南")
    department = models.ForeignKey(Department, on_delete=models.CASCADE, null=True, blank=True,
                                   verbose_name="部门", help_text="空：全大厅通用")
    active = models.BooleanField("发布", default=True)

    class Meta:
        verbose_name = verbose_name_plural = "办事指南"
        ordering = ["item_code"]


class ReasonTag(models.Model):
    code = models.CharField("代码", max_length=64, unique=True)
    label = models.CharField("原因", max_length=50)
    label_en = models.CharField("英文", max_length=80, blank=True)  # for the kiosk's English screens
    order = models.IntegerField("排序", default=0)
    active = models.BooleanField("启用", default=True)

    class Meta:
        verbose_name = verbose_name_plural = "差评原因标签"
        ordering = ["order", "id"]


class TerminalSettings(models.Model):
    """What a terminal does, set for a whole hall or for one window (the window's wins)."""

    hall = models.OneToOneField(Hall, on_delete=models.CASCADE, null=True, blank=True, verbose_name="大厅")
    window = models.OneToOneField(Window, on_delete=models.CASCADE, null=True, blank=True, verbose_name="窗口")
    rating_mode = models.CharField("评价方式", max_length=10, default="invite",
                                   choices=[("invite", "邀请评价"), ("walk-up", "随时评价")])
    dimensions = models.JSONField("评价指标", default=list, blank=True,
                                  help_text='例如 ["服务效率", "服务水平", "服务态度"]；空：只评整体满意度')
    language = models.CharField("语言", max_length=10, default="zh_CN",
                                choices=[("zh_CN", "简体中文"), ("en", "English")])
    invite_timeout_s = models.PositiveIntegerField("邀请后可评价时长（秒）", default=10)
    reasons_timeout_s = models.PositiveIntegerField("原因选择超时（秒）", default=30)
    thanks_seconds = models.PositiveIntegerField("致谢显示（秒）", default=3)
    walkup_cooldown_s = models.PositiveIntegerField("随时评价冷却（秒）", default=5)

    class Meta:
        verbose_name = verbose_name_plural = "终端设置"
        constraints = [models.CheckConstraint(
            condition=models.Q(hall__isnull=False) ^ models.Q(window__isnull=False), name="settings_for_hall_xor_window")]

    def as_dict(self) -> dict:
        return {f: getattr(self, f) for f in ("rating_mode", "dimensions", "language", "invite_timeout_s",
                                               "reasons_timeout_s", "thanks_seconds", "walkup_cooldown_s")}


class Rating(models.Model):
    """One accepted rating, as the terminal made it; ``rating_id`` is unique across all terminals."""

    rating_id = models.CharField("评价编号", max_length=64, unique=True)
    terminal_id = models.CharField("终端", max_length=64)  # looked up through rating_chain, which begins with it
    window_code = models.CharField("窗口", max_length=64, db_index=True)
    # the window's department when the rating was stored: what it counts for, however the window
    # moves later (statistics, a department manager's view, the department code sent upward)
    department = models.ForeignKey(Department, on_delete=models.PROTECT, null=True, blank=True, db_index=False,
                                   related_name="+", verbose_name="部门")
    staff_no = models.CharField("工号", max_length=64, blank=True)  # grouped through rating_stats, never looked up alone
    level = models.PositiveSmallIntegerField("评价等级", choices=LEVEL_CHOICES)
    channel = models.PositiveSmallIntegerField("评价渠道", choices=CHANNEL_CHOICES)
    device = models.CharField("输入设备", max_length=20, choices=DEVICE_CHOICES)
    case_no = models.CharField("办件编号", max_length=50, blank=True, db_index=True)
    item_code = models.CharField("事项编码", max_length=64, blank=True)
    session_id = models.CharField("评价会话", max_length=64, blank=True, db_index=True)
    reasons = models.JSONField("原因标签", default=list, blank=True)
    text = models.TextField("评价内容", blank=True)
    # 复核 (re-check) or a late real rating may exclude a rating from every score; it stays stored.
    excluded = models.BooleanField("不计入统计", default=False)
    excluded_why = models.CharField("不计入原因", max_length=200, blank=True)
    rated_at = models.DateTimeField("评价时间", db_index=True)  # corrected where the terminal's clock was wrong
    rated_on = models.DateField("评价日期")  # rated_at's day in the hall's time zone: what statistics group by
    rated_at_terminal = models.DateTimeField("终端记录时间")  # as the terminal's clock said, always kept
    time_source = models.CharField("时间来源", max_length=20, choices=[
        ("terminal_ntp", "终端时钟（已校时）"), ("server_boot", "服务器按开机时刻校正"),
        ("terminal_unsynced", "终端时钟（未校时，无法校正）"), ("server_default", "系统默认评价"),
        ("server_received", "服务器接收时间（手机扫码）")])
    received_at = models.DateTimeField("接收时间", auto_now_add=True)
    digest = models.CharField("记录摘要", max_length=64)
    payload = models.JSONField("原始数据")
    rating_no = models.PositiveSmallIntegerField("评价次数", default=1)  # 1 首次, 2 追加评价
    ticket_no = models.CharField("排队号", max_length=16, blank=True)  # the queue ticket the service was called by
    # True: this rating holds its case's place for its rating_no (一事一评); None: it does not.
    case_counted = models.BooleanField("计为该办件的评价", null=True, editable=False)
    # time_implausible (its clock put it before enrollment or in the future: stored at the time
    # received), duplicate_case (its case already had this rating_no: kept, not counted)
    flags = models.JSONField("标记", default=list, blank=True)
    chain_epoch = models.CharField("链", max_length=32, blank=True)
    chain_seq = models.BigIntegerField("链序号", null=True, blank=True)
    chain_prev = models.CharField("链上前一条的摘要", max_length=64, blank=True)
    # 审核: a comment reaches /public/ only once a hall administrator approved it, as written or as
    # edited (``comment_public``; the rater's own ``text`` is never changed; CommentReviewEntry keeps each step)
    comment_state = models.CharField("文字评价审核", max_length=10, blank=True, default="", choices=[
        ("", "待审核"), ("approved", "已通过，可公示"), ("rejected", "不公示")])
    comment_public = models.TextField("公示内容", blank=True)
    comment_reviewed_at = models.DateTimeField("审核时间", null=True, blank=True)

    class Meta:
        verbose_name = verbose_name_plural = "评价"
        ordering = ["-rated_at"]
        # Covers the statistics queries (a date range, grouped by window or staff and level), so a
        # million-rating table is read from the index alone (bench/central_scale.py).
        indexes = [models.Index(fields=["rated_on", "excluded", "window_code", "department", "staff_no", "level"],
                                name="rating_stats"),
                   models.Index(fields=["terminal_id", "chain_epoch", "chain_seq"], name="rating_chain")]
        constraints = [models.UniqueConstraint(fields=["case_no", "rating_no"], condition=models.Q(case_counted=True),
                                               name="one_counted_rating_per_case_and_number")]

    def __str__(self):
        return f"{self.rating_id} {Level(self.level).zh}"


def counted_rating_of(case_no) -> models.QuerySet:
    """The rating holding ``case_no``'s first place (一事一评; ``case_no`` may be an ``OuterRef``): what
    "the case is rated" means to every channel. A rating kept but not counted (duplicate_case,
    case_elsewhere, repeat_rater, a superseded default) rates nothing, so it cannot use a case up:
    its SMS, its terminal's invitation and its default still come."""
    return Rating.objects.filter(case_no=case_no, rating_no=1, case_counted=True)


class CommentForReview(Rating):
    """The ratings with a comment, as the hall administrator reviews them (审核) for the public page."""

    class Meta:
        proxy = True
        verbose_name = verbose_name_plural = "文字评价审核"


class RatingAddition(models.Model):
    """Reasons and a comment a rater added on their phone (扫码评价, channel 3) to a rating made at a
    terminal: it joins that rating (``rating_id``, which may reach the server after it), never a
    second rating. The QR code's token is used once (``token_mac`` unique); the rater's address is
    kept only as a keyed hash, for abuse checks."""

    rating_id = models.CharField("评价编号", max_length=64, db_index=True)
    terminal = models.ForeignKey(Terminal, on_delete=models.PROTECT, verbose_name="终端")
    token_mac = models.CharField(max_length=32, unique=True, editable=False)
    channel = models.PositiveSmallIntegerField("评价渠道", choices=CHANNEL_CHOICES, default=int(Channel.QR_CODE))
    reasons = models.JSONField("原因标签", default=list, blank=True)
    text = models.TextField("补充意见", blank=True)
    language = models.CharField("页面语言", max_length=8, default="zh")
    submitted_at = models.DateTimeField("提交时间", auto_now_add=True)
    address_hash = models.CharField(max_length=64, editable=False)
    comment_state = models.CharField("文字评价审核", max_length=10, blank=True, default="", choices=[
        ("", "待审核"), ("approved", "已通过，可公示"), ("rejected", "不公示")])

    class Meta:
        verbose_name = verbose_name_plural = "手机补充意见"
        ordering = ["-submitted_at"]

    def __str__(self):
        return f"{self.rating_id[:12]} 补充意见"


class SmsMessage(models.Model):
    """Every SMS sent for a case or received from a rater, kept: the number encrypted and masked as a
    case's is (``personal_data``). An invitation is sent once per case (``one_invitation_per_case``)
    and retried through the outbox until the gateway takes it or it becomes a dead letter."""

    KINDS = [("invitation", "邀请评价"), ("clarification", "回复说明"), ("reply", "评价人回复")]
    STATES = [("pending", "待发送"), ("sent", "已发送"), ("dead", "发送失败（死信）"), ("received", "已接收"),
              ("withdrawn", "不再发送")]  # its case was rated or cancelled before it went out

    case = models.ForeignKey("Case", on_delete=models.PROTECT, null=True, blank=True, related_name="sms",
                             verbose_name="办件")
    kind = models.CharField("类别", max_length=14, choices=KINDS)
    mobile_token = models.TextField(editable=False)
    mobile_index = models.CharField(max_length=64, db_index=True, editable=False)
    mobile_masked = models.CharField("手机号码", max_length=16, editable=False)
    text = models.TextField("内容")
    link_token = models.CharField(max_length=32, blank=True, db_index=True, editable=False)  # an invitation's link
    state = models.CharField("状态", max_length=10, choices=STATES, default="pending")
    attempts = models.PositiveSmallIntegerField("发送次数", default=0)
    next_attempt_at = models.DateTimeField("下次发送", null=True, blank=True)
    last_error = models.CharField("最近错误", max_length=300, blank=True)
    provider_id = models.CharField("平台编号", max_length=64, blank=True)
    created_at = models.DateTimeField("创建时间", auto_now_add=True)
    sent_at = models.DateTimeField("发送/接收时间", null=True, blank=True)
    rating_id = models.CharField("形成评价", max_length=64, blank=True)  # a reply that rated the case
    note = models.CharField("处理说明", max_length=200, blank=True)  # e.g. not a rating: asked once

    class Meta:
        verbose_name = verbose_name_plural = "评价短信"
        ordering = ["-created_at"]
        constraints = [
            models.UniqueConstraint(fields=["case", "kind"], condition=models.Q(kind__in=["invitation", "clarification"]),
                                    name="one_invitation_and_clarification_per_case"),
            models.UniqueConstraint(fields=["provider_id"], condition=models.Q(kind="reply"),
                                    name="each_reply_once")]
        indexes = [models.Index(fields=["state", "next_attempt_at"], name="sms_outbox")]

    def __str__(self):
        return f"{self.get_kind_display()} {self.mobile_masked}"


class CallbackTask(models.Model):
    """One telephone call-back (电话回访): for a bad rating with a known number, or a case drawn in a
    window's quarterly sample. The caller records reached or not, the satisfaction given on the
    phone (stored as a rating on ``Policy.callback_channel``) and notes."""

    REASONS = [("bad_rating", "差评回访"), ("sample", "季度抽样回访")]
    STATES = [("open", "待回访"), ("reached", "已接通"), ("unreached", "未接通")]

    case = models.ForeignKey("Case", on_delete=models.PROTECT, related_name="callbacks", verbose_name="办件")
    reason = models.CharField("回访原因", max_length=12, choices=REASONS)
    rating = models.ForeignKey(Rating, on_delete=models.PROTECT, null=True, blank=True, related_name="callbacks",
                               verbose_name="差评")
    quarter = models.CharField("季度", max_length=7, db_index=True)  # 2026Q4: the sample's quarter, or the bad rating's
    seed = models.CharField("抽样种子", max_length=64, blank=True)
    window_code = models.CharField("窗口", max_length=64, db_index=True)
    state = models.CharField("状态", max_length=10, choices=STATES, default="open")
    level = models.PositiveSmallIntegerField("电话中的评价", choices=LEVEL_CHOICES, null=True, blank=True)
    notes = models.TextField("回访记录", blank=True)
    called_at = models.DateTimeField("回访时间", null=True, blank=True)
    called_by = models.ForeignKey("auth.User", on_delete=models.SET_NULL, null=True, blank=True, related_name="+",
                                  verbose_name="回访人")
    rating_id_given = models.CharField("形成的评价", max_length=64, blank=True, editable=False)
    number_shown = models.JSONField("号码查看记录", default=list, blank=True, editable=False)  # who saw it, when
    created_at = models.DateTimeField("创建时间", auto_now_add=True)

    class Meta:
        verbose_name = verbose_name_plural = "电话回访"
        ordering = ["state", "-created_at"]
        constraints = [models.UniqueConstraint(fields=["case", "reason"], condition=models.Q(reason="sample"),
                                               name="a_case_sampled_once"),
                       models.UniqueConstraint(fields=["rating"], name="one_callback_per_bad_rating")]

    def __str__(self):
        return f"{self.get_reason_display()} {self.case_id}"


class Throttle(models.Model):
    """How often one key (an address, a token, a device) did something in one period: rate limits
    that hold across every app server, since the count is in the shared database."""

    key = models.CharField(max_length=100)
    period_start = models.DateTimeField()
    period_end = models.DateTimeField()  # the count is kept until then: a limit may span days (plaques.CASE_TRIES)
    count = models.PositiveIntegerField(default=0)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["key", "period_start"], name="one_count_per_key_and_period")]
        indexes = [models.Index(fields=["period_end"], name="throttle_end")]


class CommentReviewEntry(models.Model):
    """One step of a comment's review, never edited: approved, rejected, or edited (with the text)."""

    rating = models.ForeignKey(Rating, on_delete=models.PROTECT, related_name="comment_reviews", verbose_name="评价")
    at = models.DateTimeField("时间", auto_now_add=True)
    by = models.ForeignKey("auth.User", on_delete=models.SET_NULL, null=True, verbose_name="审核人")
    action = models.CharField("操作", max_length=10, choices=[("approved", "通过"), ("rejected", "不公示"),
                                                            ("edited", "修改后通过")])
    text = models.TextField("公示内容", blank=True)

    class Meta:
        verbose_name = verbose_name_plural = "审核记录"
        ordering = ["at", "id"]


class TerminalEvent(models.Model):
    """A staff login or logout, a session event, or a press kept as suspected misuse — never a rating."""

    KINDS = [("login", "登录"), ("logout", "退出"), ("invited", "邀请评价"), ("invite_expired", "邀请超时未评"),
             ("session_abandoned", "会话中止"), ("misuse", "疑似误按/刷评"), ("chain_restart", "记录链重新开始"),
             ("ticket_called", "排队叫号"), ("queue_paused", "叫号系统暂停服务"), ("queue_resumed", "叫号系统恢复服务")]
    event_id = models.CharField("事件编号", max_length=64, unique=True)
    terminal_id = models.CharField("终端", max_length=64, db_index=True)
    window_code = models.CharField("窗口", max_length=64, db_index=True)
    # the window's department when the event was stored, as for ratings: whose records it is, however
    # the window moves later; events stored before this was kept have none (their window's department now)
    department = models.ForeignKey(Department, on_delete=models.PROTECT, null=True, blank=True,
                                   related_name="+", verbose_name="部门")
    kind = models.CharField("类型", max_length=20, choices=KINDS, db_index=True)
    why = models.CharField("疑似误按原因", max_length=20, blank=True)
    staff_no = models.CharField("工号", max_length=64, blank=True, db_index=True)
    session_id = models.CharField("评价会话", max_length=64, blank=True)
    case_no = models.CharField("办件编号", max_length=50, blank=True)
    ticket_no = models.CharField("排队号", max_length=16, blank=True)
    level = models.PositiveSmallIntegerField("按下的等级", choices=LEVEL_CHOICES, null=True, blank=True)
    at = models.DateTimeField("时间", db_index=True)
    at_terminal = models.DateTimeField("终端记录时间")
    time_source = models.CharField("时间来源", max_length=20)
    received_at = models.DateTimeField("接收时间", auto_now_add=True)
    digest = models.CharField("记录摘要", max_length=64)
    payload = models.JSONField("原始数据")
    flags = models.JSONField("标记", default=list, blank=True)  # time_implausible, as for ratings
    chain_epoch = models.CharField("链", max_length=32, blank=True)
    chain_seq = models.BigIntegerField("链序号", null=True, blank=True)
    chain_prev = models.CharField("链上前一条的摘要", max_length=64, blank=True)

    class Meta:
        verbose_name = verbose_name_plural = "终端事件"
        ordering = ["-at"]
        indexes = [models.Index(fields=["terminal_id", "chain_epoch", "chain_seq"], name="event_chain")]

    def __str__(self):
        return f"{self.event_id} {self.kind}"


class RejectedItem(models.Model):
    """An item the server refused, kept for inspection, with its reason code (see ``ingest.REFUSALS``).

    A refused record still took its place in its terminal's chain, so its place is kept too: the
    chain check counts it as arrived (refused), never as missing."""

    received_at = models.DateTimeField("接收时间", auto_now_add=True)
    kind = models.CharField("类别", max_length=10, default="rating")  # rating | event
    terminal_id = models.CharField("终端", max_length=64, blank=True)
    rating_id = models.CharField("评价或事件编号", max_length=64, blank=True, db_index=True)
    code = models.CharField("原因代码", max_length=32, blank=True, db_index=True)
    reason = models.TextField("原因")
    payload = models.TextField("原始数据")
    digest = models.CharField("记录摘要", max_length=64, blank=True)
    chain_epoch = models.CharField("链", max_length=32, blank=True)
    chain_seq = models.BigIntegerField("链序号", null=True, blank=True)
    chain_prev = models.CharField("链上前一条的摘要", max_length=64, blank=True)
    # what was refused, why, and who sent it (``ingest.fingerprint``): a batch sent again because its
    # answer was lost stores no second copy (NULL: kept before there was one)
    fingerprint = models.CharField(max_length=64, null=True, unique=True, editable=False)

    class Meta:
        verbose_name = verbose_name_plural = "被拒绝的评价"
        ordering = ["-received_at"]
        indexes = [models.Index(fields=["terminal_id", "chain_epoch", "chain_seq"], name="rejected_chain")]

    def __str__(self):
        return f"{self.rating_id or '（无编号）'} {self.code}"


class ServedStaff(models.Model):
    """A staff member a window's terminals were served on its roster (any content version): a
    record from that window may name them, and no one else (a roster change never orphans the
    ratings still queued on a terminal)."""

    window_code = models.CharField(max_length=64)
    staff_no = models.CharField(max_length=64)
    first_served = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["window_code", "staff_no"], name="unique_served_staff")]


class Chain(models.Model):
    """What the central server knows of one hash chain of one terminal (``terminal/core/chain.py``).

    Ingest notes each batch's places (``head_seq``, ``recheck_from``, ``version``); the chain check
    (``chains.check``, run by ``tick``) reads the places back from ratings, events and refused
    items and keeps ``contiguous`` (every place up to it arrived), the missing runs, forks (two
    records in one place), breaks (a record whose ``prev`` is not the digest before it) and, for
    a chain that is not the terminal's first, the ``chain_restart`` event that explains it."""

    terminal_id = models.CharField("终端", max_length=64, db_index=True)
    epoch = models.CharField("链", max_length=32)
    first_seen = models.DateTimeField("首次收到", auto_now_add=True)
    head_seq = models.BigIntegerField("已知最大序号", default=0)  # from records, or the heartbeat's head
    contiguous = models.BigIntegerField("连续到", default=0)
    recheck_from = models.BigIntegerField(null=True, blank=True)
    version = models.BigIntegerField(default=0)  # bumped by each batch; the check saves only if unchanged
    checked_version = models.BigIntegerField(default=-1)
    missing = models.TextField("缺少的序号", blank=True)
    gap_since = models.DateTimeField("缺号起始", null=True, blank=True)
    forks = models.JSONField("分叉的序号", default=list, blank=True)
    breaks = models.JSONField("断链的序号", default=list, blank=True)
    first_of_terminal = models.BooleanField("终端的第一条链", default=False)
    restart_why = models.CharField("重新开始原因", max_length=32, blank=True)
    restart_detail = models.TextField("重新开始说明", blank=True)
    problem_at = models.DateTimeField("最近发现问题", null=True, blank=True)
    reviewed_at = models.DateTimeField("核查时间", null=True, blank=True)
    review_note = models.TextField("核查说明", blank=True)

    class Meta:
        verbose_name = verbose_name_plural = "终端记录链"
        ordering = ["terminal_id", "first_seen"]
        constraints = [models.UniqueConstraint(fields=["terminal_id", "epoch"], name="unique_chain")]

    def __str__(self):
        return f"{self.terminal_id} {self.epoch[:8]}"


class Policy(models.Model):
    """The hall's rules for work orders and default ratings: one row, edited in the admin."""

    contact_days = models.PositiveSmallIntegerField("联系评价人时限（工作日）", default=1,
                                                    help_text="各地为 1 或 3 个工作日")
    rectify_days = models.PositiveSmallIntegerField("整改时限（工作日）", default=5)
    complex_days = models.PositiveSmallIntegerField("复杂件办结时限（工作日）", default=15)
    default_after_days = models.PositiveSmallIntegerField("默认评价前等待（自然日）", default=7)
    default_level = models.PositiveSmallIntegerField("默认评价等级", choices=LEVEL_CHOICES,
                                                     default=int(Level.BASICALLY_SATISFIED))
    default_channel = models.PositiveSmallIntegerField("默认评价渠道", choices=CHANNEL_CHOICES,
                                                       default=int(Channel.SYSTEM_DEFAULT))
    followup_days = models.PositiveSmallIntegerField("追加评价期限（自然日）", default=15,
                                                     help_text="首次评价后多少天内可追加评价一次；逾期的追加评价保留但不计入")
    sms_after_hours = models.PositiveSmallIntegerField("短信邀评等待（小时）", default=2,
                                                       help_text="办结后仍无任何渠道评价，多少小时后发一条短信邀请评价")
    sms_quiet_from = models.PositiveSmallIntegerField("短信免打扰开始（时）", default=21)
    sms_quiet_until = models.PositiveSmallIntegerField("短信免打扰结束（时）", default=8)
    sms_signature = models.CharField("短信签名", max_length=30, default="政务服务",
                                     help_text="短信开头【】中的签名，须与短信平台报备的一致")
    callback_channel = models.PositiveSmallIntegerField(
        "电话回访评价渠道代码", default=8, help_text="电话回访中给出的评价以此渠道代码保存；各省编码不同，按上报平台的规定填写")
    callback_sample_per_window = models.PositiveSmallIntegerField("每季度每窗口抽样回访件数", default=10)

    class Meta:
        verbose_name = verbose_name_plural = "办理规则"

    def __str__(self):
        return "办理规则"

    @classmethod
    def current(cls) -> "Policy":
        return cls.objects.get_or_create(pk=1)[0]


class Operator(models.Model):
    """Which department a department manager (部门负责人) answers for; others see the whole hall."""

    user = models.OneToOneField("auth.User", on_delete=models.CASCADE, related_name="operator",
                                verbose_name="用户")
    department = models.ForeignKey(Department, on_delete=models.CASCADE, null=True, blank=True,
                                   verbose_name="所属部门")

    class Meta:
        verbose_name = verbose_name_plural = "用户所属部门"


class WorkOrder(models.Model):
    """The follow-up of one bad rating: contact the rater, rectify, close; or re-check (复核)."""

    STATES = [("open", "待联系"), ("contacted", "已联系"), ("rectified", "已整改"), ("closed", "已办结")]
    RECHECK = [("", "未申请"), ("requested", "已申请复核"), ("excluded", "复核：不计入统计"),
               ("upheld", "复核：维持评价")]

    rating = models.OneToOneField(Rating, on_delete=models.PROTECT, related_name="work_order",
                                  verbose_name="评价")
    window_code = models.CharField("窗口", max_length=64)  # shown, never searched: orders are scoped by department
    department = models.ForeignKey(Department, on_delete=models.PROTECT, null=True, blank=True,
                                   verbose_name="责任部门")
    state = models.CharField("状态", max_length=10, choices=STATES, default="open", db_index=True)
    complex_case = models.BooleanField("复杂件", default=False)
    # no index on who: nobody looks orders up by it, and every bad rating of a burst would pay for one
    assignee = models.ForeignKey("auth.User", on_delete=models.SET_NULL, null=True, blank=True, db_index=False,
                                 related_name="work_orders", verbose_name="承办人")
    opened_on = models.DateField("受理日期")
    contact_due = models.DateField("联系时限")
    rectify_due = models.DateField("整改时限")
    close_due = models.DateField("办结时限")
    provisional = models.BooleanField("时限按周一至周五估算", default=False,
                                      help_text="节假日安排尚未公布的年份；日历更新后重新计算")
    contacted_at = models.DateTimeField("联系时间", null=True, blank=True)
    rectified_at = models.DateTimeField("整改时间", null=True, blank=True)
    closed_at = models.DateTimeField("办结时间", null=True, blank=True)
    contact_record = models.TextField("联系情况", blank=True)
    rectification = models.TextField("整改情况", blank=True)
    recheck = models.CharField("复核", max_length=10, choices=RECHECK, default="", blank=True)
    recheck_reason = models.TextField("复核理由", blank=True)
    recheck_by = models.ForeignKey("auth.User", on_delete=models.SET_NULL, null=True, blank=True, db_index=False,
                                   related_name="+", verbose_name="复核人")
    recheck_at = models.DateTimeField("复核时间", null=True, blank=True)
    # 整改情况公示: what /public/ shows of the rectification, once a hall administrator approved it
    # (the text as written, masked; the handler's own record is never changed)
    public_rectification = models.TextField("公示的整改情况", blank=True, editable=False)
    published_at = models.DateTimeField("公示时间", null=True, blank=True, editable=False)
    published_by = models.ForeignKey("auth.User", on_delete=models.SET_NULL, null=True, blank=True, db_index=False,
                                     related_name="+", verbose_name="公示审核人", editable=False)

    class Meta:
        verbose_name = verbose_name_plural = "差评工单"
        ordering = ["-opened_on", "-id"]
        permissions = [("decide_recheck", "可以决定复核结果"), ("publish_rectification", "可以公示整改情况")]

    def __str__(self):
        return f"工单 {self.pk}（{self.window_code}）"


class WorkOrderNote(models.Model):
    order = models.ForeignKey(WorkOrder, on_delete=models.CASCADE, related_name="notes", verbose_name="工单")
    author = models.ForeignKey("auth.User", on_delete=models.SET_NULL, null=True, verbose_name="记录人")
    at = models.DateTimeField("时间", auto_now_add=True)
    text = models.TextField("内容")

    class Meta:
        verbose_name = verbose_name_plural = "工单记录"
        ordering = ["at", "id"]


class AlertRule(models.Model):
    """One early-warning condition. ``check_alerts`` raises an Alert once while it holds and clears it after."""

    KINDS = [("bad_burst", "窗口差评集中：T 小时内差评达 N 条"),
             ("offline", "终端离线超过 X 分钟"),
             ("box_disconnected", "按键盒断开超过 X 分钟"),
             ("backlog", "终端待上传超过 N 条"),
             ("misuse_burst", "窗口疑似误按/刷评：T 小时内达 N 次"),
             ("overdue", "逾期工单达 N 件"),
             ("chain_gap", "终端记录缺号超过 X 分钟（已产生、未送达）"),
             ("chain_fork", "终端记录分叉或断链（同一序号两份内容）"),
             ("chain_restart", "终端记录链重新开始且未说明，或数据库丢失"),
             ("upward_mismatch", "上报平台对账不符（某日某渠道某等级条数不一致）"),
             ("upward_backlog", "上报平台积压：最早一条待推送超过 X 分钟")]
    name = models.CharField("名称", max_length=100)
    kind = models.CharField("类型", max_length=20, choices=KINDS)
    threshold = models.PositiveIntegerField("N（条数）", default=3)
    hours = models.PositiveIntegerField("T（小时）", default=24)
    minutes = models.PositiveIntegerField("X（分钟）", default=30)
    enabled = models.BooleanField("启用", default=True)

    class Meta:
        verbose_name = verbose_name_plural = "预警规则"
        ordering = ["kind", "id"]

    def __str__(self):
        return self.name


class Alert(models.Model):
    rule = models.ForeignKey(AlertRule, on_delete=models.CASCADE, related_name="alerts", verbose_name="规则")
    subject = models.CharField("对象", max_length=100, help_text="窗口编号、终端编号或“全大厅”")
    detail = models.CharField("情况", max_length=300)
    raised_at = models.DateTimeField("预警时间", auto_now_add=True, db_index=True)
    cleared_at = models.DateTimeField("解除时间", null=True, blank=True, db_index=True)
    webhook_sent = models.CharField("已推送", max_length=10, blank=True)  # "", "raised" or "cleared"

    class Meta:
        verbose_name = verbose_name_plural = "预警"
        ordering = ["-raised_at"]
        constraints = [models.UniqueConstraint(fields=["rule", "subject"], condition=models.Q(cleared_at__isnull=True),
                                               name="one_open_alert_per_rule_and_subject")]

    def __str__(self):
        return f"{self.rule.name}: {self.subject}"


class ContentGeneration(models.Model):
    """One number that moves whenever anything a terminal pulls changes (``content.changed``):
    heartbeats answer the content ETag from a cache keyed by it, instead of building the manifest."""

    number = models.BigIntegerField(default=0)

    class Meta:
        verbose_name = verbose_name_plural = "内容版本号"


class UpwardPlatform(models.Model):
    """A platform this hall reports to (省级好差评系统, 国家平台 …): how to speak to it is its export
    profile (``export_profile``), a copy of a shipped one that an administrator may edit; where and
    with which credentials comes from the environment (``RATING_CENTRAL_UPWARD_<CODE>_URL``,
    ``_KEY_ID``, ``_SECRET``), never from the database."""

    code = models.CharField("编码", max_length=32, unique=True,
                            validators=[RegexValidator(r"^[A-Z][A-Z0-9_]{0,31}$", "大写字母开头，仅大写字母、数字、下划线")],
                            help_text="环境变量 RATING_CENTRAL_UPWARD_<编码>_URL / _KEY_ID / _SECRET 给出地址与凭据")
    name = models.CharField("名称", max_length=100)
    profile = models.TextField("对接规范（TOML）", help_text="字段、代码表、时间格式；未映射在用的值时推送拒绝启动")
    enabled = models.BooleanField("启用推送", default=True)
    batch_size = models.PositiveSmallIntegerField("每批条数", default=500)
    counts_path = models.CharField("平台计数接口", max_length=100, blank=True, default="/v1/counts",
                                   help_text="平台提供按日计数时填写（GET <地址><此路径>?day=YYYY-MM-DD）；留空则只核对本方确认情况")
    created_at = models.DateTimeField("创建时间", auto_now_add=True)

    class Meta:
        verbose_name = verbose_name_plural = "上报平台"
        ordering = ["code"]

    def __str__(self):
        return f"{self.name}（{self.code}）"

    def clean(self):
        from django.core.exceptions import ValidationError

        from .export_profile import ProfileError, parse
        from .reconciliation import COUNTS_PATH
        try:
            parse(self.profile)
        except ProfileError as exc:
            raise ValidationError({"profile": str(exc)}) from None
        if self.counts_path and not COUNTS_PATH.fullmatch(self.counts_path):
            raise ValidationError({"counts_path": "须为以 / 开头的路径，不含 ? 或 #（与平台地址直接相连）"})


class UpwardItem(models.Model):
    """One record or change for one platform, in its outbox: queued in the transaction that makes
    the rating or the change, sent in order (``upward``), ``sent`` only on the platform's verified
    acknowledgement, ``dead`` with the platform's reason. Its id is the record's version upward: an
    update is the same rating with a higher version, never a second rating."""

    CHANGES = [("rating", "评价"), ("default", "默认评价"), ("validity", "有效性变更"), ("rectification", "整改反馈"),
               ("addition", "扫码补充意见"), ("case", "办件信息更新")]
    STATES = [("pending", "待推送"), ("sent", "已确认"), ("dead", "失败（死信）"), ("skipped", "该平台不收"),
              ("resent", "已重新排队")]

    # no index of its own: upward_outbox (platform, state, id) starts with it, and one index fewer is
    # one B-tree write fewer for every rating ingest queues
    platform = models.ForeignKey(UpwardPlatform, on_delete=models.PROTECT, related_name="items", verbose_name="平台",
                                 db_index=False)
    rating_id = models.CharField("评价编号", max_length=64)
    change = models.CharField("内容", max_length=14, choices=CHANGES)
    state = models.CharField("状态", max_length=8, choices=STATES, default="pending")
    attempts = models.PositiveIntegerField("推送次数", default=0)
    last_error = models.CharField("最近错误", max_length=300, blank=True)
    created_at = models.DateTimeField("排队时间", default=timezone.now)
    acked_at = models.DateTimeField("确认时间", null=True, blank=True)

    class Meta:
        verbose_name = verbose_name_plural = "上报记录"
        ordering = ["id"]
        indexes = [models.Index(fields=["platform", "state", "id"], name="upward_outbox"),
                   models.Index(fields=["rating_id"], name="upward_rating")]

    def __str__(self):
        return f"{self.platform.code} {self.rating_id} v{self.pk}"


class UpwardDay(models.Model):
    """One day's reconciliation with one platform (``reconciliation``): by channel and level (in the
    platform's codes, ``"<channel>/<level>"``), the valid records we hold, those the platform
    acknowledged, and the platform's own count where its interface offers one."""

    platform = models.ForeignKey(UpwardPlatform, on_delete=models.CASCADE, related_name="days", verbose_name="平台")
    day = models.DateField("日期")
    ours = models.JSONField("本方有效评价", default=dict)
    acknowledged = models.JSONField("平台已确认", default=dict)
    theirs = models.JSONField("平台计数", null=True, blank=True)
    pending = models.PositiveIntegerField("待推送", default=0)
    dead = models.PositiveIntegerField("死信", default=0)
    mismatched = models.BooleanField("对账不符", default=False)
    detail = models.CharField("说明", max_length=300, blank=True)
    checked_at = models.DateTimeField("核对时间")

    class Meta:
        verbose_name = verbose_name_plural = "上报对账"
        ordering = ["-day"]
        constraints = [models.UniqueConstraint(fields=["platform", "day"], name="one_reconciliation_per_day")]

    def __str__(self):
        return f"{self.platform.code} {self.day}"
