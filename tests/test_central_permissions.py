"""Who sees and edits what: anonymous users reach only the public page and the terminal API; a
department manager sees and works only their department; an auditor reads everything and changes
nothing; a hall administrator edits content and decides re-checks."""

import io

import pytest
from django.contrib.auth.models import Group, User
from django.core.management import call_command

from central.ratings.models import Hall, Notice, Rating, Staff, Terminal, WorkOrder
from terminal.core.levels import Level

from conftest import ingest_ratings, make_rating, streamed_json

pytestmark = [pytest.mark.central, pytest.mark.django_db]
DEPT1, DEPT2 = "11440100MB2C000010", "11440100MB2C000023"  # W01's and W02's departments


@pytest.fixture
def people(hall, client):
    """Ratings at W01 and W02, one bad each, and a user per role: their logged-in clients."""
    from central.ratings import auth
    from central.ratings.models import Window
    code, _ = auth.issue_code(Window.objects.get(code="W02"))
    w02 = auth.enroll(code)
    ingest_ratings(hall, make_rating(Level.DISSATISFIED, terminal_id=hall.terminal_id, reasons=("slow",)),
                   make_rating(Level.VERY_SATISFIED, terminal_id=hall.terminal_id))
    ingest_ratings(w02, make_rating(Level.VERY_DISSATISFIED, terminal_id=w02.terminal_id, window="W02",
                                    staff_no="SZ0201", reasons=("attitude",)))
    clients = {}
    from django.test import Client
    for name, role, dept in [("admin1", "hall_admin", None), ("manager1", "department_manager", DEPT1),
                             ("auditor1", "auditor", None), ("lost", "department_manager", None)]:
        if dept is None and role == "department_manager":

            user = User.objects.create_user(name, password="pw-" + name, is_staff=True)
            user.groups.add(Group.objects.get(name="部门负责人"))  # no department set: sees nothing
        else:
            call_command("add_user", name, "--role", role, *(["--department", dept] if dept else []),
                         "--password-stdin", stdin=io.StringIO("pw-" + name + "-Qx7k\n"), stderr=io.StringIO())
        clients[name] = Client()
        clients[name].force_login(User.objects.get(username=name))  # logging in itself: test_central_hardening
    clients["anonymous"] = client
    return clients


STAFF_PAGES = ["/", "/stats/", "/alerts/", "/exports/provincial.json", "/exports/gbt39046.csv", "/admin/",
               "/admin/ratings/rating/", "/admin/ratings/workorder/"]


def test_anonymous_reaches_only_the_public_page_and_the_terminal_api(people):
    anonymous = people["anonymous"]
    for page in STAFF_PAGES:
        reply = anonymous.get(page)
        assert reply.status_code == 302 and "/admin/login/" in reply["Location"], page
    assert anonymous.get("/public/").status_code == 200
    assert anonymous.get("/api/v1/health").status_code == 200
    unsigned = anonymous.post("/api/v1/ratings", b'{"ratings": []}', content_type="application/json")
    assert unsigned.status_code == 401  # the API answers for itself: no login page, no redirect


def listed_orders(client) -> set[str]:
    page = client.get("/admin/ratings/workorder/")
    assert page.status_code == 200
    return {code for code in ("W01", "W02") if f'<td class="field-window_code">{code}</td>' in page.text}


def test_department_manager_sees_and_works_only_their_department(people):
    manager = people["manager1"]
    assert listed_orders(manager) == {"W01"}
    assert listed_orders(people["auditor1"]) == listed_orders(people["admin1"]) == {"W01", "W02"}
    assert listed_orders(people["lost"]) == set()
    other = WorkOrder.objects.get(window_code="W02")
    assert manager.get(f"/admin/ratings/workorder/{other.pk}/change/").status_code in (302, 404)
    stats = manager.get("/stats/?by=window").text
    assert "W01" in stats and "W02" not in stats
    exported = streamed_json(manager.get("/exports/provincial.json"))
    assert {r["windowCode"] for r in exported["records"]} == {"W01"}
    ratings = manager.get("/admin/ratings/rating/").text
    assert Rating.objects.get(window_code="W02").rating_id not in ratings
    assert Rating.objects.filter(window_code="W01").first().rating_id in ratings
    own = WorkOrder.objects.get(window_code="W01")
    reply = manager.post(f"/admin/ratings/workorder/{own.pk}/change/", change_form(own, advance_to="contacted",
                                                                                  contact_record="已电话联系"))
    assert reply.status_code == 302, reply.content.decode()[:2000]
    own.refresh_from_db()
    assert own.state == "contacted" and own.contact_record == "已电话联系" and own.notes.get().author.username == "manager1"
    assert manager.get("/admin/ratings/staff/add/").status_code == 403
    assert manager.get("/admin/ratings/notice/").status_code == 403


