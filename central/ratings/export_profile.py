"""How to speak to one platform upward: an export profile, read from TOML (``profiles/*.toml``, or
a copy edited in the admin). Pure: text in, records out, no database and no I/O.

A profile names each field the platform takes, and for each where its value comes from: one of
our data items (``SOURCES``: a rating's level, its channel, the case's applicant type …) through
the profile's own code list when the platform codes it (``codes = "pf"`` → ``[codes.pf]``), or a
constant. Times are written in the profile's ``time_format`` and ``time_zone``. ``takes`` says
which of our records and changes go to the platform: ``rating`` (every rating a person gave),
``default`` (system default ratings), ``validity`` (a re-check or a real rating changing whether
a rating counts), ``rectification`` (a closed work order's 整改反馈) and ``addition`` (reasons and
a comment the rater added by phone to a terminal's rating, 扫码补充). An update is sent as the
same record (``record.id``) with a higher ``record.version`` and ``record.operation`` "update".

Nothing is guessed: ``Profile.unmapped(in_use)`` names every value we hold for which the profile has
no code, and the push refuses to start until the profile maps it.
"""

from __future__ import annotations

import functools
import tomllib
from dataclasses import dataclass
from datetime import datetime
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from terminal.core.channels import Channel
from terminal.core.levels import Level


class ProfileError(ValueError):
    """A profile that cannot be used, saying which part of it and why."""


#: our data items a profile may send: name -> (kind, meaning). ``coded`` items go through a code list.
SOURCES: dict[str, tuple[str, str]] = {
    "rating_id": ("text", "评价编号（终端生成，全局唯一）"),
    "case_no": ("text", "办件编号"),
    "item_code": ("text", "事项编码"),
    "item_name": ("text", "事项名称"),
    "dept_code": ("text", "实施部门统一社会信用代码（18 位）：评价时窗口所属的部门"),
    "window_code": ("text", "窗口编号"),
    "staff_no": ("text", "工作人员工号"),
    "level": ("coded", "评价等级"),
    "level_name": ("text", "评价等级名称（非常满意 … 非常不满意）"),
    "channel": ("coded", "评价渠道"),
    "rated_at": ("time", "评价时间"),
    "rating_no": ("coded", "评价次数（1 首次、2 追加）"),
    "reasons": ("text", "差评原因标签，逗号分隔"),
    "text": ("text", "文字评价"),
    "anonymous": ("coded", "是否匿名"),
    "valid": ("coded", "是否有效评价（计入统计）"),
    "system_default": ("coded", "是否系统默认评价"),
    "applicant_type": ("coded", "申请人类型（自然人、法人）"),
    "case_status": ("coded", "办件状态"),
    "completed_at": ("time", "办结时间"),
    "rectification": ("text", "整改反馈（工单办结时的整改情况）"),
    "rectified_at": ("time", "整改反馈时间"),
    "area_code": ("text", "行政区划代码（RATING_CENTRAL_AREA_CODE）"),
    "version": ("int", "数据版本（同一评价的每次更新递增）"),
    "operation": ("coded", "操作类型（新增、更新）"),
}

#: every value each coded item can take here, with its name for messages
VALUES: dict[str, dict[object, str]] = {
    "level": {int(lv): lv.zh for lv in Level},
    "channel": {int(c): c.zh for c in Channel},
    "rating_no": {1: "首次评价", 2: "追加评价"},
    "anonymous": {True: "匿名", False: "实名"},
    "valid": {True: "有效", False: "无效（复核不计入或被取代）"},
    "system_default": {True: "系统默认评价", False: "评价人评价"},
    "applicant_type": {"person": "自然人", "company": "法人", "": "未报送办件"},
    "case_status": {"accepted": "已受理", "completed": "已办结", "cancelled": "已撤件", "": "未报送办件"},
    "operation": {"add": "新增", "update": "更新"},
}
TAKES = {"rating", "default", "validity", "rectification", "addition"}


def record_kind(device: str) -> str:
    """What a stored rating is to a platform: a system ``default`` rating, or a ``rating`` someone gave."""
    return "default" if device == "system" else "rating"


@dataclass(frozen=True)
class Field:
    name: str
    meaning: str
    source: str = ""  # one of SOURCES, or "" for a constant
    codes: str = ""  # the code list a coded source goes through
    constant: object = None
    required: bool = False


CONSTANT, CODED, TIME, PLAIN = "constant", "coded", "time", "plain"  # how a field is made (Profile.plan)


