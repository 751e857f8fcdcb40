"""Export upward, field by field in both shipped profiles; statistics by their written definitions; the
public page's anonymity; the export documentation kept current."""

import csv
import datetime
import io
import json
from pathlib import Path

import pytest

from central.ratings import exports, stats
from central.ratings.models import Rating
from terminal.core.channels import InputDevice
from terminal.core.levels import Level

from conftest import CST, ingest_ratings, make_rating, streamed_json

pytestmark = [pytest.mark.central, pytest.mark.django_db]
AT = datetime.datetime(2026, 10, 9, 14, 5, 6, tzinfo=CST)


def sample(hall):
    bad = make_rating(Level.VERY_DISSATISFIED, terminal_id=hall.terminal_id, now=AT, case_no="C-2026-77",
                      item_code="11440100MB2C0000104440117001000", reasons=("attitude", "slow"),
                      text="等了很久", device=InputDevice.BUTTON_BOX, rating_no=2, anonymous=False)
    good = make_rating(Level.SATISFIED, terminal_id=hall.terminal_id, now=AT + datetime.timedelta(minutes=1))
    assert ingest_ratings(hall, bad, good) == ["accepted", "accepted"]
    return bad, good


def test_provincial_convention_field_by_field(hall, auditor):
    bad, good = sample(hall)
    body = streamed_json(auditor.get("/exports/provincial.json?from=2026-10-09&to=2026-10-09"))
    assert (body["convention"], body["count"]) == ("provincial", 2)
    first = body["records"][0]
    tags = dict(Rating.objects.none().model._meta.app_config.get_model("ReasonTag").objects.values_list("code", "label"))
    assert first == {
        "evaluateId": bad.id, "dataVersion": 1, "operateType": "add", "projectNo": "C-2026-77",
        "taskCode": "11440100MB2C0000104440117001000", "deptCode": "11440100MB2C000010", "windowCode": "W01",
        "staffNo": "SZ0101", "satisfaction": 1, "pf": 5, "evaluateTime": "2026-10-09 14:05:06", "assessNumber": 2,
        "evalDetail": f"{tags['attitude']},{tags['slow']}", "evalContent": "等了很久", "anonymous": 0,
        "userProp": "", "proStatus": "", "isValid": 1, "isDefault": 0, "rectifyContent": "", "rectifyTime": "",
        "dataSource": "hall-terminal"}
    second = body["records"][1]
    assert (second["satisfaction"], second["pf"], second["anonymous"], second["evalDetail"]) == (4, 4, 1, "")


def test_gbt39046_convention_field_by_field(hall, auditor):
    bad, good = sample(hall)
    Rating.objects.filter(rating_id=good.id).update(excluded=True)  # re-checked out: still exported, flagged
    reply = auditor.get("/exports/gbt39046.csv?from=2026-10-09&to=2026-10-10")
    assert reply["Content-Type"].startswith("text/csv")
    text = b"".join(reply.streaming_content).decode("utf-8")
    assert text.startswith("\ufeff")
    rows = list(csv.DictReader(io.StringIO(text.lstrip("\ufeff"))))
    assert [r["评价编号"] for r in rows] == [bad.id, good.id]
    assert rows[0]["满意度代码"] == "5" and rows[1]["满意度代码"] == "2"  # A.8: 1 = 非常满意 … 5 = 非常不满意
    assert (rows[0]["满意度"], rows[1]["满意度"]) == ("非常不满意", "满意")
    assert rows[0]["评价时间"] == "20261009T140506"  # GB/T 7408 basic format, as table 9 gives it
    assert (rows[0]["办件编号"], rows[0]["实施机构统一社会信用代码"], rows[0]["评价渠道"], rows[0]["评价次数"]) == (
        "C-2026-77", "11440100MB2C000010", "5", "2")
    assert (rows[0]["是否有效"], rows[1]["是否有效"], rows[0]["是否匿名"], rows[0]["行政区划"]) == ("1", "0", "0", "440100")
    assert list(rows[0]) == [f.name for f in exports.shipped()["gbt39046"].fields]


