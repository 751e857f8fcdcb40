"""SMS (channel 6): one invitation per unrated case, replies of 1-5 that rate it, every message kept.

When a case its business system reported done has a mobile number and no rating holds its place
(``counted_rating_of``: one kept but not counted does not) ``Policy.sms_after_hours`` after
completion, ``tick`` queues one invitation: a short link (``/s/<token>``, the case's own rating page)
and 回复1-5评价. Nothing goes out between ``sms_quiet_from`` and ``sms_quiet_until`` (21:00-08:00)
local time; it waits for the morning. A reply of 1-5 (full-width too) rates the case on channel 6;
anything else gets one clarification, never a rating; a reply to a case already rated is kept and
flagged, and one after the invitation expired (``expired``, as its link) or its case was cancelled
is kept and rates nothing. A message whose case was rated or cancelled before it went out is not
sent (``withdrawn``). Every SMS sent and received is a ``SmsMessage``, its number encrypted.

Sending goes through a backend, as Django's e-mail does (``SMS_BACKEND``): ``FileBackend`` (the
default: one JSON file a message in ``<data>/sms-outbox``, for ``make run`` and the tests),
``ConsoleBackend`` and ``HttpGatewayBackend`` (the documented gateway interface, docs/integrators.md, "SMS").
A backend raises ``SmsError`` for a send that may be retried; the outbox retries with backoff and
makes a dead letter, shown in the admin, after ``MAX_ATTEMPTS``. A send is idempotent: the
gateway dedups by our message id, so a resend after a lost answer is not a second SMS.
"""

from __future__ import annotations

import json
import os
import time
import uuid
from datetime import datetime, timedelta
from pathlib import Path

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import Exists, F, OuterRef
from django.utils import timezone
from django.utils.module_loading import import_string
from django.views.decorators.csrf import csrf_protect

from sync.backoff import Backoff
from terminal.core import signing
from terminal.core.channels import Channel
from terminal.core.levels import Level

from . import direct, link_tokens, masking, personal_data, throttle
from .mobile import language_of, public_base
from .models import Case, Policy, SmsMessage, counted_rating_of

MAX_ATTEMPTS = 6
LEASE = timedelta(minutes=5)  # a claimed message is sent within this, or claimed again
LEVEL_DIGITS = {str(n): n for n in range(1, 6)} | {chr(0xFF10 + n): n for n in range(1, 6)}  # 1-5, １-５


class SmsError(Exception):
    """A send that did not (surely) reach the gateway: the outbox tries again later."""


# -- backends, as Django's e-mail backends ---------------------------------------------------------

class BaseBackend:
    def send(self, message_id: str, to: str, text: str) -> str:
        """Hand one SMS to the carrier; return the provider's id. Raise SmsError to retry later."""
        raise NotImplementedError


