"""How the console shows what was recorded: times in China Standard Time (UTC+8) with the
UTC instant beside, people by name and id, each event's data in words, the SLA state of a
case, and a form for a step built from its payload model (domain.steps). Presentation
only: what may be seen and done is domain.permissions'."""
from __future__ import annotations

import types
import typing
from datetime import datetime, timezone
from decimal import Decimal
from typing import Any, Literal

from pydantic import BaseModel

from domain.org import Org
from domain.policy import CST

GOAL_WORDS = {"on_site": "on site (到场)", "resolved": "resolved (完成处理)", "acknowledged": "acknowledged (受理)",
              "replied": "replied (答复)", "approval": "approval", "inspection": "inspection", "refund": "refund",
              "shipment": "shipment", "confirmation": "confirmation", "visit": "visit"}
LEVEL_WORDS = {0: "warning (预警)", 1: "to the direct superior (上报直接上级)", 2: "to company leadership (上报公司领导)"}
STATUS_WORDS = {"reported": "reported", "triaged": "triaged", "dispatched": "dispatched",
                "in_progress": "in progress", "resolved": "resolved", "signed_off": "signed off", "closed": "closed"}


# --- time ---------------------------------------------------------------------------------

def as_datetime(value: datetime | str | None) -> datetime | None:
    if value is None or value == "":
        return None
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    return value if value.tzinfo else value.replace(tzinfo=timezone.utc)


def cst(value: datetime | str | None, seconds: bool = False) -> str:
    """A business time as China Standard Time text, e.g. "2026-03-02 13:00"."""
    at = as_datetime(value)
    if at is None:
        return ""
    return at.astimezone(CST).strftime("%Y-%m-%d %H:%M:%S" if seconds else "%Y-%m-%d %H:%M")


def utc(value: datetime | str | None) -> str:
    at = as_datetime(value)
    return "" if at is None else at.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def span(seconds: float) -> str:
    """A duration in words: "3 h 05 min", "2 d 4 h", "12 min"."""
    s = int(abs(seconds))
    d, h, m = s // 86400, s % 86400 // 3600, s % 3600 // 60
    if d:
        return f"{d} d {h} h"
    if h:
        return f"{h} h {m:02d} min"
    return f"{m} min"


def time_left(deadline: datetime | str | None, now: datetime) -> str:
    at = as_datetime(deadline)
    if at is None:
        return ""
    left = (at - now).total_seconds()
    return f"{span(left)} left" if left >= 0 else f"overdue by {span(left)}"


# --- people ---------------------------------------------------------------------------------

def who(org: Org, actor: str | None) -> str:
    """An actor as a person reads it: "Wang Fang (engineer) · E001", a customer by name."""
    if not actor:
        return ""
    if actor.startswith("customer:"):
        return f"customer {actor.removeprefix('customer:')}"
    person = org.get(actor)
    return f"{person.name} · {person.id}" if person else actor


def dept_name(org: Org, department: str | None) -> str:
    d = org.departments.get(department or "")
    return d.name if d else (department or "")


# --- events in words ------------------------------------------------------------------------

def _goal(goal: Any) -> str:
    return GOAL_WORDS.get(str(goal), str(goal))


def _yes(v: Any) -> str:
    return "yes" if v else "no"


def _value(v: Any) -> str:
    if isinstance(v, bool):
        return _yes(v)
    if isinstance(v, list):
        return ", ".join(_value(x) for x in v) if v else "none"
    if isinstance(v, dict):
        return "; ".join(f"{k}: {_value(x)}" for k, x in v.items())
    if isinstance(v, str) and len(v) >= 20 and v[4:5] == "-" and v[10:11] == "T":
        try:
            return f"{cst(v)} (UTC+8)"
        except ValueError:
            return v
    return "" if v is None else str(v)


SKIP = {"windows", "deadlines", "previous_deadlines", "ticket_id", "case_id", "notice"}


