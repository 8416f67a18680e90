"""What complaints, returns/exchanges and inspections share with the fault ticket's
windows, as pure rules: a window is counted from when its stage starts (not always
from the report), and a missed one raises the ticket's alarms (§九.A.2-3): the 75 %
warning to the responsible person, the breach with escalation to the direct superior
at the deadline, company leadership half a window later. Each (goal, kind) once.

No Temporal, no eventsourcing: workflows import this through the sandbox."""
from __future__ import annotations

import re
from datetime import datetime, timedelta
from typing import Any, ClassVar

from pydantic import BaseModel, Field

from domain import policy
from domain.lifecycle import Alert
from domain.sla import AFTER, Alarm, split_due

__all__ = ["Alarm", "Alert", "CaseState", "IllegalStep", "OpenWindow", "due", "evolve_alarm", "open_window",
           "parse_windows", "pending"]


class IllegalStep(Exception):
    """A step that the case's current state does not allow."""

    def __init__(self, status: str, step: str, reason: str, noun: str = "case"):
        self.status, self.step, self.reason = status, step, reason
        super().__init__(f"step '{step}' is not allowed while the {noun} is '{status}': {reason}")


class OpenWindow(BaseModel):
    """A window for one goal: who answers for it, from when, until when."""

    goal: str
    started_at: datetime
    deadline: datetime
    responsible: str | None = None  # a staff id
    department: str | None = None  # a department id


def open_window(goal: str, started_at: datetime, within: timedelta, responsible: str | None = None,
                department: str | None = None) -> dict[str, Any]:
    """A window as JSON-ready event data."""
    return OpenWindow(goal=goal, started_at=started_at, deadline=started_at + within, responsible=responsible,
                      department=department).model_dump(mode="json")


class CaseState(BaseModel):
    """The part of every case's state that the alarms read and write."""

    TERMINAL: ClassVar[tuple[str, ...]] = ("closed",)

    case_id: str
    version: int = 0
    status: str = "new"
    windows: dict[str, OpenWindow] = Field(default_factory=dict)
    met: dict[str, datetime] = Field(default_factory=dict)
    warnings: list[Alert] = Field(default_factory=list)
    breaches: list[Alert] = Field(default_factory=list)
    escalations: list[Alert] = Field(default_factory=list)
    fired: list[str] = Field(default_factory=list)  # "goal:kind" alarms already raised
    requested_level: int = 0  # the level a customer's own request moved the case to (complaints)

    @property
    def is_open(self) -> bool:
        return self.status != "new" and self.status not in self.TERMINAL


def pending(state: CaseState) -> list[Alarm]:
    """Alarms not yet raised for windows not yet met, in time order. Leadership that a
    customer's request has already reached is not told again by a timer."""
    if not state.is_open:
        return []
    out = []
    for goal, w in state.windows.items():
        if goal in state.met:
            continue
        span = w.deadline - w.started_at
        for kind, at in (
            ("warning", w.started_at + span * policy.WARNING_AT),
            ("breach", w.deadline + AFTER),
            ("leadership", w.deadline + span * policy.LEADERSHIP_AFTER + AFTER),
        ):
            if f"{goal}:{kind}" in state.fired:
                continue
            if kind == "warning" and f"{goal}:breach" in state.fired:
                continue
            if kind == "leadership" and state.requested_level >= 2:
                continue
            out.append(Alarm(goal, kind, at, w.deadline))
    return sorted(out, key=lambda a: a.at)


def due(state: CaseState, now: datetime) -> tuple[list[Alarm], datetime | None]:
    """The alarms due at `now`, and when the next one falls due (None: no more)."""
    return split_due(pending(state), now)


def evolve_alarm(s: CaseState, event_type: str, data: dict, at: datetime) -> bool:
    """Fold an alarm fact into `s` in place; False when `event_type` is not one."""
    if event_type == "SlaWarned":
        s.warnings.append(Alert(**_alert(data), at=at))
        s.fired.append(f"{data['goal']}:warning")
    elif event_type == "SlaBreached":
        s.breaches.append(Alert(**_alert(data), at=at))
        s.fired.append(f"{data['goal']}:breach")
    elif event_type == "Escalated":
        s.escalations.append(Alert(**_alert(data), at=at))
        if data.get("level", 0) >= 2:
            s.fired.append(f"{data['goal']}:leadership")
    else:
        return False
    return True


def _alert(data: dict) -> dict:
    return {k: data.get(k) for k in Alert.model_fields if k != "at" and k in data}


_SPAN = re.compile(r"^\s*([a-z_]+)\s*=\s*(\d+(?:\.\d+)?)\s*([mhd]?)\s*$")
_UNITS = {"m": "minutes", "h": "hours", "d": "days", "": "hours"}


def parse_windows(text: str, known: dict[str, timedelta]) -> dict[str, timedelta]:
    """`known` with overrides from text such as "acknowledged=2h, replied=1d" (a bare
    number is hours). Raises ValueError naming the bad part."""
    out = dict(known)
    for part in filter(None, (p.strip() for p in text.split(","))):
        m = _SPAN.match(part)
        if not m:
            raise ValueError(f"{part!r}: expected goal=number with an optional unit m, h or d")
        goal, number, unit = m.groups()
        if goal not in known:
            raise ValueError(f"{part!r}: unknown window {goal!r}; windows are {', '.join(known)}")
        span = timedelta(**{_UNITS[unit]: float(number)})
        if span <= timedelta(0):
            raise ValueError(f"{part!r}: a window must be longer than zero")
        out[goal] = span
    return out
