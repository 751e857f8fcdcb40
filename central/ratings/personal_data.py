"""Personal data kept for a case: the applicant's mobile number, encrypted at rest and shown masked.

The number is needed in clear only to send the case's SMS invitation and for a call-back. It is kept
as a Fernet token (AES-128-CBC with HMAC-SHA256, from ``cryptography``) under the data key, beside a
keyed hash (HMAC-SHA256 under a key derived from the data key) that finds the case an SMS reply
came from without decrypting every number, and the masked form every page shows (138****5678).

The data key comes from ``RATING_CENTRAL_DATA_KEYS`` (comma-separated Fernet keys, the first one
current: rotating means putting a new key first and keeping the old ones until every token is
re-encrypted) or else the file ``RATING_CENTRAL_DATA_KEY_FILE`` (default ``data_key`` in the data
folder, made on first use, readable by its owner only). The key is never in the database, so a
copy of the database alone reveals no number; several app servers share one key.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import hmac
import os
import re
from pathlib import Path

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from django.conf import settings

_MOBILE = re.compile(r"1[3-9][0-9]{9}")  # ASCII digits only: \d takes full-width ones too
_SEPARATORS = re.compile(r"[\s\-()（）]")


class BadMobile(ValueError):
    pass


def normalise_mobile(value: object) -> str:
    """A mainland mobile number as 11 digits, from what a business system sends (+86, 0086,
    spaces, hyphens allowed); BadMobile otherwise."""
    if not isinstance(value, str) or len(value) > 32:
        raise BadMobile("must be a mobile number as text")
    digits = _SEPARATORS.sub("", value)
    for prefix in ("+86", "0086", "86"):
        if digits.startswith(prefix) and len(digits) == len(prefix) + 11:
            digits = digits[len(prefix):]
            break
    if not _MOBILE.fullmatch(digits):
        raise BadMobile("is not a mainland mobile number (11 digits, 13x-19x)")
    return digits


def mask_mobile(mobile: str) -> str:
    """What any page shows of a number: the first three and the last four digits."""
    return f"{mobile[:3]}****{mobile[-4:]}" if len(mobile) == 11 else "****"


def kept(mobile: str) -> dict[str, str]:
    """What a record keeps of a number (its ``mobile_token``, ``mobile_index`` and ``mobile_masked``
    fields): encrypted, indexed and masked, never the number itself."""
    return {"mobile_token": encrypt(mobile), "mobile_index": blind_index(mobile), "mobile_masked": mask_mobile(mobile)}


def encrypt(text: str) -> str:
    return _fernet().encrypt(text.encode()).decode()


def decrypt(token: str) -> str:
    """The clear text, for the one moment it is needed (sending an SMS, a call-back)."""
    try:
        return _fernet().decrypt(token.encode()).decode()
    except InvalidToken:
        raise ValueError("this value was encrypted under a key that is no longer configured") from None


def blind_index(mobile: str) -> str:
    """The keyed hash that finds a number's cases without decrypting any, under the current key: not
    reversible without the data key (a plain hash of 11 digits would be, by trying all 10^10)."""
    return hmac.new(_index_keys()[0], mobile.encode(), hashlib.sha256).hexdigest()


def blind_indexes(mobile: str) -> list[str]:
    """The number's index under every configured key: what a lookup asks for, so cases stored
    before a rotation are found until ``rotate_data_key`` has re-indexed them."""
    return [hmac.new(k, mobile.encode(), hashlib.sha256).hexdigest() for k in _index_keys()]


def reencrypt(token: str) -> str:
    """The token under the current key (after a rotation)."""
    return _fernet().rotate(token.encode()).decode()


def keys() -> list[bytes]:
    """The configured data keys, current first."""
    configured = os.environ.get("RATING_CENTRAL_DATA_KEYS", "")
    if configured.strip():
        return [k.strip().encode() for k in configured.split(",") if k.strip()]
    path = Path(os.environ.get("RATING_CENTRAL_DATA_KEY_FILE") or Path(settings.DATA_DIR) / "data_key")
    if not path.exists():
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:  # another app server made it just now
            pass
        else:
            with os.fdopen(fd, "w") as f:
                f.write(Fernet.generate_key().decode())
    return [path.read_text().strip().encode()]


@functools.cache
def _fernet() -> MultiFernet:
    return MultiFernet([Fernet(k) for k in keys()])


@functools.cache
def _index_keys() -> list[bytes]:
    return [hmac.new(base64.urlsafe_b64decode(k), b"rating-central mobile index", hashlib.sha256).digest()
            for k in keys()]


def forget_keys() -> None:
    """Read the keys again (tests, and a rotation without a restart)."""
    _fernet.cache_clear()
    _index_keys.cache_clear()