def test_the_json_export_streams_a_chunk_of_ratings_at_a_time(hall, auditor, monkeypatch):
    """The JSON export was built whole (every rating of up to ten years) before its first byte went
    out. Now its records leave as each chunk of ``exports.CHUNK`` ratings is read: no read of
    ratings' data names more than a chunk, the first record is out before the second chunk is read,
    and the document is what it was (its count, last)."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext
    monkeypatch.setattr(exports, "CHUNK", 2)
    made = [make_rating(Level.SATISFIED, terminal_id=hall.terminal_id, now=AT + datetime.timedelta(minutes=i))
            for i in range(5)]
    assert set(ingest_ratings(hall, *made)) == {"accepted"}
    reply = auditor.get("/exports/provincial.json?from=2026-10-09&to=2026-10-09")
    assert reply.status_code == 200 and reply.streaming, "the JSON export is built whole in memory"
    with CaptureQueriesContext(connection) as queries:
        parts = iter(reply.streaming_content)
        out = [next(parts), next(parts)]  # the head, the first record
        reads = lambda: [q["sql"] for q in queries if "r.id IN (" in q["sql"]]  # noqa: E731
        assert len(reads()) == 1
        out += list(parts)
    assert len(reads()) == 3 and all(sql.split("r.id IN (")[1].split(")")[0].count(",") <= 1 for sql in reads())
    body = json.loads(b"".join(out))
    assert (body["convention"], body["from"], body["to"], body["count"]) == ("provincial", "2026-10-09", "2026-10-09", 5)
    assert [r["evaluateId"] for r in body["records"]] == [m.id for m in made]


def test_bad_export_requests_get_clear_errors(hall, auditor):
    assert auditor.get("/exports/national.json").status_code == 400
    assert "日期" in auditor.get("/exports/provincial.json?from=2026-13-01").content.decode()
    assert auditor.get("/exports/provincial.json?from=2026-10-10&to=2026-10-01").status_code == 400
    assert auditor.get("/exports/provincial.xml").status_code == 400


@pytest.mark.parametrize("span", ["from=0001-01-01&to=0001-01-02", "from=9999-12-30&to=9999-12-31"])
@pytest.mark.parametrize("fmt", ["json", "csv"])
def test_an_export_of_days_at_the_calendars_edge_is_empty_not_a_500(hall, auditor, span, fmt):
    """The first and last days a date can name were once turned into times a day either side,
    which Python cannot hold: the export answered 500 (the CSV broke off mid-stream)."""
    auditor.raise_request_exception = False
    reply = auditor.get(f"/exports/gbt39046.{fmt}?{span}")
    assert reply.status_code == 200, reply.content[:300]
    if fmt == "json":
        assert streamed_json(reply)["count"] == 0
    else:
        assert len(b"".join(reply.streaming_content).decode("utf-8-sig").strip().splitlines()) == 1  # the header


def test_export_documentation_is_current():
    doc = Path(__file__).resolve().parent.parent / "docs" / "exports.md"
    assert doc.read_text(encoding="utf-8") == exports.markdown(), "run: rating-central export_docs"


def test_wire_api_reference_is_current():
    from central.ratings import api_docs
    folder = Path(__file__).resolve().parent.parent / "docs" / "reference"
    for name, text in api_docs.documents().items():
        assert (folder / name).read_text(encoding="utf-8") == text, f"{name}: run rating-central api_docs"


def test_statistics_follow_their_definitions(hall, auditor):
    levels = [5, 5, 4, 3, 2, 1, 4, 4]
    ingest_ratings(hall, *[make_rating(Level(lv), terminal_id=hall.terminal_id, now=AT, reasons=("x",))
                           for lv in levels])
    row = stats.totals(stats.Query(AT.date(), AT.date()))
    assert row.levels == [2, 3, 1, 1, 1] and row.total == 8
    assert row.satisfaction_rate == 6 / 8 and row.bad_rate == 2 / 8
    assert row.score == pytest.approx(20 * sum(levels) / 8)  # 70.0
    assert row.stars == 3.5
    daily = stats.table(stats.Query(AT.date() - datetime.timedelta(days=1), AT.date(), "window", "day"))
    assert [(r.key, r.period, r.total) for r in daily] == [("W01", AT.date(), 8)]
    per_window = stats.table(stats.Query(AT.date(), AT.date(), "window"))
    assert [(r.key, r.levels) for r in stats.fold(per_window, "department")] == [
        (r.key, r.levels) for r in stats.table(stats.Query(AT.date(), AT.date(), "department"))]
    monthly = stats.table(stats.Query(AT.date(), AT.date(), "department", "month"))
    assert [(r.key, r.period) for r in monthly] == [("11440100MB2C000010", datetime.date(2026, 10, 1))]
    by_staff = auditor.get("/stats/?by=staff&from=2026-10-09&to=2026-10-09&format=csv").content.decode("utf-8-sig")
    header, first = list(csv.reader(io.StringIO(by_staff)))[:2]
    assert header[-4:] == ["有效评价", "满意率", "满意度得分", "差评率"]
    assert first[:3] == ["1", "李明华（SZ0101）", "SZ0101"] and first[-4:] == ["8", "0.7500", "70.00", "0.2500"]
    page = auditor.get("/stats/?by=week&from=2026-10-09").status_code
    assert page == 400  # not a dimension: a clear error, not a crash


def test_csv_cells_cannot_become_spreadsheet_formulas(hall, auditor):
    ingest_ratings(hall, make_rating(Level.DISSATISFIED, terminal_id=hall.terminal_id, now=AT, reasons=("x",),
                                     text='=HYPERLINK("http://evil.example","点我")'))
    text = b"".join(auditor.get("/exports/provincial.csv?from=2026-10-09&to=2026-10-09").streaming_content)
    row = next(csv.DictReader(io.StringIO(text.decode("utf-8").lstrip("\ufeff"))))
    assert row["evalContent"] == "'" + '=HYPERLINK("http://evil.example","点我")'
    assert streamed_json(auditor.get("/exports/provincial.json?from=2026-10-09&to=2026-10-09"))["records"][0][
        "evalContent"].startswith("=HYPERLINK")  # JSON carries the text as written


def test_figures_are_rounded_half_up_from_the_counts(hall, auditor):
    """Stars and rates were rounded through floats, ties to even: 85 分 got four stars like 75 分,
    and 199 satisfied of 200 (one 非常不满意) showed as 满意率 100%, 差评率 0%."""
    from central.ratings import direct
    from terminal.core.channels import Channel
    now = datetime.datetime.now(CST) - datetime.timedelta(hours=1)
    w01 = [5, 4, 4, 4] + [5] * 195 + [1]  # 200 ratings, one bad: 满意率 99.5%
    assert set(ingest_ratings(hall, *[make_rating(Level(lv), terminal_id=hall.terminal_id, now=now,
                                                  reasons=("x",) if lv < 3 else ()) for lv in w01])) == {"accepted"}
    for lv in (4, 4, 4, 3):  # 75 分
        direct.rate(window_code="W02", level=Level(lv), channel=Channel.MOBILE, device="phone", at=now)
    for lv in (5, 4, 4, 4):  # 85 分
        direct.rate(window_code="W03", level=Level(lv), channel=Channel.MOBILE, device="phone", at=now)
    rows = {r.key: r for r in stats.table(stats.Query(now.date(), now.date()))}
    assert (rows["W02"].score, rows["W02"].stars) == (75, 4.0)
    assert (rows["W03"].score, rows["W03"].stars) == (85, 4.5)
    assert (rows["W01"].satisfaction_text, rows["W01"].bad_text) == ("99.5%", "0.5%")
    day = now.date().isoformat()
    page = auditor.get(f"/stats/?from={day}&to={day}").content.decode()
    assert "<td>99.5%</td>" in page and "0.5%</td>" in page and "<td>100%</td>" not in page
    dashboard = auditor.get(f"/?from={day}&to={day}").content.decode()
    assert '<div class="n ok">99.5%</div>' in dashboard  # 207 of 208 satisfied in the hall, not 100%
    public = auditor.get("/public/").content.decode()
    assert "★★★★☆</span> 4.5" in public and "★★★★☆</span> 4.0" in public
    assert stats.percent(1, 2001) == "0.1%" and stats.percent(2000, 2001) == "99.9%"  # none and all only when so
    assert (stats.percent(0, 3), stats.percent(3, 3), stats.percent(0, 0)) == ("0.0%", "100.0%", "—")
    body = auditor.get(f"/stats/?from={day}&to={day}&format=csv").content.decode("utf-8-sig")
    by_window = {line[2]: line for line in csv.reader(io.StringIO(body))}
    assert by_window["W01"][-3:] == ["0.9950", "99.30", "0.0050"]