@dataclass(frozen=True)
class Profile:
    name: str
    title: str
    source: str  # the interface document the profile follows
    takes: frozenset
    time_format: str
    zone: ZoneInfo
    fields: tuple[Field, ...]
    codes: dict  # list name -> {our value: theirs}
    id_field: str
    version_field: str
    path: str  # where a batch is POSTed, below the platform's base URL
    batch_key: str  # the batch's key in the request body
    duplicate_codes: frozenset = frozenset({"duplicate_id"})  # a refusal that means "already held"

    def encode(self, record: dict) -> dict:
        """One record (our data items by ``SOURCES`` name) as the platform's fields and codes.
        A value the profile has no code for raises ProfileError (``unmapped`` finds them first)."""
        out = {}
        for name, how, source, arg in self.plan:
            if how is CONSTANT:
                out[name] = arg
                continue
            value = record.get(source)
            if how is CODED:
                try:
                    out[name] = arg[value]
                except (KeyError, TypeError):
                    raise ProfileError(f"profile {self.name}: {source} {value!r} has no code in "
                                       f"[codes.{self._list_of(name)}]") from None
            elif how is TIME:
                out[name] = "" if value is None else value.astimezone(self.zone).strftime(self.time_format)
            else:
                out[name] = "" if value is None else value
        return out

    def _list_of(self, field_name: str) -> str:
        return next(f.codes for f in self.fields if f.name == field_name)

    def field_for(self, source: str) -> Field | None:
        """The field that carries one of our data items (``SOURCES``), if the profile sends it."""
        return next((f for f in self.fields if f.source == source), None)

    def code_list(self, source: str) -> dict:
        """Our value -> theirs for a coded data item the profile sends ({} if it does not)."""
        f = self.field_for(source)
        return self.codes[f.codes] if f and f.codes else {}

    @functools.cached_property
    def plan(self) -> tuple:
        """How each field is made, worked out once: (name, how, source, constant or code table)."""
        steps = []
        for f in self.fields:
            if not f.source:
                steps.append((f.name, CONSTANT, "", f.constant))
            else:
                kind = SOURCES[f.source][0]
                how = CODED if kind == "coded" else TIME if kind == "time" else PLAIN
                steps.append((f.name, how, f.source, self.codes[f.codes] if how is CODED else None))
        return tuple(steps)

    def unmapped(self, in_use: dict[str, set]) -> list[str]:
        """What we hold (``in_use``: coded source -> values) that this profile has no code for,
        each named with its meaning: the reasons the push refuses to start."""
        missing = []
        for f in self.fields:
            if f.source and SOURCES[f.source][0] == "coded":
                table = self.codes[f.codes]
                for value in sorted(in_use.get(f.source, ()), key=str):
                    if value not in table:
                        name = VALUES.get(f.source, {}).get(value, "")
                        missing.append(f"{f.source} {value!r}{f'（{name}）' if name else ''} has no code in "
                                       f"[codes.{f.codes}] (field {f.name})")
            elif f.required and f.source in in_use and not any(in_use[f.source]):
                missing.append(f"{f.source} is empty but field {f.name} is required")
        return missing

    def markdown(self) -> list[str]:
        """The profile as documentation: every field, where it comes from, and each code list."""
        out = [f"## `{self.name}` — {self.title}", "", f"Source: {self.source}", "",
               f"Times: `{self.time_format}` in {self.zone.key}. Takes: {', '.join(sorted(self.takes))}. "
               f"Record id `{self.id_field}`, version `{self.version_field}`.", "",
               "| field | meaning | from | required |", "| --- | --- | --- | --- |"]
        for f in self.fields:
            origin = f"`{f.source}`" + (f" via `{f.codes}`" if f.codes else "") if f.source else f"constant `{f.constant}`"
            out.append(f"| `{f.name}` | {f.meaning} | {origin} | {'yes' if f.required else ''} |")
        for list_name, table in self.codes.items():
            source = next((f.source for f in self.fields if f.codes == list_name), "")
            names = VALUES.get(source, {})
            out += ["", f"Code list `{list_name}` (ours → theirs):", ""]
            out += [f"- {_show(ours)}{f' {names[ours]}' if ours in names else ''} → `{theirs}`" for ours, theirs in table.items()]
        out.append("")
        return out


def _show(value) -> str:
    return "true" if value is True else "false" if value is False else f"`{value}`" if isinstance(value, str) else str(value)


