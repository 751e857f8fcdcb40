"""Cases (办件) reported by business and queue systems: ``POST /api/v1/cases``.

A system reports a case when it is accepted and again when it is done; each report carries the
whole case as the system knows it then. The first report creates the case, a later one from the
same system updates it (a completed case cannot go back to accepted), an identical one changes
nothing, and another system's report of the same number is refused: a case number names one case.

The applicant's mobile number is normalised, encrypted and indexed here (``personal_data``); it
never reaches a log, an answer or a page in clear.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from django.db import IntegrityError, transaction
from django.utils import timezone

from terminal.core import signing
from terminal.core.checks import InvalidRecord, check_fields, one_of, text, timestamp
from terminal.core.rating import MAX_CASE_NO, MAX_CODE, MAX_TICKET

from . import ingest, invites, personal_data, upward
from .models import BusinessSystem, Case, Department, Staff, Window

MAX_ITEM_NAME = 200


#: name -> (required, check): the case report, as a business system sends it
FIELDS = {
    "case_no": (True, text(MAX_CASE_NO)),
    "item_code": (False, text(MAX_CODE, allow_empty=True)),
    "item_name": (False, text(MAX_ITEM_NAME, allow_empty=True)),
    "dept_code": (False, text(MAX_CODE, allow_empty=True)),
    "window": (True, text(MAX_CODE)),
    "staff_no": (False, text(MAX_CODE, allow_empty=True)),
    "applicant_type": (False, one_of(("person", "company"))),
    "mobile": (False, personal_data.normalise_mobile),
    "ticket_no": (False, text(MAX_TICKET, allow_empty=True)),
    "status": (True, one_of(("accepted", "completed", "cancelled"))),
    "accepted_at": (True, timestamp),
    "completed_at": (False, timestamp),
}


class CaseRefused(ValueError):
    def __init__(self, status: int, code: str, detail: str):
        super().__init__(detail)
        self.status, self.code, self.detail = status, code, detail


@dataclass
class Reported:
    case: Case
    outcome: str  # created, updated, unchanged


def report(system: BusinessSystem, data: object, again: bool = True) -> Reported:
    """Create or update the case ``data`` describes; CaseRefused says why not (nothing is stored)."""
    try:
        values = check_fields(data, FIELDS, "case")
    except InvalidRecord as exc:
        raise CaseRefused(400, "invalid_case", str(exc)) from None
    accepted_at = datetime.fromisoformat(values["accepted_at"])
    completed_at = datetime.fromisoformat(values["completed_at"]) if values.get("completed_at") else None
    latest = timezone.now() + timedelta(seconds=signing.MAX_SKEW_SECONDS)
    if accepted_at > latest or (completed_at and completed_at > latest):
        raise CaseRefused(400, "invalid_case", "accepted_at and completed_at cannot be in the future")
    if values["status"] == "completed" and completed_at is None:
        raise CaseRefused(400, "invalid_case", "completed_at: is required when status is completed")
    if completed_at is not None and completed_at < accepted_at:
        raise CaseRefused(400, "invalid_case", "completed_at is before accepted_at")
    window = Window.objects.select_related("department").filter(code=values["window"]).first()
    if window is None:
        raise CaseRefused(400, "unknown_window", f"no window {values['window']} in this hall")
    department = window.department
    if values.get("dept_code"):
        department = Department.objects.filter(code=values["dept_code"]).first()
        if department is None:
            raise CaseRefused(400, "unknown_department", f"no department {values['dept_code']}")
    staff_no = values.get("staff_no") or ""
    if staff_no and not Staff.objects.filter(staff_no=staff_no).exists():
        raise CaseRefused(400, "unknown_staff", f"no staff member {staff_no}")
    fields = dict(item_code=values.get("item_code") or "", item_name=values.get("item_name") or "",
                  department=department, window=window, staff_no=staff_no,
                  applicant_type=values.get("applicant_type") or "person", ticket_no=values.get("ticket_no") or "",
                  status=values["status"], accepted_at=accepted_at, completed_at=completed_at)
    mobile = values.get("mobile")
    try:
        with transaction.atomic():
            case = Case.objects.select_for_update().filter(case_no=values["case_no"]).first()
            if case is None:
                case = Case(case_no=values["case_no"], system=system, **fields)
                _set_mobile(case, mobile)
                case.save()
                ingest.settle_reported(case.case_no, window.code)  # a rating may have named it before
                upward.queue_case(case.case_no, fields)  # one that went up without its case's facts
                invites.case_completed(case)
                return Reported(case, "created")
            if case.system_id != system.pk:
                raise CaseRefused(409, "case_of_another_system",
                                  f"case {case.case_no} was reported by another system")
            if case.status in ("completed", "cancelled") and fields["status"] == "accepted":
                raise CaseRefused(409, "case_already_done", f"case {case.case_no} is already {case.status}")
            changed = [name for name, value in fields.items() if getattr(case, name) != value]
            if mobile is not None and _stored_mobile(case) != mobile:
                _set_mobile(case, mobile)
                changed.append("mobile")
            if not changed:
                return Reported(case, "unchanged")
            for name in changed:
                if name != "mobile":
                    setattr(case, name, fields[name])
            case.save()
            if "window" in changed:
                ingest.settle_reported(case.case_no, window.code)
            upward.queue_case(case.case_no, changed)
            invites.case_completed(case)
            return Reported(case, "updated")
    except IntegrityError:  # the same number created by a request just now: once more, it updates
        if not again:
            raise CaseRefused(409, "case_conflict", f"case {values['case_no']} is being reported by another request")
        return report(system, data, again=False)


def _stored_mobile(case: Case) -> str | None:
    """The number kept for the case, or None (none kept, or under a key no longer configured: the
    report's number then replaces it, under the current key)."""
    try:
        return personal_data.decrypt(case.mobile_token) if case.mobile_token else None
    except ValueError:
        return None


def _set_mobile(case: Case, mobile: str | None) -> None:
    if mobile is not None:
        for name, value in personal_data.kept(mobile).items():
            setattr(case, name, value)


def as_answer(reported: Reported) -> dict:
    """What the system hears back: the case as stored, the number masked."""
    case = reported.case
    return {"case_no": case.case_no, "outcome": reported.outcome, "status": case.status,
            "window": case.window.code, "mobile": case.mobile_masked}


def cases_of_mobile(mobile: str):
    """The cases of one mobile number (an SMS reply's sender), newest first, none decrypted."""
    return Case.objects.filter(mobile_index__in=personal_data.blind_indexes(personal_data.normalise_mobile(mobile)))
