"""Telephone call-backs (电话回访): a task for every bad rating with a known number; a quarterly sample
per window that its seed reproduces and that never draws a case twice; what a call finds is
recorded, its satisfaction kept on the configured channel without replacing the case's rating;
the quarter's figures on the statistics page; the number shown only to a caller, each time noted."""

import datetime

import pytest
from django.contrib.auth.models import User
from django.test import Client
from django.utils import timezone

from central.ratings import callbacks, cases
from central.ratings.models import BusinessSystem, CallbackTask, Case, Policy, Rating
from terminal.core.levels import Level

from conftest import ingest_ratings, make_rating, race

pytestmark = [pytest.mark.central, pytest.mark.django_db]
QUARTER = callbacks.quarter_of(timezone.localdate())


def report_many(n: int, window: str, staff: str, mobile: bool = True, prefix: str = "C") -> list[Case]:
    system = BusinessSystem.objects.get_or_create(system_id="S-BIZ", defaults={"name": "业务系统", "secret": "b" * 43})[0]
    start, _ = callbacks.quarter_bounds(QUARTER)
    made = []
    for i in range(n):
        done = max(start + datetime.timedelta(hours=2 + i), timezone.now() - datetime.timedelta(hours=1 + i))
        made.append(cases.report(system, {
            "case_no": f"{prefix}-{window}-{i:03d}", "window": window, "staff_no": staff, "status": "completed",
            **({"mobile": f"1380000{i:04d}"} if mobile else {}),
            "accepted_at": (done - datetime.timedelta(minutes=30)).isoformat(), "completed_at": done.isoformat()}).case)
    return made


def test_the_sample_is_reproducible_from_its_seed_and_never_draws_a_case_twice(hall):
    report_many(25, "W01", "SZ0101")
    report_many(8, "W02", "SZ0201")
    report_many(5, "W01", "SZ0101", mobile=False, prefix="N")  # no number: never drawn
    first = [t.case.case_no for t in callbacks.sample(QUARTER, "seed-A", per_window=10)]
    assert len(first) == 18 and sum(c.startswith("C-W02") for c in first) == 8  # all W02 has, 10 of W01's
    assert not any(c.startswith("N-") for c in first)
    CallbackTask.objects.all().delete()
    assert [t.case.case_no for t in callbacks.sample(QUARTER, "seed-A", per_window=10)] == first  # same seed, same draw
    again = [t.case.case_no for t in callbacks.sample(QUARTER, "seed-A", per_window=10)]
    assert len(again) == 10 and not set(again) & set(first)  # W01's other 15: 10 more, none drawn before
    assert CallbackTask.objects.filter(reason="sample").values("case").distinct().count() == 28
    CallbackTask.objects.all().delete()
    other = [t.case.case_no for t in callbacks.sample(QUARTER, "seed-B", per_window=10)]
    assert sorted(other) != sorted(first)  # another seed, another draw
    with pytest.raises(ValueError):
        callbacks.quarter_bounds("2026Q5")


def test_a_bad_rating_gets_a_call_back_and_the_call_keeps_its_own_figures(hall):
    (case,) = report_many(1, "W01", "SZ0101")
    bad = make_rating(Level.VERY_DISSATISFIED, terminal_id=hall.terminal_id, case_no=case.case_no, reasons=("slow",))
    good = make_rating(Level.VERY_SATISFIED, terminal_id=hall.terminal_id)  # no case: no number to call
    assert ingest_ratings(hall, bad, good) == ["accepted", "accepted"]
    assert callbacks.open_for_bad_ratings() == 1 and callbacks.open_for_bad_ratings() == 0
    task = CallbackTask.objects.get()
    assert (task.reason, task.rating.rating_id, task.state) == ("bad_rating", bad.id, "open")
    Policy.objects.update_or_create(pk=1, defaults={"callback_channel": 9})  # this province codes call-backs 9
    admin = User.objects.create_superuser("caller", password="pw-caller-Qx7k")
    client = Client()
    client.force_login(admin)
    listing = client.get("/admin/ratings/callbacktask/").content.decode()
    assert "138****0000" in listing and "13800000000" not in listing  # masked in the list
    page = client.get(f"/admin/ratings/callbacktask/{task.pk}/change/").content.decode()
    assert "13800000000" in page  # the caller needs the number: shown here, and noted
    task.refresh_from_db()
    assert [entry["by"] for entry in task.number_shown] == ["caller"]
    reply = client.post(f"/admin/ratings/callbacktask/{task.pk}/change/",
                        {"outcome": "reached", "level": "4", "notes": "已整改，表示满意"})
    assert reply.status_code == 302, reply.content[:500]
    task.refresh_from_db()
    assert (task.state, task.level, task.called_by, task.notes) == ("reached", 4, admin, "已整改，表示满意")
    given = Rating.objects.get(rating_id=task.rating_id_given)
    assert (given.channel, given.device, given.level, given.excluded, given.flags) == (9, "telephone", 4, True,
                                                                                        ["duplicate_case"])
    assert Rating.objects.get(rating_id=bad.id).case_counted  # the rater's own rating still counts
    figures = callbacks.figures()[0]
    assert (figures.quarter, figures.tasks, figures.reached, figures.rated, figures.satisfied) == (QUARTER, 1, 1, 1, 1)
    stats_page = client.get("/stats/").content.decode()
    assert "电话回访" in stats_page and "100.0%" in stats_page