def change_form(order, **fields) -> dict:
    data = {"assignee": "", "contact_record": order.contact_record, "rectification": order.rectification,
            "recheck_reason": order.recheck_reason, "advance_to": "",
            "notes-TOTAL_FORMS": "1", "notes-INITIAL_FORMS": "0", "notes-MIN_NUM_FORMS": "0",
            "notes-MAX_NUM_FORMS": "1000", "notes-0-text": "电话回访记录", "notes-0-order": str(order.pk),
            "_save": "保存"}
    data.update(fields)
    return data


def test_auditor_reads_everything_and_changes_nothing(people):
    auditor = people["auditor1"]
    for page in STAFF_PAGES + ["/admin/ratings/staff/", "/admin/ratings/terminal/", "/admin/ratings/notice/"]:
        assert auditor.get(page).status_code == 200, page
    order = WorkOrder.objects.get(window_code="W01")
    assert auditor.post(f"/admin/ratings/workorder/{order.pk}/change/",
                        change_form(order, advance_to="contacted", contact_record="x")).status_code == 403
    order.refresh_from_db()
    assert order.state == "open"
    assert auditor.get("/admin/ratings/staff/add/").status_code == 403
    staff = Staff.objects.first()
    assert auditor.post(f"/admin/ratings/staff/{staff.pk}/change/", {"name": "改名"}).status_code == 403
    terminal = Terminal.objects.first()
    assert auditor.post("/admin/ratings/terminal/", {"action": "revoke", "_selected_action": [terminal.pk]}
                        ).status_code in (200, 302)
    terminal.refresh_from_db()
    assert terminal.revoked_at is None


def test_hall_admin_edits_content_and_only_they_decide_rechecks(people):
    admin = people["admin1"]
    reply = admin.post("/admin/ratings/notice/add/", {"hall": str(Hall.objects.get().pk), "title": "元旦安排", "body": "1月1日休息",
                                                     "order": "0", "active": "on"})
    assert reply.status_code == 302 and Notice.objects.filter(title="元旦安排").exists()
    order = WorkOrder.objects.get(window_code="W01")
    order.recheck, order.recheck_reason = "requested", "误按"
    order.save()
    decide = {"action": "exclude_after_recheck", "_selected_action": [order.pk]}
    people["manager1"].post("/admin/ratings/workorder/", decide)
    order.refresh_from_db()
    assert order.recheck == "requested"  # a department manager cannot decide
    admin.post("/admin/ratings/workorder/", decide)
    order.refresh_from_db()
    assert order.recheck == "excluded" and order.recheck_by.username == "admin1"
    assert Rating.objects.get(pk=order.rating_id).excluded


def test_no_lookup_in_the_address_reads_what_a_page_hides(people):
    """A list's count answers a lookup in the address: ``?secret__startswith=`` read a terminal's or
    a business system's HMAC key a character at a time (a department manager their own terminals',
    enough to sign ratings as them), and ``?text__contains=`` a number masked in a rater's words."""
    from central.ratings import auth
    system = auth.add_system("排队叫号系统")
    terminal = Terminal.objects.get(window__code="W01")
    ingest_ratings(terminal, make_rating(Level.SATISFIED, terminal_id=terminal.terminal_id, text="请回电13800138000"))
    probes = [(people["manager1"], f"/admin/ratings/terminal/?secret__startswith={terminal.secret[:2]}"),
              (people["auditor1"], f"/admin/ratings/businesssystem/?secret__startswith={system.secret[:2]}"),
              (people["auditor1"], "/admin/ratings/commentforreview/?text__contains=13800138000")]
    for client, probe in probes:
        assert client.get(probe).status_code == 400, probe
    assert people["auditor1"].get("/admin/ratings/commentforreview/?comment_state__exact=pending").status_code == 200


def test_a_department_managers_filters_offer_only_their_own_windows(people):
    """A list's filter offers the values of the rows a user may see: the terminals' list offered
    every window in the hall, other departments' too, to a department manager."""
    from central.ratings.models import Window
    other = Window.objects.get(code="W02")
    for page in ["/admin/ratings/terminal/", "/admin/ratings/staff/", "/admin/ratings/case/", "/admin/ratings/rating/"]:
        listed = people["manager1"].get(page)
        assert listed.status_code == 200 and str(other) not in listed.text and other.name not in listed.text, page
    assert str(other) in people["auditor1"].get("/admin/ratings/terminal/").text