def describe(org: Org, kind: str, event_type: str, data: dict[str, Any]) -> tuple[str, list[tuple[str, str]]]:
    """(a sentence, [(field, value in words)]) for one recorded event of a case."""
    d = data
    sentence = ""
    if event_type == "Reported":
        sentence = (f"Fault reported by {d.get('channel', '')}: {d.get('symptoms', '')} "
                    f"({d.get('severity', '')}, zone {d.get('zone', '')})")
    elif event_type == "Triaged":
        sentence = (f"Triaged as {d.get('severity')} in zone {d.get('zone')}, "
                    f"{d.get('service_category', 'free')} service")
    elif event_type == "Dispatched":
        sentence = f"Dispatched to {who(org, d.get('engineer'))}, travelling by {str(d.get('travel_mode', '')).replace('_', ' ')}"
    elif event_type == "ArrivedOnSite":
        sentence = "Engineer arrived on site" + (", staff ID shown" if d.get("staff_id_shown") else "")
    elif event_type == "RemoteSessionStarted":
        sentence = f"Remote session started with the consent of {d.get('consent_by', '')}"
    elif event_type == "FeeQuoted":
        sentence = f"Fee quoted: ¥{d.get('amount_yuan')} for {_value(d.get('items', []))}"
    elif event_type == "FeeAccepted":
        sentence = f"Fee accepted by {d.get('accepted_by', '')}"
    elif event_type == "EquipmentTakenBack":
        sentence = f"Equipment taken back for repair, receipt {d.get('receipt_no')}: {_value(d.get('items', []))}"
    elif event_type == "EquipmentReturned":
        sentence = f"Equipment returned, receipt {d.get('receipt_no')} taken back"
    elif event_type == "BackupUnitProvided":
        sentence = f"Backup unit {d.get('unit')} provided"
    elif event_type == "BackupUnitRetrieved":
        sentence = f"Backup unit {d.get('unit')} retrieved"
    elif event_type == "Resolved":
        sentence = f"Resolved. Cause: {d.get('cause', '')}. Resolution: {d.get('resolution', '')}"
    elif event_type == "SignedOff":
        entered = d.get("entered_by")
        sentence = (f"Signed off by {d.get('signature', '')}, satisfaction {d.get('satisfaction')}/5"
                    + (f" — entered by the engineer {who(org, entered)} for the customer" if entered else ""))
    elif event_type == "Closed":
        sentence = f"Closed: time rated {d.get('time_rating')}/5, quality {d.get('quality_rating')}/5"
    elif event_type == "SlaWarned":
        sentence = (f"Warning: {_goal(d.get('goal'))} due {cst(d.get('deadline'))} (UTC+8); "
                    f"warned {who(org, d.get('to') or d.get('responsible'))}")
    elif event_type == "SlaBreached":
        sentence = (f"BREACH: {_goal(d.get('goal'))} missed its deadline {cst(d.get('deadline'))} (UTC+8); "
                    f"responsible {who(org, d.get('responsible'))}")
    elif event_type == "Escalated":
        sentence = (f"ESCALATED {LEVEL_WORDS.get(int(d.get('level', 1)), '')}: "
                    f"{d.get('to_name') or who(org, d.get('to'))} — {_goal(d.get('goal'))}")
    elif event_type == "NotificationSent":
        sentence = f"Notification sent to {who(org, d.get('to'))} by {d.get('channel')}"
    elif event_type == "NotificationGivenUp":
        sentence = f"Notification to {who(org, d.get('to'))} by {d.get('channel')} given up: {d.get('reason', '')}"
    elif event_type == "EscalationAcknowledged":
        sentence = f"Acknowledged by {who(org, d.get('by'))}" + (f" via {d['via']}" if d.get("via") else "")
    else:
        sentence = event_type
    fields = []
    for k, v in d.items():
        if k in SKIP or v is None or v == "" or v == []:
            continue
        if k in ("engineer", "to", "by", "responsible", "handler", "about_person", "responsible_person", "person"):
            v = who(org, v) if isinstance(v, str) else v
        fields.append((k.replace("_", " "), _value(v)))
    return sentence, fields


MARKS = {"SlaWarned": "warning", "SlaBreached": "breach", "Escalated": "escalation",
         "NotificationSent": "notice", "NotificationGivenUp": "notice", "EscalationAcknowledged": "notice"}


# --- SLA state --------------------------------------------------------------------------------

