"""Checks on what people type or upload in the admin: department codes and staff photos."""

from __future__ import annotations

from django.core.exceptions import ValidationError
from stdnum.cn import uscc
from stdnum.exceptions import ValidationError as StdnumError

from terminal import images

PHOTO_MAX_BYTES, PHOTO_MAX_SIDE = images.MAX_BYTES, images.MAX_SIDE  # the terminal's own limits


def unified_code(value: str) -> None:
    """An 18-character unified social credit code (统一社会信用代码, GB 32100-2015), checksum included."""
    try:
        uscc.validate(value)
    except StdnumError as exc:
        raise ValidationError(f"不是有效的 18 位统一社会信用代码（{exc}）") from None


def staff_photo(upload) -> None:
    """A JPEG, PNG or WebP photo of at most 2 MB and 4000 pixels a side: what a terminal can show
    (``terminal.images``, the check the terminal makes again before it shows it)."""
    upload.seek(0)
    try:
        refused = images.check(upload, upload.size)
    finally:
        upload.seek(0)
    if refused is None:
        return
    raise ValidationError({
        "too_heavy": f"照片不能超过 {PHOTO_MAX_BYTES // 1024 // 1024} MB（此文件 {refused.size / 1024 / 1024:.1f} MB）",
        "format": f"照片须为 JPEG、PNG 或 WebP 格式（此文件为 {refused.format}）",
        "too_wide": f"照片边长不能超过 {PHOTO_MAX_SIDE} 像素（此文件 {refused.width}×{refused.height}）",
        "bomb": "图片像素过多，可能是恶意构造的文件（解压炸弹），已拒绝",
    }.get(refused.kind, f"无法识别为图片：{refused.detail}"))