def test_a_call_backs_level_is_fixed_once_it_became_a_rating(hall):
    """Recording the task again may add notes; changing the level would leave the figures and the
    stored rating disagreeing, so it is refused, in the admin with the reason."""
    (case,) = report_many(1, "W01", "SZ0101")
    (task,) = callbacks.sample(QUARTER, "s", per_window=1)
    caller = User.objects.create_superuser("caller", password="pw-caller-Qx7k")
    callbacks.record(task, True, Level.VERY_DISSATISFIED, "很不满意", caller)
    task = CallbackTask.objects.get(pk=task.pk)
    for reached, level in ((True, Level.VERY_SATISFIED), (False, None)):
        with pytest.raises(callbacks.Refused, match="不能再改"):
            callbacks.record(task, reached, level, "改口", caller)
    task = CallbackTask.objects.get(pk=task.pk)
    assert task.level == Rating.objects.get(rating_id=task.rating_id_given).level == 1 and task.notes == "很不满意"
    callbacks.record(task, True, Level.VERY_DISSATISFIED, "补记：已转工单", caller)  # the same level: notes only
    assert CallbackTask.objects.get(pk=task.pk).notes == "补记：已转工单" and Rating.objects.count() == 1

    client = Client()
    client.force_login(caller)
    reply = client.post(f"/admin/ratings/callbacktask/{task.pk}/change/", {"outcome": "reached", "level": "5"})
    assert reply.status_code == 200 and "不能再改" in reply.content.decode()  # the form, with the reason
    assert CallbackTask.objects.get(pk=task.pk).level == 1


@pytest.mark.django_db(transaction=True)
def test_two_callers_saving_one_task_at_once_make_one_rating(hall):
    """Two callers have the same task open (each page loaded before either saved) and both record the
    call: one rating of the call, the one the task names; a different level from the second is
    refused with the reason, never a second rating."""
    report_many(1, "W01", "SZ0101")
    (task,) = callbacks.sample(QUARTER, "s", per_window=1)
    first, second, third = (CallbackTask.objects.get(pk=task.pk) for _ in range(3))
    caller = User.objects.create_superuser("caller", password="pw-caller-Qx7k")
    race(lambda: callbacks.record(first, True, Level.SATISFIED, "满意", caller),
         lambda: callbacks.record(second, True, Level.SATISFIED, "满意（另一位回访员）", caller))
    with pytest.raises(callbacks.Refused, match="不能再改"):
        callbacks.record(third, True, Level.VERY_DISSATISFIED, "改口", caller)
    assert list(Rating.objects.values_list("rating_id", "case_counted")) == [
        (CallbackTask.objects.get(pk=task.pk).rating_id_given, True)]


def test_the_sample_command_prints_what_it_drew(hall):
    import io

    from django.core.management import call_command
    report_many(3, "W01", "SZ0101")
    out = io.StringIO()
    call_command("callback_sample", "--quarter", QUARTER, "--seed", "s1", "--per-window", "2", stdout=out,
                 stderr=io.StringIO())
    assert len(out.getvalue().splitlines()) == 2 and all(line.startswith("W01\tC-W01-") for line in out.getvalue().splitlines())


def test_a_department_manager_sees_only_their_departments_call_backs(hall):
    """The statistics page's call-back figures are limited to the manager's windows, as its other
    figures are: another department's call-backs are not theirs to see."""
    import io

    from django.core.management import call_command

    from central.ratings.models import Window
    w01, w02 = Window.objects.get(code="W01"), Window.objects.get(code="W02")
    assert w01.department_id != w02.department_id
    report_many(3, "W02", "SZ0201")
    report_many(1, "W01", "SZ0101")
    root = User.objects.create_superuser("root-scope", password="pw-root-scope-Qx7k")
    for task in callbacks.sample(QUARTER, "seed", per_window=3):
        callbacks.record(task, True, Level.VERY_DISSATISFIED, "", root)
    call_command("add_user", "mgr1", "--role", "department_manager", "--department", w01.department.code,
                 "--password-stdin", stdin=io.StringIO("pw-mgr1-scope-Qx7k\n"), stderr=io.StringIO())
    assert shown(User.objects.get(username="mgr1"))[:4] == ["1", "1", "1", "0"]  # W01's one call-back only
    assert shown(root)[:4] == ["4", "4", "4", "0"]  # the whole hall
    assert callbacks.figures(departments=[])[0].tasks == 0


