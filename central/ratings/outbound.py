"""One POST from the central server to a service of the hall's own: its SMS gateway, its alert
webhook. The same rules as every call a terminal makes (``sync``): https://, or http:// only to
this machine, with no secret in the URL (``terminal.config.check_server_url``); no redirect
followed; the whole call, the answer's head and body too, within ``DEADLINE_TIMEOUTS`` timeouts
(``sync.deadline``), since a timeout bounds each read only and a service trickling its answer held
``tick`` and every default rating and alert behind it. Any failure is one ``OutboundError``.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass

import requests
import urllib3

from sync import deadline, tls
from sync.client import DEADLINE_TIMEOUTS
from terminal.config import ConfigError, check_server_url


class OutboundError(Exception):
    """The call did not happen, or its answer did not arrive whole: try again later."""


@dataclass(frozen=True)
class Answer:
    status: int
    headers: Mapping[str, str]  # as requests gives them: any case finds a header
    content: bytes  # at most ``max_bytes`` of the body


def post(url: str, body: bytes, headers: dict, timeout: float, where: str, max_bytes: int = 65536) -> Answer:
    """POST ``body`` to ``url`` (``where`` names the setting, for the error) and read its answer."""
    try:
        check_server_url(url, where)
    except ConfigError as exc:
        raise OutboundError(str(exc)) from None
    try:
        with tls.session() as http, deadline.within(time.monotonic() + timeout * DEADLINE_TIMEOUTS):
            reply = http.post(url, data=body, headers=headers, timeout=timeout, stream=True)
            content = reply.raw.read(max_bytes, decode_content=True)
            reply.close()
    except (requests.RequestException, urllib3.exceptions.HTTPError, OSError) as exc:  # an answer cut short too
        raise OutboundError(f"{where} unreachable: {type(exc).__name__}") from None
    return Answer(reply.status_code, reply.headers, content)