class FileBackend(BaseBackend):
    """Each message as a JSON file in ``SMS_FILE_PATH`` (default ``<data>/sms-outbox``), named by our id:
    a resend overwrites, so a case's invitation is one file, as it would be one SMS."""

    def send(self, message_id: str, to: str, text: str) -> str:
        folder = Path(getattr(settings, "SMS_FILE_PATH", "") or Path(settings.DATA_DIR) / "sms-outbox")
        folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        path = folder / f"{message_id}.json"
        tmp = path.with_suffix(".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)  # it holds a number in clear
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump({"id": message_id, "to": to, "text": text}, f, ensure_ascii=False)
        os.replace(tmp, path)
        return f"file:{message_id}"


class ConsoleBackend(BaseBackend):
    """Prints each message, the number and the link's code masked (a console is a log)."""

    def send(self, message_id: str, to: str, text: str) -> str:
        print(f"SMS {message_id} to {personal_data.mask_mobile(to)}: {link_tokens.hidden(text)}", flush=True)
        return f"console:{message_id}"


class HttpGatewayBackend(BaseBackend):
    """The documented gateway interface (docs/integrators.md, "SMS"): ``POST <SMS_GATEWAY_URL>/v1/messages`` with
    ``{"id", "to", "text"}``, signed as terminals sign, with the gateway's own credentials (a
    business system, ``SMS_GATEWAY_SYSTEM``: ``X-System-Id`` and its secret), answered 200 or 202
    ``{"id", "provider_id"}`` with ``X-Answer-Signature``. Anything else, an unsigned or mis-signed
    answer included, is SmsError: nothing is believed that the gateway did not sign. The call is
    ``outbound.post``'s: https:// or loopback, no redirect, the whole send within its deadline."""

    timeout = 10.0

    def send(self, message_id: str, to: str, text: str) -> str:
        import hashlib

        from .outbound import OutboundError, post
        system = gateway()
        body = json.dumps({"id": message_id, "to": to, "text": text}, ensure_ascii=False).encode()
        headers = signing.signed_headers(system.system_id, system.secret, "POST", "/v1/messages", body, time.time(),
                                         id_header=signing.HEADER_SYSTEM)
        try:
            reply = post(f"{settings.SMS_GATEWAY_URL.rstrip('/')}/v1/messages", body,
                         {"Content-Type": "application/json", **headers}, self.timeout, "RATING_CENTRAL_SMS_GATEWAY_URL")
        except OutboundError as exc:
            raise SmsError(str(exc)) from None
        content = reply.content
        if not signing.verify_answer(system.secret, headers[signing.HEADER_NONCE], reply.status,
                                     reply.headers.get(signing.HEADER_SERVER_TIME, ""),
                                     hashlib.sha256(content).hexdigest(),
                                     reply.headers.get(signing.HEADER_ANSWER_SIGNATURE, "")):
            raise SmsError(f"HTTP {reply.status} answer not signed by the gateway: nothing believed")
        if reply.status not in (200, 202):
            raise SmsError(f"gateway answered HTTP {reply.status}: {content[:200].decode(errors='replace')}")
        try:
            answer = json.loads(content)
            if answer.get("id") != message_id:
                raise ValueError("another message's answer")
            return str(answer.get("provider_id") or "")[:64]
        except (ValueError, AttributeError) as exc:
            raise SmsError(f"gateway answer not understood: {exc}") from None


def gateway():
    """The SMS gateway's credentials: the business system named by ``SMS_GATEWAY_SYSTEM``."""
    from .models import BusinessSystem
    found = BusinessSystem.objects.filter(system_id=getattr(settings, "SMS_GATEWAY_SYSTEM", ""),
                                          revoked_at__isnull=True).first()
    if found is None:
        raise SmsError("no SMS gateway configured (RATING_CENTRAL_SMS_GATEWAY_SYSTEM, a system from add_system)")
    return found


def backend() -> BaseBackend:
    return import_string(getattr(settings, "SMS_BACKEND", "central.ratings.sms.FileBackend"))()


# -- the invitations and the outbox ----------------------------------------------------------------

def quiet(now: datetime, policy: Policy) -> bool:
    hour = timezone.localtime(now).hour
    start, end = policy.sms_quiet_from, policy.sms_quiet_until
    return (start <= hour or hour < end) if start > end else start <= hour < end


def invite(now: datetime | None = None) -> int:
    """Queue one invitation for each case due one; how many were queued."""
    now = now or timezone.now()
    policy = Policy.current()
    rated = Exists(counted_rating_of(OuterRef("case_no")))
    invited = Exists(SmsMessage.objects.filter(case=OuterRef("pk"), kind="invitation"))
    due = (Case.objects.filter(status="completed", completed_at__lte=now - timedelta(hours=policy.sms_after_hours))
           .exclude(mobile_token="").filter(~rated).filter(~invited).select_related("window__hall"))
    queued, base = 0, public_base()  # "": no address phones can reach, so a reply only, never a dead link
    for case in due.iterator(chunk_size=500):
        token = link_tokens.new()
        link = f"；或点击 {base}/s/{token} " if base else ""
        text = (f"【{policy.sms_signature}】您在{case.window.hall.name}办理的{case.item_name or '事项'}已办结，"
                f"请回复数字评价：5非常满意 4满意 3基本满意 2不满意 1非常不满意{link}。回复本短信不收取额外费用。")
        try:
            with transaction.atomic():
                SmsMessage.objects.create(case=case, kind="invitation", mobile_token=case.mobile_token,
                                          mobile_index=case.mobile_index, mobile_masked=case.mobile_masked,
                                          text=text, link_token=token, next_attempt_at=now)
            queued += 1
        except IntegrityError:  # queued by another node's tick just now
            pass
    return queued


def send_due(now: datetime | None = None, sender: BaseBackend | None = None) -> tuple[int, int]:
    """Send every pending message whose time has come (never in quiet hours); (sent, dead).

    Each message is claimed first (its next attempt moved past ``LEASE``, in a short transaction),
    sent outside any transaction (a slow gateway holds no database lock), then its outcome recorded.
    A node that dies mid-send leaves the claim to lapse; the resend carries the same id."""
    now = now or timezone.now()
    if quiet(now, Policy.current()):
        return 0, 0
    sender = sender or backend()
    sent = dead = 0
    for pk in list(SmsMessage.objects.filter(state="pending", next_attempt_at__lte=now)
                   .order_by("next_attempt_at").values_list("pk", flat=True)[:500]):
        if not SmsMessage.objects.filter(pk=pk, state="pending", next_attempt_at__lte=now).update(
                next_attempt_at=now + LEASE, attempts=F("attempts") + 1):
            continue  # another node's tick took it
        message = SmsMessage.objects.select_related("case").get(pk=pk)
        why = withdrawn(message)
        if why:
            SmsMessage.objects.filter(pk=pk).update(state="withdrawn", note=why)
            continue
        try:
            provider_id = sender.send(str(message_uuid(message)), personal_data.decrypt(message.mobile_token),
                                      message.text)
        except (SmsError, ValueError) as exc:
            error = masking.anonymise(str(exc))[:300]  # a gateway names the number it refused: never kept in clear
            if message.attempts >= MAX_ATTEMPTS:
                SmsMessage.objects.filter(pk=pk).update(state="dead", last_error=error)
                dead += 1
            else:
                backoff = Backoff(base=60.0, cap=3600.0)
                backoff.failures = message.attempts - 1
                SmsMessage.objects.filter(pk=pk).update(last_error=error,
                                                        next_attempt_at=now + timedelta(seconds=backoff.next_delay()))
            continue
        SmsMessage.objects.filter(pk=pk).update(state="sent", sent_at=timezone.now(), last_error="",
                                                provider_id=provider_id)
        sent += 1
    return sent, dead


def withdrawn(message: SmsMessage) -> str:
    """Why a message of a case is no longer sent, or "": an invitation queued in the evening goes out
    in the morning, and by then the case may have been rated on another channel or cancelled (an SMS
    is for a case nothing else rated; a cancelled case is rated by none)."""
    case = message.case
    if case is None:
        return ""
    if case.status == "cancelled":
        return "办件已撤销，不再发送"
    if counted_rating_of(case.case_no).exists():
        return "办件已有评价，不再发送"
    return ""


def message_uuid(message: SmsMessage) -> uuid.UUID:
    """Our id for a message, the same on every resend: the gateway's idempotency key."""
    return uuid.uuid5(uuid.NAMESPACE_URL, f"rating-central/sms/{message.pk}/{message.created_at.isoformat()}")


def expired(invitation: SmsMessage, at: datetime) -> bool:
    """An invitation is answered within ``Policy.default_after_days`` of its sending, by its link or a
    reply: by then the case has its default rating, which a late answer must not replace."""
    return invitation.sent_at < at - timedelta(days=Policy.current().default_after_days)


# -- replies ---------------------------------------------------------------------------------------

def receive(provider_id: str, sender: str, text: str, received_at: datetime) -> SmsMessage:
    """Keep a reply; rate its case if it is 1-5, the case is unrated and the invitation has not
    expired (``expired``: as its link), else ask once what it meant or note why it rates nothing.

    A reply answers the latest invitation sent to its number before it was received (give or take
    the clocks' skew), and its rating is never earlier than that invitation: a time the gateway
    gives from before it would put the rating in a period long closed and reported. A reply dated
    before every invitation to its number (a gateway whose clock is a month behind, or says 2020)
    is taken as received now, when it reached us: the clock is wrong, not the reply."""
    mobile = personal_data.normalise_mobile(sender)
    existing = SmsMessage.objects.filter(kind="reply", provider_id=provider_id).first()
    if existing is not None:
        return existing  # the gateway called back twice: one reply
    skew = timedelta(seconds=signing.MAX_SKEW_SECONDS)
    sent_to_it = (SmsMessage.objects.filter(kind="invitation", state="sent",
                                            mobile_index__in=personal_data.blind_indexes(mobile))
                  .select_related("case__window").order_by("-sent_at"))
    invitation = sent_to_it.filter(sent_at__lte=received_at + skew).first()
    if invitation is None:  # dated before every invitation to its number: the gateway's clock is wrong
        now = timezone.now()
        invitation = sent_to_it.filter(sent_at__lte=now + skew).first()
        received_at = now if invitation is not None else received_at
    if invitation is not None:
        received_at = max(received_at, invitation.sent_at)
    case = invitation.case if invitation else None
    reply = SmsMessage(case=case, kind="reply", **personal_data.kept(mobile), text=text[:1000], state="received",
                       sent_at=received_at, provider_id=provider_id[:64])
    answer = text.strip()
    try:
        with transaction.atomic():
            if case is None:
                reply.note = "未找到待评价的办件"
            elif expired(invitation, received_at):
                reply.note = "评价邀请已过期，本条回复保留但不形成评价"
            elif case.status == "cancelled":
                reply.note = "办件已撤销，本条回复保留但不形成评价"
            elif answer in LEVEL_DIGITS:
                rating = direct.rate(window_code=case.window.code, level=Level(LEVEL_DIGITS[answer]),
                                     channel=Channel.SMS, device="sms", at=received_at, case_no=case.case_no,
                                     staff_no=case.staff_no, item_code=case.item_code,
                                     facts={"sms_reply": provider_id[:64]})
                reply.rating_id = rating.rating_id
                reply.note = "已形成评价" if rating.case_counted else "该办件已有评价，本条保留但不计入"
            else:
                reply.note = clarify(case)
            reply.save()
    except IntegrityError:  # the same reply from two callbacks at once
        return SmsMessage.objects.get(kind="reply", provider_id=provider_id)
    return reply


def clarify(case: Case) -> str:
    """One clarification per case, however many unclear replies come."""
    policy = Policy.current()
    _, made = SmsMessage.objects.get_or_create(case=case, kind="clarification", defaults=dict(
        mobile_token=case.mobile_token, mobile_index=case.mobile_index, mobile_masked=case.mobile_masked,
        text=f"【{policy.sms_signature}】请回复一个数字评价本次服务：5非常满意 4满意 3基本满意 2不满意 1非常不满意。",
        next_attempt_at=timezone.now()))
    return "回复不是 1-5，已发送一次说明" if made else "回复不是 1-5，说明已发送过，不再发送"


# -- the invitation's link: the case's own rating page ---------------------------------------------

LINK_VIEWS_PER_ADDRESS = 60  # per 10 minutes
#: what an SMS link says where a plaque's page speaks of its QR code
LINK_WORDS = {
    "zh": {"invalid": "评价链接已失效", "invalid_note": "短信中的评价链接已过期或不存在，无法再用于评价。"},
    "en": {"invalid": "This rating link is no longer valid",
           "invalid_note": "The link in your SMS has expired or does not exist; it can no longer be used to rate."},
}


def link_words() -> dict:
    """The words of an SMS link's pages: the plaque's form, with the link's own answers."""
    from . import plaques
    return {language: {**plaques.WORDS[language], **own} for language, own in LINK_WORDS.items()}


@csrf_protect
def link_page(request, token: str):
    """``/s/<token>`` from an invitation: rate the case with a level, reasons and a comment (channel 6),
    while no rating holds its place and within ``default_after_days`` of the SMS."""
    from . import mobile, plaques
    from .models import ReasonTag
    language = language_of(request)
    all_words = link_words()
    words = all_words[language]
    if not throttle.allow(f"sms-link:{mobile.address_hash(request)}", LINK_VIEWS_PER_ADDRESS, 600):
        return mobile.message(request, all_words, language, "busy", 429)
    invitation = (SmsMessage.objects.filter(kind="invitation", link_token=token, state="sent")
                  .select_related("case__window__hall").first() if link_tokens.well_formed(token) else None)
    if invitation is None or expired(invitation, timezone.now()) or invitation.case.status == "cancelled":
        return mobile.message(request, all_words, language, "invalid", 404)
    case = invitation.case
    if counted_rating_of(case.case_no).exclude(device="system").exists():
        return mobile.message(request, all_words, language, "rated", 410)
    tags = list(ReasonTag.objects.filter(active=True).order_by("order", "id"))
    form = plaques.read_form(request, words, tags) if request.method == "POST" else None
    if form and not form.problem:
        direct.rate(window_code=case.window.code, level=form.level, channel=Channel.SMS, device="phone",
                    case_no=case.case_no, staff_no=case.staff_no, item_code=case.item_code, reasons=form.reasons,
                    text=form.text, facts={"sms_link": invitation.pk})
        return mobile.message(request, all_words, language, "thanks", 200)
    return plaques.form_page(request, language, case.window, tags, form, with_case=False,
                             heading=case.item_name or words["title"])