def sla_state(org: Org, *, met: dict[str, Any], windows: dict[str, Any], warned: list[str],
              breached: list[str], escalations: list[dict[str, Any]]) -> dict[str, str]:
    """{"state": on_time | warned | breached | escalated, "words": ...} for an open case."""
    unmet = [g for g in windows if g not in met]
    if escalations:
        top = max(escalations, key=lambda e: (int(e.get("level") or 0)))
        name = top.get("to_name") or who(org, top.get("to"))
        return {"state": "escalated", "words": f"escalated to {name}"}
    if breached:
        return {"state": "breached", "words": "breached: " + ", ".join(_goal(g) for g in breached)}
    open_warned = [g for g in warned if g in unmet]
    if open_warned:
        return {"state": "warned", "words": "warned: " + ", ".join(_goal(g) for g in open_warned)}
    return {"state": "on_time", "words": "on time"}


def next_deadline(windows: dict[str, Any], met: dict[str, Any]) -> datetime | None:
    """The earliest deadline of a goal not met yet."""
    out = [as_datetime(w) for g, w in windows.items() if g not in met and w]
    return min(out) if out else None


# --- forms from payload models ---------------------------------------------------------------

def _unwrap(annotation: Any) -> tuple[Any, bool]:
    """(the type, optional?) of an annotation, without None."""
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        return (args[0] if len(args) == 1 else str), True
    return annotation, False


def form_fields(model: type[BaseModel], org: Org | None = None, prefill: dict[str, Any] | None = None,
                choices: dict[str, list[tuple[str, str]]] | None = None) -> list[dict[str, Any]]:
    """The inputs of a step's form: name, label, kind (text, textarea, number, checkbox,
    select, lines), required, choices, value, limits."""
    prefill, choices = prefill or {}, choices or {}
    out = []
    for name, info in model.model_fields.items():
        if name in ("entered_by",):
            continue
        typ, optional = _unwrap(info.annotation)
        f: dict[str, Any] = {"name": name, "label": name.replace("_", " "), "required": info.is_required(),
                             "value": prefill.get(name, "" if info.is_required() else info.default),
                             "help": info.description or ""}
        if f["value"] is None:
            f["value"] = ""
        limits = {type(m).__name__: m for m in info.metadata}
        if name in choices:
            f["kind"], f["choices"] = "select", choices[name]
        elif typing.get_origin(typ) is Literal or (isinstance(typ, type) and issubclass(typ, __import__("enum").Enum)):
            values = typing.get_args(typ) if typing.get_origin(typ) is Literal else [e.value for e in typ]
            f["kind"], f["choices"] = "select", [(str(v), str(v).replace("_", " ")) for v in values]
            if hasattr(f["value"], "value"):
                f["value"] = f["value"].value
        elif typ is bool:
            f["kind"], f["required"] = "checkbox", False
        elif typ is int:
            f["kind"] = "number"
            f["min"] = getattr(limits.get("Ge"), "ge", None)
            f["max"] = getattr(limits.get("Le"), "le", None)
        elif typ is Decimal or typ is float:
            f["kind"], f["step"] = "number", "0.01"
        elif typing.get_origin(typ) is list:
            f["kind"], f["value"] = "lines", "\n".join(prefill.get(name, []) or [])
            f["required"] = bool(getattr(limits.get("MinLen"), "min_length", 0))
        else:
            longest = getattr(limits.get("MaxLen"), "max_length", 200)
            f["kind"] = "textarea" if longest and longest >= 2000 else "text"
        out.append(f)
    return out


def form_data(model: type[BaseModel], form: Any) -> dict[str, Any]:
    """A submitted form as the step's data, for the payload model to validate."""
    data: dict[str, Any] = {}
    for name, info in model.model_fields.items():
        typ, _ = _unwrap(info.annotation)
        if typ is bool:
            data[name] = form.get(name) in ("on", "true", "1", "yes")
            continue
        raw = form.get(name)
        if raw is None:
            continue
        raw = str(raw)
        if typing.get_origin(typ) is list:
            data[name] = [line.strip() for line in raw.splitlines() if line.strip()]
        elif typ is int and raw.strip().lstrip("-").isdigit():
            data[name] = int(raw.strip())
        elif raw.strip() == "":
            if info.is_required():
                data[name] = ""
        else:
            data[name] = raw
    return data