def test_a_rating_counts_for_its_windows_department_of_the_day_after_the_window_moves(people, hall):
    """W01 moved from DEPT1 to DEPT2: its earlier ratings (and their work order) went with it into
    DEPT2's ranking, exports and manager's view, and left DEPT1's, as statistics looked each window's
    department up as it is now. A rating counts for the department of its day, wherever the window goes."""
    from central.ratings import stats
    from central.ratings.models import Department, Window
    day = Rating.objects.get(window_code="W01", level=int(Level.VERY_SATISFIED)).rated_on
    Window.objects.filter(code="W01").update(department=Department.objects.get(code=DEPT2))
    ingest_ratings(Terminal.objects.get(pk=hall.pk), make_rating(Level.SATISFIED, terminal_id=hall.terminal_id))
    by_department = {r.key: r.total for r in stats.table(stats.Query(day, day, "department"))}
    assert by_department == {DEPT1: 2, DEPT2: 2}  # W01's two of before; W02's one and W01's new one
    per_window = stats.table(stats.Query(day, day, "window"))
    assert {r.key: r.total for r in stats.fold(per_window, "department")} == by_department
    assert {r.key: r.total for r in per_window} == {"W01": 3, "W02": 1}
    manager = people["manager1"]  # DEPT1's
    exported = streamed_json(manager.get(f"/exports/provincial.json?from={day}&to={day}"))["records"]
    assert sorted(r["satisfaction"] for r in exported) == [2, 5] and {r["deptCode"] for r in exported} == {DEPT1}
    csv_rows = manager.get(f"/stats/?by=department&from={day}&to={day}&format=csv").content.decode("utf-8-sig")
    assert DEPT1 in csv_rows and DEPT2 not in csv_rows
    everything = streamed_json(people["auditor1"].get(f"/exports/provincial.json?from={day}&to={day}"))["records"]
    assert sorted((r["windowCode"], r["deptCode"]) for r in everything) == [
        ("W01", DEPT1), ("W01", DEPT1), ("W01", DEPT2), ("W02", DEPT2)]
    assert WorkOrder.objects.get(window_code="W01").department.code == DEPT1
    assert listed_orders(manager) == {"W01"}


def test_a_case_page_lists_only_the_managers_departments_ratings(people):
    """A case's page listed every rating naming its number, another department's too (its id's
    start, its level, its channel): a terminal at W02 (DEPT2) that names DEPT1's case shows DEPT1's
    manager nothing of it, and the auditor sees both."""
    from django.utils import timezone

    from central.ratings.models import BusinessSystem, Case, Window
    w01 = Window.objects.get(code="W01")
    system = BusinessSystem.objects.create(system_id="S-CASE", name="测试", secret="s" * 43)
    case = Case.objects.create(case_no="C-SHARED-1", system=system, department=w01.department, window=w01,
                               item_code="X", item_name="事项", status="completed", accepted_at=timezone.now())
    own = make_rating(Level.SATISFIED, case_no=case.case_no, terminal_id=Terminal.objects.get(window=w01).terminal_id)
    w02 = Terminal.objects.get(window__code="W02")
    other = make_rating(Level.VERY_DISSATISFIED, case_no=case.case_no, terminal_id=w02.terminal_id, window="W02",
                        staff_no="SZ0201", reasons=("attitude",))
    assert ingest_ratings(Terminal.objects.get(window=w01), own) == ["accepted"]
    assert ingest_ratings(w02, other) == ["accepted"]  # kept, not counted: the case is W01's
    page = f"/admin/ratings/case/{case.pk}/change/"
    shown = people["manager1"].get(page)
    assert shown.status_code == 200 and own.id[:12] in shown.text
    assert other.id[:12] not in shown.text and "非常不满意" not in shown.text
    audited = people["auditor1"].get(page).text
    assert own.id[:12] in audited and other.id[:12] in audited


def test_terminal_events_stay_with_their_windows_department_of_the_day(people, hall):
    """Terminal events (logins, suspected misuse) were scoped by their window's department now: once
    W01 moved to DEPT2, DEPT1's manager lost W01's past events and DEPT2's gained them, while the
    ratings of the same days stayed DEPT1's. An event keeps the department of its day, as a rating does."""
    from conftest import ingest_events, make_event

    from central.ratings.models import Department, TerminalEvent, Window
    before = make_event("misuse", terminal_id=hall.terminal_id, why="no_session", level=1)
    assert ingest_events(hall, before) == ["accepted"]
    Window.objects.filter(code="W01").update(department=Department.objects.get(code=DEPT2))
    after = make_event("login", terminal_id=hall.terminal_id)
    assert ingest_events(Terminal.objects.get(pk=hall.pk), after) == ["accepted"]
    call_command("add_user", "manager2", "--role", "department_manager", "--department", DEPT2,
                 "--password-stdin", stdin=io.StringIO("pw-manager2-Qx7k\n"), stderr=io.StringIO())
    from django.test import Client
    manager2 = Client()
    manager2.force_login(User.objects.get(username="manager2"))
    link = {e.id: f"/admin/ratings/terminalevent/{TerminalEvent.objects.get(event_id=e.id).pk}/change/"
            for e in (before, after)}
    for client, mine, not_mine in [(people["manager1"], before, after), (manager2, after, before)]:
        listed = client.get("/admin/ratings/terminalevent/")
        assert listed.status_code == 200 and link[mine.id] in listed.text and link[not_mine.id] not in listed.text
        assert client.get(link[mine.id]).status_code == 200
        assert client.get(link[not_mine.id]).status_code in (302, 404)
    everything = people["auditor1"].get("/admin/ratings/terminalevent/").text
    assert link[before.id] in everything and link[after.id] in everything
    assert [TerminalEvent.objects.get(event_id=e.id).department.code for e in (before, after)] == [DEPT1, DEPT2]