def shown(user) -> list[str]:
    """The statistics page's call-back figures of this quarter, as ``user`` sees them."""
    import re
    client = Client()
    client.force_login(user)
    table = re.search(r'<table id="callbacks">.*?</table>', client.get("/stats/").content.decode(), re.S).group(0)
    return re.findall(r"<td>([^<]*)</td>", re.search(rf'<td class="l">{QUARTER}</td>(.*?)</tr>', table, re.S).group(1))


def test_call_back_figures_stay_with_the_cases_department_when_the_window_moves(hall):
    """The statistics page counted a call-back for its window's department now: once W02 moved, its
    past call-backs left its old department's figures for the new one's, while the tasks themselves
    (and their cases) stayed the old department's."""
    import io

    from django.core.management import call_command

    from central.ratings.models import Window
    w01, w02 = Window.objects.get(code="W01"), Window.objects.get(code="W02")
    report_many(1, "W02", "SZ0201")
    (task,) = callbacks.sample(QUARTER, "seed", per_window=1)
    callbacks.record(task, True, Level.SATISFIED, "", User.objects.create_superuser("root-move", password="pw-r-Qx7k"))
    for name, department in (("mgr-old", w02.department), ("mgr-new", w01.department)):
        call_command("add_user", name, "--role", "department_manager", "--department", department.code,
                     "--password-stdin", stdin=io.StringIO(f"pw-{name}-scope-Qx7k\n"), stderr=io.StringIO())
    Window.objects.filter(pk=w02.pk).update(department=w01.department)  # the hall reorganised: W02 moved
    assert shown(User.objects.get(username="mgr-old"))[:4] == ["1", "1", "1", "1"]
    assert shown(User.objects.get(username="mgr-new"))[:4] == ["0", "0", "0", "0"]


def test_a_call_back_stays_with_its_cases_department_when_the_window_moves(hall):
    """A task was scoped by the window's department now: once W02 moved to another department, that
    department's manager opened its old cases' call-backs, and their numbers in clear, while the
    cases themselves (and their ratings) stayed the first department's."""
    import io

    from django.core.management import call_command

    from central.ratings.models import Window
    w01, w02 = Window.objects.get(code="W01"), Window.objects.get(code="W02")
    (case,) = report_many(1, "W02", "SZ0201")
    (task,) = callbacks.sample(QUARTER, "seed", per_window=1)
    for name, department in (("mgr-old", w02.department), ("mgr-new", w01.department)):
        call_command("add_user", name, "--role", "department_manager", "--department", department.code,
                     "--password-stdin", stdin=io.StringIO(f"pw-{name}-scope-Qx7k\n"), stderr=io.StringIO())
    Window.objects.filter(pk=w02.pk).update(department=w01.department)  # the hall reorganised: W02 moved

    def opened(username: str):
        client = Client()
        client.force_login(User.objects.get(username=username))
        return client.get(f"/admin/ratings/callbacktask/{task.pk}/change/"), client.get(f"/admin/ratings/case/{case.pk}/change/")
    task_page, case_page = opened("mgr-new")
    assert task_page.status_code in (302, 404) and case_page.status_code in (302, 404)
    assert "13800000000" not in task_page.content.decode()
    task_page, case_page = opened("mgr-old")
    assert task_page.status_code == case_page.status_code == 200 and "13800000000" in task_page.content.decode()
    task.refresh_from_db()
    assert [seen["by"] for seen in task.number_shown] == ["mgr-old"]


def test_the_number_is_shown_to_the_caller_who_asked_whatever_else_the_server_is_doing(hall, monkeypatch):
    """The admin is one object serving every request (gunicorn runs threads): the number's page
    kept the request on it, so an auditor's page drawn just after a caller's request began showed
    the auditor the clear number, noted as seen by the caller."""
    from django.contrib.auth.models import Group

    from central.ratings.admin import CallbackTaskAdmin
    report_many(1, "W01", "SZ0101")
    (task,) = callbacks.sample(QUARTER, "s", per_window=1)
    caller = User.objects.create_superuser("caller", password="pw-caller-Qx7k")
    auditor = User.objects.create_user("aud", password="pw-aud-Qx7k", is_staff=True)
    auditor.groups.add(Group.objects.get(name="审计员"))
    client = Client()
    client.force_login(auditor)
    draw = CallbackTaskAdmin.render_change_form

    def meanwhile(self, request, *args, **kwargs):  # the caller's request begins on another thread
        self.get_readonly_fields(type("Request", (), {"user": caller})(), task)
        return draw(self, request, *args, **kwargs)
    monkeypatch.setattr(CallbackTaskAdmin, "render_change_form", meanwhile)
    page = client.get(f"/admin/ratings/callbacktask/{task.pk}/change/").content.decode()
    assert "138****0000" in page and "13800000000" not in page
    assert CallbackTask.objects.get(pk=task.pk).number_shown == []
