"""The routine maintenance plan of one contract (日常例行工作, §八.7-10) as pure rules:
the calendar of visits counted from delivery, what the plan's steps carry, and the fold.

From the delivery date (month 0), in month n after it:
- a phone follow-up with the users every month (§八.7: 至少每月电话交流一次);
- a routine inspection every month or every quarter, as the contract says (§八.8);
- a performance check of the key equipment every 6 months (§八.9);
- a full check of all equipment and lines every 12 months (§八.10).
So the first year brings months 1..12: 12 follow-ups, 12 or 4 routine inspections, 2
key-equipment checks and 1 full check. A visit falls due at the start of its day
(00:00 China Standard Time); month n is the delivery date n calendar months on, the day
clamped to the month's end (delivered 31 January: due 28/29 February, 31 March, ...)."""
from __future__ import annotations

import calendar
from datetime import date, datetime, timezone
from typing import Any, Literal

from pydantic import BaseModel, Field, ValidationInfo, field_validator

from domain.casework import CaseState, IllegalStep
from domain.policy import CST, Zone
from domain.steps import Payload, Text
from domain.text import Line, Lines

VISIT_KINDS = ("follow_up", "routine", "key_equipment", "full")
EVERY_MONTHS: dict[str, int] = {"follow_up": 1, "key_equipment": 6, "full": 12}  # routine: per contract
RECENT = 24  # visits the plan's state keeps; the full list is in the event store


def add_months(d: date, n: int) -> date:
    years, month0 = divmod(d.month - 1 + n, 12)
    year, month = d.year + years, month0 + 1
    return date(year, month, min(d.day, calendar.monthrange(year, month)[1]))


def due_at(day: date) -> datetime:
    """The instant a visit falls due: the start of its day in China Standard Time (as UTC)."""
    return datetime(day.year, day.month, day.day, tzinfo=CST).astimezone(timezone.utc)


def kinds_due(month: int, routine_every_months: int) -> list[str]:
    """The visits of month `month` after delivery (month 0 is the delivery itself)."""
    if month < 1:
        return []
    every = {**EVERY_MONTHS, "routine": routine_every_months}
    return [k for k in VISIT_KINDS if month % every[k] == 0]


def first_month(delivery: date, today: date) -> int:
    """The first month whose visits are still to come when the plan starts on `today`:
    a plan started late does not invent a backlog of overdue visits."""
    n = 1
    while add_months(delivery, n) < today:
        n += 1
    return n


def inspection_id(contract_id: str, kind: str, month: int) -> str:
    return f"{contract_id}-{kind}-{month:03d}"


class StartPlan(Payload):
    """The plan of one maintenance contract."""

    customer: Line = Field(min_length=1, max_length=200)
    site: Line = Field(min_length=1, max_length=500)
    contact_phone: Line = Field(min_length=3, max_length=40, pattern=r"^[0-9+()\- ]+$",
                                description="the users' phone for the monthly follow-up (§八.7)")
    zone: Zone = Field(default=Zone.A, description="the site's zone, for tickets a finding opens")
    delivery_date: date = Field(ge=date(2000, 1, 1), le=date(2100, 12, 31), description="交付使用: month 0 of the plan")
    routine_every_months: Literal[1, 3] = Field(default=3, description="routine inspection monthly or quarterly (§八.8)")
    end_date: date | None = Field(default=None, le=date(2200, 12, 31),
                                  description="the maintenance contract's last day, if it ends")
    responsible: Line | None = Field(default=None, min_length=1, max_length=64,
                                     description="staff id of the engineer in charge; else the project department head")

    @field_validator("end_date")
    @classmethod
    def _ends_after_delivery(cls, v: date | None, info: ValidationInfo) -> date | None:
        delivered = info.data.get("delivery_date")
        if v is not None and delivered is not None and v <= delivered:
            raise ValueError("must be after delivery_date")
        return v


