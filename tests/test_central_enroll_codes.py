"""``rating-central enroll-code`` for many windows at once (the fleet playbook's one call): one JSON
document a machine reads, every code good for its own window, all or nothing, and never a code in a
log or on stderr."""

import io
import json
import logging
import subprocess
from datetime import datetime, timedelta, timezone

import pytest
from django.core.management import CommandError, call_command

from central.ratings import auth
from central.ratings.models import EnrollmentCode, Terminal

from conftest import BIN

pytestmark = [pytest.mark.central, pytest.mark.django_db]


def enroll_codes(*args: str) -> tuple[str, str]:
    out, err = io.StringIO(), io.StringIO()
    call_command("enroll_code", *args, stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


def test_many_windows_in_one_json_document_each_code_for_its_own_window(hall, caplog):
    caplog.set_level(logging.DEBUG)
    before = EnrollmentCode.objects.count()
    out, err = enroll_codes("--window", "W02", "--window", "W03", "--window", "W02", "--format", "json")
    codes = json.loads(out)["codes"]
    assert [c["window"] for c in codes] == ["W02", "W03", "W02"]  # in order; a window named twice gets two
    assert len({c["code"] for c in codes}) == 3 and EnrollmentCode.objects.count() == before + 3
    for c in codes:
        expires = datetime.fromisoformat(c["expires_at"])
        assert abs(expires - (datetime.now(timezone.utc) + timedelta(hours=24))) < timedelta(minutes=1)
        assert c["code"] not in err and c["code"] not in caplog.text  # stdout only, never a log
        assert not EnrollmentCode.objects.filter(code_hash=c["code"]).exists()  # only the hash is kept
    assert [auth.enroll(c["code"]).window.code for c in codes] == ["W02", "W03", "W02"]


def test_an_unknown_window_refuses_the_whole_request_and_issues_nothing(hall):
    before = EnrollmentCode.objects.count()
    with pytest.raises(CommandError, match="'W99'.*no code issued"):
        enroll_codes("--window", "W02", "--window", "W99", "--format", "json")
    assert EnrollmentCode.objects.count() == before


def test_the_codes_are_made_in_one_transaction(hall, monkeypatch):
    """A failure after some codes were made (the database, say) leaves none of them usable."""
    from central.ratings.management.commands import enroll_code
    made = []

    def issue_then_fail(window, hours):
        if made:
            raise RuntimeError("database gone")
        made.append(auth.issue_code(window, hours)[0])
        return made[-1], EnrollmentCode.objects.latest("created_at")

    monkeypatch.setattr(enroll_code, "issue_code", issue_then_fail)
    before = EnrollmentCode.objects.count()
    with pytest.raises(RuntimeError):
        enroll_codes("--window", "W02", "--window", "W03", "--format", "json")
    assert EnrollmentCode.objects.count() == before
    with pytest.raises(auth.AuthError, match="unknown enrollment code"):
        auth.enroll(made[0])


def test_windows_from_a_file_and_every_unenrolled_window(hall, tmp_path):
    listed = tmp_path / "windows.txt"
    listed.write_text("# hall 2, first floor\nW03\n\nW02   # by the door\n", encoding="utf-8")
    out, _ = enroll_codes("--windows-from", str(listed), "--format", "json")
    assert [c["window"] for c in json.loads(out)["codes"]] == ["W03", "W02"]

    out, _ = enroll_codes("--all-unenrolled", "--format", "json")  # the hall fixture enrolled W01 only
    assert [c["window"] for c in json.loads(out)["codes"]] == ["W02", "W03"]
    Terminal.objects.filter(window__code="W01").update(revoked_at=datetime.now(timezone.utc))
    out, _ = enroll_codes("--all-unenrolled", "--format", "json")
    assert [c["window"] for c in json.loads(out)["codes"]] == ["W01", "W02", "W03"]

    with pytest.raises(CommandError, match="name at least one window"):
        enroll_codes("--format", "json")


def test_one_window_as_a_technician_types_it(hall):
    out, err = enroll_codes("--window", "W02")
    code = out.strip()
    assert auth.CODE_FORM.match(code) and "W02" in err and code not in err


def test_the_command_line_spelling_prints_json_on_stdout_only(tmp_path):
    """What the playbook runs: ``rating-central enroll-code`` as a process, codes on stdout alone."""
    import os
    env = {**os.environ, "RATING_CENTRAL_DATA": str(tmp_path)}
    env.pop("RATING_CENTRAL_DATABASE_URL", None)
    central = str(BIN / "rating-central")
    for step in (["migrate", "--verbosity", "0"], ["load_demo"]):
        subprocess.run([central, *step], env=env, check=True, capture_output=True, timeout=120)
    done = subprocess.run([central, "enroll-code", "--window", "W01", "--window", "W02", "--format", "json"],
                          env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    codes = json.loads(done.stdout)["codes"]
    assert [c["window"] for c in codes] == ["W01", "W02"]
    assert all(c["code"] not in done.stderr for c in codes)
    refused = subprocess.run([central, "enroll-code", "--window", "W01", "--window", "NOPE", "--format", "json"],
                             env=env, capture_output=True, text=True, timeout=60)
    assert refused.returncode != 0 and "no code issued" in refused.stderr and refused.stdout == ""


@pytest.mark.parametrize("hours", ["nan", "inf", "1e9"])
def test_a_validity_no_code_should_have_is_refused_before_any_code_is_issued(hall, hours):
    """``--hours nan`` or ``inf`` was a traceback from deep in the time arithmetic, and a code valid
    for a hundred thousand years was issued: a key to a window that outlived every visit."""
    before = EnrollmentCode.objects.count()
    with pytest.raises(CommandError, match="--hours must be a number of hours up to 744"):
        enroll_codes("--window", "W01", "--hours", hours)
    assert EnrollmentCode.objects.count() == before
