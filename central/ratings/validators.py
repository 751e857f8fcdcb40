"""Checks on what people type or upload in the admin: department codes and staff photos."""

from __future__ import annotations

from django.core.exceptions import ValidationError
from stdnum.cn import uscc
from stdnum.exceptions import ValidationError as StdnumError

PHOTO_FORMATS = {"JPEG": "JPEG", "PNG": "PNG", "WEBP": "WebP"}
PHOTO_MAX_BYTES = 2 * 1024 * 1024
PHOTO_MAX_SIDE = 4000


def unified_code(value: str) -> None:
    """An 18-character unified social credit code (统一社会信用代码, GB 32100-2015), checksum included."""
    try:
        uscc.validate(value)
    except StdnumError as exc:
        raise ValidationError(f"不是有效的 18 位统一社会信用代码（{exc}）") from None


def staff_photo(upload) -> None:
    """A JPEG, PNG or WebP photo of at most 2 MB and 4000 pixels a side: what a terminal can show."""
    from PIL import Image, UnidentifiedImageError
    if upload.size > PHOTO_MAX_BYTES:
        raise ValidationError(f"照片不能超过 {PHOTO_MAX_BYTES // 1024 // 1024} MB（此文件 {upload.size / 1024 / 1024:.1f} MB）")
    try:
        upload.seek(0)
        with Image.open(upload) as image:
            kind, size = image.format, image.size
            image.verify()
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise ValidationError(f"无法识别为图片：{exc}") from None
    finally:
        upload.seek(0)
    if kind not in PHOTO_FORMATS:
        raise ValidationError(f"照片须为 JPEG、PNG 或 WebP 格式（此文件为 {kind}）")
    if max(size) > PHOTO_MAX_SIDE:
        raise ValidationError(f"照片边长不能超过 {PHOTO_MAX_SIDE} 像素（此文件 {size[0]}×{size[1]}）")