class ChangePlan(Payload):
    routine_every_months: Literal[1, 3] | None = None
    responsible: Line | None = Field(default=None, min_length=1, max_length=64)
    end_date: date | None = Field(default=None, le=date(2200, 12, 31), validate_default=True)

    @field_validator("end_date")
    @classmethod
    def _something(cls, v: date | None, info: ValidationInfo) -> date | None:
        if v is None and info.data.get("routine_every_months") is None and info.data.get("responsible") is None:
            raise ValueError("give at least one of routine_every_months, responsible, end_date")
        return v


class EndPlan(Payload):
    reason: Lines = Text


STEPS: dict[str, tuple[str, type[Payload]]] = {
    "change": ("PlanChanged", ChangePlan),
    "end": ("PlanEnded", EndPlan),
}


class VisitRef(BaseModel):
    kind: str
    month: int
    due_on: date
    inspection_id: str


class PlanState(CaseState):
    TERMINAL = ("ended",)

    customer: str = ""
    site: str = ""
    contact_phone: str = ""
    zone: str = "A"
    delivery_date: date | None = None
    routine_every_months: int = 3
    end_date: date | None = None
    responsible: str | None = None
    started_by: str = ""
    started_at: datetime | None = None
    next_month: int = 1
    counts: dict[str, int] = Field(default_factory=lambda: {k: 0 for k in VISIT_KINDS})
    recent: list[VisitRef] = Field(default_factory=list)
    ended_at: datetime | None = None
    end_reason: str | None = None

    def next_due(self) -> tuple[int, date] | None:
        """The next month with visits and its date; None once past the contract's end."""
        if self.delivery_date is None:
            return None
        day = add_months(self.delivery_date, self.next_month)
        if self.end_date is not None and day > self.end_date:
            return None
        return self.next_month, day


def check(state: PlanState, step: str, data: dict) -> None:
    if step not in STEPS:
        raise IllegalStep(state.status, step, f"unknown step; steps are {', '.join(STEPS)}", "plan")
    if state.status == "new":
        raise IllegalStep(state.status, step, "the plan has not been started", "plan")
    if state.status == "ended":
        raise IllegalStep(state.status, step, "the plan has ended", "plan")
    end = data.get("end_date")
    if step == "change" and end is not None and state.delivery_date is not None:
        if date.fromisoformat(str(end)) <= state.delivery_date:
            raise IllegalStep(state.status, step, "end_date must be after the delivery date", "plan")


def evolve(state: PlanState, event_type: str, data: dict[str, Any], at: datetime, actor: str) -> PlanState:
    """The state after a recorded event. The state is copied shallowly: what an event changes
    is replaced, never changed in place (domain.lifecycle)."""
    s = state.model_copy()
    s.version += 1
    if event_type == "PlanStarted":
        s.case_id = data.get("case_id", s.case_id)
        s.customer, s.site = data["customer"], data["site"]
        s.contact_phone, s.zone = data.get("contact_phone", ""), data.get("zone", "A")
        s.delivery_date = date.fromisoformat(data["delivery_date"])
        s.routine_every_months = data.get("routine_every_months", 3)
        s.end_date = date.fromisoformat(data["end_date"]) if data.get("end_date") else None
        s.responsible = data.get("responsible")
        s.started_by, s.started_at, s.status = actor, at, "active"
        s.next_month = data.get("first_month", 1)
    elif event_type == "VisitScheduled":
        s.counts = {**s.counts, data["kind"]: s.counts.get(data["kind"], 0) + 1}
        s.recent = [*s.recent, VisitRef(**{k: data[k] for k in VisitRef.model_fields})][-RECENT:]
        s.next_month = max(s.next_month, data["month"] + 1)
    elif event_type == "PlanChanged":
        for k in ("routine_every_months", "responsible"):
            if data.get(k) is not None:
                setattr(s, k, data[k])
        if data.get("end_date"):
            s.end_date = date.fromisoformat(data["end_date"])
    elif event_type == "PlanEnded":
        s.status, s.ended_at, s.end_reason = "ended", at, data.get("reason")
    return s
