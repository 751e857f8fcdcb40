"""The window adapter: the session rules with real records in a real database, across a kill -9."""

import json
import shutil
import signal
import subprocess
import sys
import textwrap

import pytest

from terminal import config as config_module
from terminal.content import Content
from terminal.core.channels import InputDevice
from terminal.core.levels import Level
from terminal.core.session import SessionRefused, State
from terminal.store import Store
from terminal.window import Window

from conftest import ROOT


def test_unknown_badge_changes_nothing_and_known_ones_log_in_out_and_switch(window):
    result = window.swipe("  9999999999 ")
    assert not result.known and "未登记" in result.message and window.state is State.PAUSED
    assert window.swipe("").known is False
    assert window.swipe("0004521873").message == "李明华 已登录" and window.staff.name == "李明华"
    assert window.swipe("0004521874").staff.staff_no == "SZ0102" and window.staff.name == "王晓燕"
    assert window.swipe("0004521874").message == "王晓燕 已退出" and window.state is State.PAUSED
    kinds = [k for (k,) in window.store.db.execute("SELECT kind FROM events ORDER BY seq")]
    assert kinds == ["login", "logout", "login", "logout"]


def test_records_carry_the_window_department_case_and_press_time(window):
    window.swipe("0004521873")
    service = window.invite(case_no="C-1", item_code="ITEM-9")
    with pytest.raises(SessionRefused):
        window.invite(case_no="C-2")
    window.press(Level.SATISFIED, InputDevice.BUTTON_BOX)
    (payload,) = window.store.db.execute("SELECT payload FROM ratings").fetchone()
    wire = json.loads(payload)
    assert (wire["case_no"], wire["item_code"], wire["session_id"], wire["dept_code"], wire["channel"]) == \
        ("C-1", "ITEM-9", service.session_id, "11440100MB2C000010", 5)
    assert window.report(service.session_id)["rated"] is True and window.last_level is Level.SATISFIED


