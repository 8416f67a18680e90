"""What every case kind shares, the fault ticket included, as pure rules: the one
error for a step not legal now, the windows a case records when a stage starts, and
the alarm facts (warning, breach, escalation) folded into its state. A window is
counted from when its stage starts; what its missed deadline raises is the alarm
schedule of `domain.sla` (§九.A.2-3).

A window travels in the event that opens it with every instant its alarms need, so a
later change of a rule (the window table, the 75 % warning) changes the future only.

No Temporal, no eventsourcing: workflows import this through the sandbox."""
from __future__ import annotations

import re
from datetime import datetime, timedelta
from typing import Any, ClassVar

from pydantic import BaseModel, Field

from domain import policy

__all__ = ["Alert", "CaseState", "IllegalStep", "NOTICE_EVENTS", "Notice", "OpenWindow", "evolve_alarm", "mark_met",
           "open_window", "parse_windows", "set_responsible"]


class Alert(BaseModel):
    """A warning, breach or escalation as a case shows it."""

    goal: str
    deadline: datetime
    at: datetime
    responsible: str | None = None
    level: int | None = None  # 0 warning to the responsible person, 1 superior, 2 leadership
    to: str | None = None
    to_name: str | None = None
    reason: str | None = None


class IllegalStep(Exception):
    """A step that the case's current state does not allow (every case kind's one error)."""

    def __init__(self, status: str, step: str, reason: str, noun: str = "case"):
        self.status, self.step, self.reason = status, step, reason
        super().__init__(f"step '{step}' is not allowed while the {noun} is '{status}': {reason}")


class OpenWindow(BaseModel):
    """A window for one goal: who answers for it, from when, until when, and when its
    warning and its leadership escalation fall due (recorded since the alarm instants
    travel with the window; None in events recorded before, see `domain.sla`)."""

    goal: str
    started_at: datetime
    deadline: datetime
    responsible: str | None = None  # a staff id
    department: str | None = None  # a department id
    warn_at: datetime | None = None
    leadership_at: datetime | None = None


def window(goal: str, started_at: datetime, deadline: datetime, responsible: str | None = None,
           department: str | None = None) -> OpenWindow:
    """A window from `started_at` to `deadline` with its alarm instants from today's policy:
    called only when the window is first recorded."""
    span = deadline - started_at
    return OpenWindow(goal=goal, started_at=started_at, deadline=deadline, responsible=responsible,
                      department=department, warn_at=started_at + span * policy.WARNING_AT,
                      leadership_at=deadline + span * policy.LEADERSHIP_AFTER)


def open_window(goal: str, started_at: datetime, within: timedelta, responsible: str | None = None,
                department: str | None = None) -> dict[str, Any]:
    """A window as JSON-ready event data."""
    return window(goal, started_at, started_at + within, responsible, department).model_dump(mode="json")


class Notice(BaseModel):
    """A warning or escalation as delivered: where it reached its target, where delivery
    gave up, and who acknowledged it (§九.A.2: every report is followed up). Its id is the
    command id of the fact it announces."""

    to: str | None = None
    delivered: list[str] = Field(default_factory=list)  # channels that took it
    given_up: dict[str, str] = Field(default_factory=dict)  # channel -> the last reason
    acknowledged_by: str | None = None
    acknowledged_at: datetime | None = None


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
    notices: dict[str, Notice] = Field(default_factory=dict)  # by the id of the fact announced

    @property
    def is_open(self) -> bool:
        return self.status != "new" and self.status not in self.TERMINAL

    @property
    def holder(self) -> str | None:
        """Who has the case now (a staff id): by default its responsible person."""
        return getattr(self, "responsible", None)

    @property
    def escalation_level(self) -> int:
        """The highest level the case has reached: 0 none, 1 the superior, 2 leadership."""
        return max([self.requested_level, *(e.level or 0 for e in self.escalations)])

    @property
    def next_deadline(self) -> datetime | None:
        """The earliest deadline of a window still open, while the case is open."""
        if not self.is_open:
            return None
        return min((w.deadline for g, w in self.windows.items() if g not in self.met), default=None)


def evolve_alarm(s: CaseState, event_type: str, data: dict, at: datetime) -> bool:
    """Fold an alarm fact, or its delivery, into `s`; False when `event_type` is neither.
    Containers are replaced, never changed in place, so a fold that copies the state only
    shallowly leaves the state it started from as it was."""
    if event_type == "SlaWarned":
        s.warnings = [*s.warnings, Alert(**_alert(data), at=at)]
        s.fired = [*s.fired, f"{data['goal']}:warning"]
    elif event_type == "SlaBreached":
        s.breaches = [*s.breaches, Alert(**_alert(data), at=at)]
        s.fired = [*s.fired, f"{data['goal']}:breach"]
    elif event_type == "Escalated":
        s.escalations = [*s.escalations, Alert(**_alert(data), at=at)]
        if data.get("level", 0) >= 2:
            s.fired = [*s.fired, f"{data['goal']}:leadership"]
    elif event_type in NOTICE_EVENTS:
        known = s.notices.get(data["notice"])
        notice = known.model_copy(deep=True) if known else Notice(to=data.get("to"))
        if event_type == "NotificationSent":
            notice.delivered.append(data["channel"])
        elif event_type == "NotificationGivenUp":
            notice.given_up[data["channel"]] = data.get("reason", "")
        else:
            notice.acknowledged_by, notice.acknowledged_at = data.get("by"), at
        s.notices = {**s.notices, data["notice"]: notice}
    else:
        return False
    return True


def mark_met(s: CaseState, goal: str, at: datetime) -> None:
    """`goal` met at `at`, unless it was met before (the first time counts): `s.met` replaced."""
    if goal not in s.met:
        s.met = {**s.met, goal: at}


def set_responsible(s: CaseState, goal: str, person: str | None) -> None:
    """`person` answers for the window of `goal`, if the case has one: `s.windows` replaced."""
    if goal in s.windows:
        s.windows = {**s.windows, goal: s.windows[goal].model_copy(update={"responsible": person})}


# What the delivery of a warning or an escalation records on its case, open or closed.
NOTICE_EVENTS = frozenset({"NotificationSent", "NotificationGivenUp", "EscalationAcknowledged"})


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
