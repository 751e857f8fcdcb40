"""What the central server keeps: the hall's roster (what terminals show) and the ratings."""

from django.db import models

from terminal.core.channels import Channel, InputDevice
from terminal.core.levels import Level

LEVEL_CHOICES = [(int(lv), lv.zh) for lv in Level]
CHANNEL_CHOICES = [(int(c), c.zh) for c in Channel]
DEVICE_CHOICES = [(d.value, d.value) for d in InputDevice]


class Hall(models.Model):
    code = models.CharField("编码", max_length=64, unique=True)
    name = models.CharField("名称", max_length=100)

    class Meta:
        verbose_name = verbose_name_plural = "政务服务大厅"

    def __str__(self):
        return self.name


class Department(models.Model):
    code = models.CharField("统一社会信用代码", max_length=18, unique=True)
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
    photo = models.FileField("照片", upload_to="staff/", blank=True)
    badge_id = models.CharField("工牌卡号", max_length=64, blank=True)

    class Meta:
        verbose_name = verbose_name_plural = "工作人员"
        ordering = ["staff_no"]

    def __str__(self):
        return f"{self.name} ({self.staff_no})"


class Rating(models.Model):
    """One accepted rating, as the terminal made it; ``rating_id`` is unique across all terminals."""

    rating_id = models.CharField("评价编号", max_length=64, unique=True)
    terminal_id = models.CharField("终端", max_length=64, db_index=True)
    window_code = models.CharField("窗口", max_length=64, db_index=True)
    staff_no = models.CharField("工号", max_length=64, blank=True, db_index=True)
    level = models.PositiveSmallIntegerField("评价等级", choices=LEVEL_CHOICES)
    channel = models.PositiveSmallIntegerField("评价渠道", choices=CHANNEL_CHOICES)
    device = models.CharField("输入设备", max_length=20, choices=DEVICE_CHOICES)
    case_no = models.CharField("办件编号", max_length=50, blank=True, db_index=True)
    item_code = models.CharField("事项编码", max_length=64, blank=True)
    reasons = models.JSONField("原因标签", default=list, blank=True)
    text = models.TextField("评价内容", blank=True)
    rated_at = models.DateTimeField("评价时间", db_index=True)
    received_at = models.DateTimeField("接收时间", auto_now_add=True)
    digest = models.CharField(max_length=64)
    payload = models.JSONField("原始数据")

    class Meta:
        verbose_name = verbose_name_plural = "评价"
        ordering = ["-rated_at"]

    def __str__(self):
        return f"{self.rating_id} {Level(self.level).zh}"


class RejectedItem(models.Model):
    """An item the server refused, kept for inspection (malformed, or an id reused with other content)."""

    received_at = models.DateTimeField("接收时间", auto_now_add=True)
    terminal_id = models.CharField("终端", max_length=64, blank=True)
    rating_id = models.CharField("评价编号", max_length=64, blank=True, db_index=True)
    reason = models.TextField("原因")
    payload = models.TextField("原始数据")

    class Meta:
        verbose_name = verbose_name_plural = "被拒绝的评价"
        ordering = ["-received_at"]