def test_a_press_survives_kill_9_during_the_reasons_screen(terminal_config, tmp_path):
    """Power cut while the rater is choosing reasons: on restart the rating is there, reasons missing."""
    config = terminal_config()
    child = textwrap.dedent(f"""
        import sys, time
        sys.path.insert(0, {str(ROOT)!r})
        from terminal import config as c
        from terminal.content import Content
        from terminal.core.channels import InputDevice
        from terminal.store import Store
        from terminal.window import Window
        cfg = c.load({str(config)!r})
        w = Window(cfg, Store(cfg.db_path), Content.load(cfg.content_dir))
        w.swipe("0004521873"); w.invite(case_no="C-CUT"); w.press(1, InputDevice.TOUCHSCREEN)
        print(w.state.value, flush=True)
        time.sleep(60)
    """)
    proc = subprocess.Popen([sys.executable, "-c", child], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "reasons"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    loaded = config_module.load(config)
    store = Store(loaded.db_path)
    assert store.db.execute("SELECT count(*) FROM ratings").fetchone() == (0,)  # only held so far
    Window(loaded, store, Content.load(loaded.content_dir))  # the kiosk starts again
    rows = store.db.execute("SELECT level, json_extract(payload, '$.case_no'), json_extract(payload, '$.reasons') "
                            "FROM ratings").fetchall()
    assert rows == [(1, "C-CUT", "[]")]
    assert store.db.execute("SELECT count(*) FROM held").fetchone() == (0,)
    store.close()


def test_full_storage_never_thanks(window):
    window.swipe("0004521873")
    window.invite()
    told = []
    window.listeners.append(lambda what, detail: told.append(what))
    pages = window.store.db.execute("PRAGMA page_count").fetchone()[0]
    window.store.db.execute(f"PRAGMA max_page_count = {pages}")  # SQLite itself now says: full
    for _ in range(50):  # fill what room the last pages have left
        window.press(Level.VERY_SATISFIED, InputDevice.TOUCHSCREEN)
        if window.fault:
            break
        window.session.tick(window.monotonic() + 3600)
        window.invite()
    assert window.fault and "full" in window.fault and told[-1] == "fault"
    assert told[-2] != "say"  # the press that could not be kept got no thank-you
    with pytest.raises(SessionRefused) as refused:
        window.invite()
    assert refused.value.code == "out_of_service"


def test_device_health_is_kept_for_the_heartbeat_only_when_it_changes(window):
    box = {"device": "button_box", "port": "/dev/rating-box", "connected": True, "firmware": "0.2.0",
           "seconds_since_heard": 0.4}
    window.note_devices([box])
    assert window.store.state()["devices"] == [{k: v for k, v in box.items() if k != "seconds_since_heard"}]
    window.store.set_state(devices="overwritten")  # so a second write would show
    window.note_devices([{**box, "seconds_since_heard": 3.1}])  # only the clock moved: nothing written
    assert window.store.state()["devices"] == "overwritten"
    window.note_devices([{**box, "connected": False}])  # unplugged: written
    assert window.store.state()["devices"][0]["connected"] is False


def test_a_failure_inside_the_window_is_survived_counted_and_the_next_press_recorded(window, monkeypatch):
    """What a device thread calls never raises: a box's thread lives on to send the next press."""
    from terminal.core.channels import InputDevice
    window.swipe("0004521873")
    real = window.recorder.carry_out
    calls = {"n": 0}

    def breaks_once(effects):
        calls["n"] += 1
        if calls["n"] == 1:
            raise RuntimeError("a bug met by one record")
        return real(effects)

    monkeypatch.setattr(window.recorder, "carry_out", breaks_once)
    assert window.device_key("press", 5, InputDevice.BUTTON_BOX) is None  # no exception reaches the thread
    assert window.errors == 1 and "a bug met by one record" in window.store.state()["errors"]["last"]
    window.tick()
    window.invite(case_no="C-NEXT")
    window.device_key("press", 4, InputDevice.BUTTON_BOX)
    rows = window.store.db.execute("SELECT level FROM ratings").fetchall()
    assert rows[-1] == (4,)


def test_a_rating_storage_refuses_waits_unthanked_and_is_kept_once_storage_works(window):
    """Locked past its busy timeout (or an I/O error, a file gone read-only) the database refuses
    the press: the terminal goes out of service, nobody is thanked, the invite API does not call
    the case rated, and the press is kept as soon as storage works again. Before, any failure but
    "full" was swallowed: the case was reported rated, the rating was gone and service went on."""
    import sqlite3

    from terminal import window as window_module
    clock = [1000.0]
    window.monotonic = lambda: clock[0]
    window.swipe("0004521873")
    service = window.invite(case_no="CASE-42")
    told = []
    window.listeners.append(lambda what, detail: told.append((what, detail)))
    window.store.db.execute("PRAGMA busy_timeout = 50")
    other = sqlite3.connect(window.store.path, timeout=0)
    other.execute("BEGIN IMMEDIATE")  # another writer holds the lock
    window.press(Level.VERY_SATISFIED, InputDevice.TOUCHSCREEN)
    assert window.fault and "locked" in window.fault and ("say", "thanks") not in told
    assert window.report(service.session_id)["rated"] is False
    assert window.report(service.session_id)["outcome"] == "unsaved"
    with pytest.raises(SessionRefused) as refused:
        window.invite()
    assert refused.value.code == "out_of_service"
    other.rollback()
    window.tick()  # not yet due: tried again only every RETRY_S
    assert window.fault
    clock[0] += window_module.RETRY_S
    window.tick()
    assert window.fault is None and ("fault", None) in told
    assert window.report(service.session_id)["rated"] is True
    (case_no, level), = window.store.db.execute(
        "SELECT json_extract(payload, '$.case_no'), level FROM ratings").fetchall()
    assert (case_no, level) == ("CASE-42", 5)
    other.close()


def test_a_rating_kept_on_a_retry_is_rated_even_if_what_follows_it_fails(window, monkeypatch):
    """Storage that takes the waiting rating again and then refuses the event behind it: the
    rating is on disk, so its session says rated (not unsaved), while the event waits."""
    import sqlite3

    from terminal import window as window_module
    from terminal.store import StoreError
    clock = [1000.0]
    window.monotonic = lambda: clock[0]
    window.swipe("0004521873")
    service = window.invite(case_no="CASE-43")
    window.store.db.execute("PRAGMA busy_timeout = 50")
    other = sqlite3.connect(window.store.path, timeout=0)
    other.execute("BEGIN IMMEDIATE")
    window.press(Level.VERY_SATISFIED, InputDevice.TOUCHSCREEN)  # refused: waits
    window.logout()  # its event waits behind it
    assert window.report(service.session_id)["outcome"] == "unsaved"
    other.rollback()
    other.close()

    def refuse_events(event):
        raise StoreError("cannot record event: disk I/O error")
    monkeypatch.setattr(window.store, "record_event", refuse_events)
    clock[0] += window_module.RETRY_S
    window.tick()
    assert window.report(service.session_id)["rated"] is True  # on disk now
    assert window.fault and [type(e).__name__ for e in window.unrecorded] == ["Log"]
    assert window.store.db.execute("SELECT count(*) FROM ratings").fetchone()[0] == 1


def test_a_rating_no_record_can_hold_is_never_thanked_nor_reported_rated(window, caplog):
    """A rating whose record cannot be made (here the window code is longer than a record holds;
    a staff number or terminal id would do the same) fails as a storage refusal does: out of
    service, no thank-you, the case ``unsaved``, logged once. Before, only StoreError was caught:
    the session went to THANKS and the invite API said ``rated: true`` with nothing stored."""
    from dataclasses import replace

    from terminal import window as window_module
    clock = [1000.0]
    window.monotonic = lambda: clock[0]
    window.swipe("0004521873")
    service = window.invite(case_no="CASE-65")
    window.config = window.recorder.config = replace(
        window.config, terminal=replace(window.config.terminal, window="W" * 65))
    told = []
    window.listeners.append(lambda what, detail: told.append((what, detail)))
    window.press(Level.VERY_SATISFIED, InputDevice.BUTTON_BOX)
    assert window.fault and "window" in window.fault
    from firmware import boxproto
    from hardware.buttonbox import led_for
    assert led_for(window.state, window.fault) == boxproto.LED_ERROR  # the box's own thanks light put right
    assert ("say", "thanks") not in told and ("state", State.THANKS) not in told and told[-1][0] == "fault"
    assert window.report(service.session_id) == {**window.report(service.session_id), "outcome": "unsaved",
                                                 "rated": False}
    with pytest.raises(SessionRefused) as refused:
        window.invite()
    assert refused.value.code == "out_of_service"
    for _ in range(3):  # tried again, refused again: logged once, never thanked
        clock[0] += window_module.RETRY_S
        window.tick()
    assert window.fault and ("say", "thanks") not in told
    assert sum("cannot record" in r.getMessage() for r in caplog.records) == 1
    assert window.errors == 0  # a refusal handled, not a failure survived
    assert window.store.db.execute("SELECT count(*) FROM ratings").fetchone() == (0,)


def test_a_flood_of_presses_keeps_its_evidence_in_a_bounded_number_of_events(window):
    """A box (or GPIO buttons) sending presses without end, while nobody is logged in: each one
    was a misuse event on disk, without bound. Now at most MISUSE_BURST of them per
    MISUSE_WINDOW_S, then one event of why ``flood`` that says how many more there were."""
    from terminal.core import session as session_module
    clock = [1000.0]
    window.monotonic = lambda: clock[0]
    for _ in range(3000):  # paused: every press is misuse
        window.device_key("press", 3, InputDevice.BUTTON_BOX)
        clock[0] += 0.05
    rows = window.store.db.execute("SELECT json_extract(payload, '$.why') FROM events").fetchall()
    assert len(rows) == session_module.MISUSE_BURST and set(rows) == {("paused",)}
    clock[0] += session_module.MISUSE_WINDOW_S
    window.tick()  # the window is over: its summary
    (why, detail), = window.store.db.execute(
        "SELECT json_extract(payload, '$.why'), json_extract(payload, '$.detail') FROM events "
        "ORDER BY seq DESC LIMIT 1").fetchall()
    suppressed = 3000 - session_module.MISUSE_BURST
    assert why == "flood" and json.loads(detail) == {"suppressed": suppressed, "why": {"paused": suppressed}}
    window.device_key("press", 3, InputDevice.BUTTON_BOX)  # a new window: kept one by one again
    assert window.store.db.execute("SELECT count(*) FROM events").fetchone() == (session_module.MISUSE_BURST + 2,)


def test_what_waits_for_refusing_storage_is_bounded_ratings_before_events(window, monkeypatch):
    """While storage refuses, records wait in memory, at most MAX_UNRECORDED: the rating waiting
    stays, the events give way (a child hammering the keys of a terminal out of service). The
    bound once named a type it had not imported, so the first press past it stopped the window."""
    from terminal import window as window_module
    from terminal.store import StoreError
    monkeypatch.setattr(window_module, "MAX_UNRECORDED", 5)

    def refuse(*_):
        raise StoreError("cannot record: disk I/O error")
    clock = [1000.0]
    window.monotonic = lambda: clock[0]
    window.swipe("0004521873")
    service = window.invite(case_no="CASE-77")
    monkeypatch.setattr(window.store, "record", refuse)
    monkeypatch.setattr(window.store, "record_event", refuse)
    window.press(Level.VERY_SATISFIED, InputDevice.BUTTON_BOX)  # the rating waits
    for _ in range(12):
        window.press(Level.DISSATISFIED, InputDevice.BUTTON_BOX)  # misuse while out of service
        clock[0] += 1
    assert window.errors == 0
    assert len(window.unrecorded) == 5
    assert [type(e).__name__ for e in window.unrecorded].count("Commit") == 1
    assert window.report(service.session_id)["outcome"] == "unsaved"


def test_a_badge_on_two_roster_entries_logs_in_neither(terminal_config, tmp_path):
    """A card reissued to a new colleague while the old entry keeps it: the roster then gives one
    badge to two people. It logged in the first by staff number, always, so every service of the
    other was rated under the first's name; now it logs in nobody and says so, until the roster is put right."""
    config = config_module.load(terminal_config())
    folder = tmp_path / "content-twice"
    shutil.copytree(config.content_dir, folder)
    raw = json.loads((folder / "content.json").read_text(encoding="utf-8"))
    raw["staff"][1]["badge_id"] = raw["staff"][0]["badge_id"]
    (folder / "content.json").write_text(json.dumps(raw, ensure_ascii=False), encoding="utf-8")
    store = Store(config.db_path)
    try:
        window = Window(config, store, Content.load(folder))
        result = window.swipe(raw["staff"][0]["badge_id"])
        assert not result.known and window.state is State.PAUSED and window.staff is None
        assert store.db.execute("SELECT count(*) FROM events WHERE kind = 'login'").fetchone() == (0,)
        assert window.swipe(raw["staff"][2]["badge_id"]).known  # the others' badges still work
    finally:
        store.close()


def test_content_that_arrives_during_a_session_rules_from_the_next_calm_moment(window):
    """Sync swapped in content while a rater was on the rating screen: its rules were meant for the
    next idle moment but were dropped, kept stale until some later content change. The kiosk showed
    the new reason tags while the session refused them, so a rater's chosen reason was lost."""
    from dataclasses import replace
    window.swipe("0004521873")
    window.invite(case_no="C-NEW-TAGS")
    added = {"code": "queue", "label": "排队时间长", "label_en": "Long queue"}
    window.reload(replace(window.content, reason_tags=[*window.content.reason_tags, added],
                          settings={**window.content.settings, "invite_timeout_s": 20}))
    assert window.rules.invite_timeout_s == 10.0  # not in the middle of this session
    window.press(Level.SATISFIED, InputDevice.TOUCHSCREEN)
    assert window.state is State.THANKS and window.rules.invite_timeout_s == 20.0
    window.session.deadline = 0  # the thank-you is over
    window.tick()
    window.invite(case_no="C-NEXT")
    window.press(Level.DISSATISFIED, InputDevice.TOUCHSCREEN)
    window.submit(["queue"], "")
    (payload,) = window.store.db.execute("SELECT payload FROM ratings WHERE payload LIKE '%C-NEXT%'").fetchone()
    assert json.loads(payload)["reasons"] == ["queue"] and window.errors == 0


def test_a_window_retires_only_once_no_session_is_in_progress_and_then_takes_nothing(terminal_config):
    """Enrolled again while the window runs, its process leaves for systemd to start it as the new
    identity (``Reenrollment``): never mid-session (one rating, one identity), never on the thank-you
    screen a rater still reads, and after that it takes no press, badge or invitation it could not
    finish."""
    config = config_module.load(terminal_config())
    store = Store(config.db_path)
    now = [1000.0]
    window = Window(config, store, Content.load(config.content_dir), monotonic=lambda: now[0])
    window.swipe("0004521873")
    window.invite(case_no="C-1")
    assert window.retire_when_calm() is False  # invited
    window.press(Level.DISSATISFIED, InputDevice.TOUCHSCREEN)
    assert window.state is State.REASONS and window.retire_when_calm() is False
    window.submit(["slow"])
    assert window.state is State.THANKS and window.retire_when_calm() is False
    now[0] += 4  # thanks_seconds 3
    window.tick()
    assert window.state is State.IDLE and window.retire_when_calm() is True
    records = store.counts()["pending"], store.counts("events")["pending"]
    window.press(Level.SATISFIED, InputDevice.BUTTON_BOX)  # not even a misuse event: no session to flag it in
    with pytest.raises(SessionRefused) as refused:
        window.invite(case_no="C-2")
    assert refused.value.code == "out_of_service"
    window.swipe("0004521873")
    window.tick()
    assert window.state is State.IDLE and window.retire_when_calm() is True
    assert (store.counts()["pending"], store.counts("events")["pending"]) == records
    (wire,) = [json.loads(p) for (p,) in store.db.execute("SELECT payload FROM ratings")]
    assert (wire["case_no"], wire["level"], wire["reasons"]) == ("C-1", 2, ["slow"])
    store.close()


def test_a_window_does_not_retire_while_records_wait_in_memory_for_storage(terminal_config):
    """A press storage refused waits in memory (``unrecorded``): leaving then would lose it."""
    config = config_module.load(terminal_config())
    store = Store(config.db_path)
    now = [1000.0]
    window = Window(config, store, Content.load(config.content_dir), monotonic=lambda: now[0], screen=False)
    window.swipe("0004521873")
    window.invite(case_no="C-1")
    store.db.execute("PRAGMA query_only = ON")  # storage refuses every write, as a card gone read-only
    window.press(Level.SATISFIED, InputDevice.BUTTON_BOX)
    assert window.unrecorded and window.fault
    now[0] += 60
    window.tick()
    assert window.state in (State.IDLE, State.THANKS) and window.retire_when_calm() is False
    store.db.execute("PRAGMA query_only = OFF")
    now[0] += 60
    window.tick()
    window.tick()
    assert not window.unrecorded and window.state is State.IDLE and window.retire_when_calm() is True
    assert store.counts()["pending"] == 1
    store.close()