def parse(text: str, where: str = "profile") -> Profile:
    """A profile from its TOML text; ProfileError names the first thing wrong."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ProfileError(f"{where}: not TOML: {exc}") from None
    return from_data(data, where)


def from_data(data: dict, where: str = "profile") -> Profile:
    """A profile from its parsed document: every part's type is checked before it is used (an
    administrator edits profiles), and anything wrong is a ProfileError, never another exception."""
    known = {"name", "title", "source", "takes", "time_format", "time_zone", "record", "interface", "fields", "codes"}
    if data.keys() - known:
        raise ProfileError(f"{where}: unknown keys {', '.join(sorted(data.keys() - known))}")
    for key in ("name", "title", "source", "time_format", "time_zone"):
        if not isinstance(data.get(key), str) or not data[key].strip():
            raise ProfileError(f"{where}: {key} must be a non-empty string")
    where = f"profile {data['name']}"
    takes = data.get("takes")
    if not isinstance(takes, list) or not takes or not all(isinstance(t, str) for t in takes) or set(takes) - TAKES:
        raise ProfileError(f"{where}: takes must list some of {', '.join(sorted(TAKES))}")
    try:
        zone = ZoneInfo(data["time_zone"])
    except (ZoneInfoNotFoundError, ValueError):
        raise ProfileError(f"{where}: unknown time_zone {data['time_zone']!r}") from None
    try:
        datetime(2026, 1, 2, 3, 4, 5).strftime(data["time_format"])
    except ValueError as exc:
        raise ProfileError(f"{where}: time_format: {exc}") from None
    codes = {}
    for key in ("codes", "record", "interface"):
        if not isinstance(data.get(key, {}), dict):
            raise ProfileError(f"{where}: {key} must be a table ([{key}] …)")
    for list_name, table in (data.get("codes") or {}).items():
        if not isinstance(table, dict) or not table:
            raise ProfileError(f"{where}: [codes.{list_name}] must map our values to the platform's")
        codes[list_name] = table
    fields = []
    raw_fields = data.get("fields")
    if not isinstance(raw_fields, dict) or not raw_fields:
        raise ProfileError(f"{where}: no [fields]")
    for name, spec in raw_fields.items():
        fields.append(_field(where, name, spec, codes))
    keyed = set()
    for f in fields:  # code lists keyed as TOML must (strings), turned into our values' types, once
        if f.codes and f.codes not in keyed:
            codes[f.codes] = _keyed(where, f, codes[f.codes])
            keyed.add(f.codes)
    names = {f.name for f in fields}
    record, interface = data.get("record") or {}, data.get("interface") or {}
    for key, value, table in (("id", record.get("id"), "record"), ("version", record.get("version"), "record")):
        if not isinstance(value, str) or value not in names:
            raise ProfileError(f"{where}: [{table}] {key} must name one of the fields, got {value!r}")
    path, batch_key = interface.get("path"), interface.get("batch")
    if not (isinstance(path, str) and path.startswith("/")) or not isinstance(batch_key, str) or not batch_key:
        raise ProfileError(f"{where}: [interface] needs path (\"/...\") and batch (the records' key)")
    duplicates = interface.get("duplicate_codes", ["duplicate_id"])
    if not isinstance(duplicates, list) or not all(isinstance(c, str) for c in duplicates):
        raise ProfileError(f"{where}: [interface] duplicate_codes must be a list of the platform's codes")
    if interface.keys() - {"path", "batch", "duplicate_codes"} or record.keys() - {"id", "version"}:
        raise ProfileError(f"{where}: unknown keys in [interface] or [record]")
    return Profile(data["name"], data["title"], data["source"], frozenset(takes), data["time_format"], zone,
                   tuple(fields), codes, record["id"], record["version"], path, batch_key, frozenset(duplicates))


def _field(where: str, name: str, spec: object, codes: dict) -> Field:
    if not isinstance(spec, dict) or not isinstance(spec.get("meaning"), str):
        raise ProfileError(f"{where}: field {name} needs a meaning")
    extra = spec.keys() - {"from", "codes", "constant", "required", "meaning"}
    if extra:
        raise ProfileError(f"{where}: field {name}: unknown keys {', '.join(sorted(extra))}")
    source, constant = spec.get("from", ""), spec.get("constant")
    if not isinstance(source, str) or not isinstance(spec.get("codes", ""), str):
        raise ProfileError(f"{where}: field {name}: from and codes are names (text)")
    if not isinstance(spec.get("required", False), bool):
        raise ProfileError(f"{where}: field {name}: required is true or false")
    if constant is not None and (not isinstance(constant, (str, int)) or isinstance(constant, bool)):
        raise ProfileError(f"{where}: field {name}: a constant is text or an integer")
    if bool(source) == (constant is not None):
        raise ProfileError(f"{where}: field {name} needs exactly one of from and constant")
    if source and source not in SOURCES:
        raise ProfileError(f"{where}: field {name}: unknown source {source!r} (one of {', '.join(SOURCES)})")
    list_name = spec.get("codes", "")
    coded = bool(source) and SOURCES[source][0] == "coded"
    if coded and list_name not in codes:
        raise ProfileError(f"{where}: field {name} ({source}) needs a code list: codes = \"…\" and [codes.…]")
    if list_name and not coded:
        raise ProfileError(f"{where}: field {name}: {source or 'a constant'} is not coded; remove codes")
    return Field(name, spec["meaning"], source, list_name, constant, bool(spec.get("required", False)))


def _keyed(where: str, f: Field, table: dict) -> dict:
    """``{"5": 1}`` as ``{5: 1}``: TOML keys are strings; ours are integers, booleans or text."""
    values = VALUES[f.source]
    by_text = {_key_text(v): v for v in values}
    out = {}
    for key, theirs in table.items():
        if key not in by_text:
            raise ProfileError(f"{where}: [codes.{f.codes}] {key!r} is not a value of {f.source} "
                               f"(one of {', '.join(by_text)})")
        if not isinstance(theirs, (str, int)) or isinstance(theirs, bool):
            raise ProfileError(f"{where}: [codes.{f.codes}] {key!r} must map to a code (text or integer)")
        out[by_text[key]] = theirs
    return out


def _key_text(value) -> str:
    return "true" if value is True else "false" if value is False else str(value)
