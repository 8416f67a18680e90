"""Customer opinions and complaints (客户意见和投诉, §九.C, §五.6) as pure rules: the
routing table, the reply windows, what each step carries, which step is legal when,
and the one fold of recorded events.

- Registered from a call, letter, email or visit (§九.C.1-2), against a person and/or
  a department. Product quality or functionality goes to R&D (§九.C.4); installation,
  commissioning, abnormal operation or poor service to the project department (§九.C.5).
  An emergency is reported up at once (§九.C.2: 紧急事件应及时上报).
- Every complaint gets a quick reply (§九.C.6): acknowledged within 2 h and replied
  within 24 h of registration by default. A missed window escalates to the direct
  superior of the person complained about (or the head of the department complained
  about), and to company leadership half a window later.
- The customer may go to that direct superior, or straight to leadership (§九.C.3):
  the `escalate` step moves the complaint up at once.
- The outcome: substantiated or not, the reply, the customer's satisfaction, and a
  valuable suggestion marked for reward (§九.C.6). Substantiated complaints count in
  the assessment of the people and departments involved (§九.C.7, §十一.B.3-4)."""
from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any, Literal

from pydantic import BaseModel, Field, StrictBool, StrictInt, ValidationInfo, field_validator

from domain.casework import (CaseState, IllegalStep, OpenWindow, evolve_alarm, mark_met, open_window,
                             set_responsible)
from domain.steps import Payload, Text
from domain.text import Line, Lines

# category -> the kind of department that handles it (§九.C.4-5)
ROUTES: dict[str, str] = {
    "product_quality": "rnd",
    "functionality": "rnd",
    "installation": "project",
    "commissioning": "project",
    "abnormal_operation": "project",
    "service_attitude": "project",
}

# goal -> window, counted from registration (§九.C.6: 迅速、满意回复). WEIBAO_COMPLAINT_WINDOWS overrides.
WINDOWS: dict[str, timedelta] = {
    "acknowledged": timedelta(hours=2),
    "replied": timedelta(hours=24),
}

LEVELS = {"superior": 1, "leadership": 2}  # where a customer may take a complaint (§九.C.3)

Category = Literal["product_quality", "functionality", "installation", "commissioning", "abnormal_operation",
                   "service_attitude"]


class RegisterComplaint(Payload):
    """接待员登记 (§九.C.2): who, how, about whom, what."""

    customer: Line = Field(min_length=1, max_length=200)
    contact: Line = Field(min_length=3, max_length=200, description="phone or email to reply to")
    channel: Literal["phone", "email", "letter", "visit"]
    category: Category
    description: Lines = Text
    about_person: Line | None = Field(default=None, min_length=1, max_length=64,
                                      description="staff id of the person complained about")
    about_department: Line | None = Field(default=None, min_length=1, max_length=64,
                                          description="id of the department complained about")
    emergency: StrictBool = Field(default=False, description="reported up to leadership at once (§九.C.2)")
    ticket_id: Line | None = Field(default=None, min_length=1, max_length=64,
                                   description="the fault ticket this complaint is about, if any")


class Acknowledge(Payload):
    """受理: the handling department takes it up; the handler answers for the reply."""

    handler: Line | None = Field(default=None, min_length=1, max_length=64,
                                 description="staff id; the acting person when omitted")
    note: Lines = Field(default="", max_length=2000)


class CustomerEscalates(Payload):
    """The customer takes the complaint to the direct superior or to leadership (§九.C.3)."""

    to: Literal["superior", "leadership"]
    reason: Lines = Text


class Reply(Payload):
    """答复: the finding and the reply; a substantiated complaint is attributed."""

    reply: Lines = Text
    substantiated: StrictBool
    finding: Lines = Field(default="", max_length=4000)
    responsible_person: Line | None = Field(default=None, min_length=1, max_length=64,
                                            description="defaults to the person complained about")
    responsible_department: Line | None = Field(default=None, min_length=1, max_length=64,
                                                description="defaults to the department complained about")


class Close(Payload):
    """回访: the customer's satisfaction; a valuable suggestion is marked for reward (§九.C.6)."""

    satisfaction: StrictInt = Field(ge=1, le=5)
    customer_comment: Lines = Field(default="", max_length=2000)
    valuable_suggestion: StrictBool = False
    reward_note: Lines = Field(default="", max_length=2000)

    @field_validator("reward_note")
    @classmethod
    def _reward_needs_suggestion(cls, v: str, info: ValidationInfo) -> str:
        if v and not info.data.get("valuable_suggestion"):
            raise ValueError("is for a valuable suggestion; set valuable_suggestion")
        return v


# step name (as in the API path) -> (event type recorded, payload model)
STEPS: dict[str, tuple[str, type[Payload]]] = {
    "acknowledge": ("Acknowledged", Acknowledge),
    "escalate": ("CustomerEscalated", CustomerEscalates),
    "reply": ("Replied", Reply),
    "close": ("Closed", Close),
}


class CustomerRequest(BaseModel):
    """A customer's own escalation (§九.C.3) as the complaint shows it."""

    level: int
    to: str | None = None
    to_name: str | None = None
    reason: str = ""
    at: datetime


class ComplaintState(CaseState):
    customer: str = ""
    contact: str = ""
    channel: str = ""
    category: str = ""
    description: str = ""
    about_person: str | None = None
    about_department: str | None = None
    about_head: str | None = None  # the head of the department complained about
    routed_to: str | None = None  # the handling department (§九.C.4-5)
    routed_head: str | None = None
    emergency: bool = False
    ticket_id: str | None = None
    registered_by: str = ""
    registered_at: datetime | None = None
    handler: str | None = None
    acknowledged_at: datetime | None = None
    requests: list[CustomerRequest] = Field(default_factory=list)
    leadership_notified_at: datetime | None = None
    reply: str | None = None
    substantiated: bool | None = None
    responsible_person: str | None = None
    responsible_department: str | None = None
    replied_at: datetime | None = None
    satisfaction: int | None = None
    valuable_suggestion: bool = False
    closed_at: datetime | None = None

    @property
    def answerable(self) -> str | None:
        """Who answers for the reply now: the handler, else the handling department's head."""
        return self.handler or self.routed_head

    @property
    def holder(self) -> str | None:
        return self.answerable


def check(state: ComplaintState, step: str, data: dict) -> None:
    """Raise IllegalStep unless `step` with `data` is legal now."""
    s = state.status

    def need(cond: bool, reason: str) -> None:
        if not cond:
            raise IllegalStep(s, step, reason, "complaint")

    if step not in STEPS:
        raise IllegalStep(s, step, f"unknown step; steps are {', '.join(STEPS)}", "complaint")
    need(s != "new", "the complaint has not been registered yet")
    need(s != "closed", "the complaint is closed")
    if step == "acknowledge":
        need(s == "registered", "the complaint is already acknowledged" if s == "acknowledged"
             else "acknowledgement comes before the reply")
    elif step == "escalate":
        level = LEVELS.get(data.get("to", ""), 0)
        need(level > state.requested_level,
             "the complaint is already with company leadership" if state.requested_level >= 2
             else "the complaint is already with the direct superior")
    elif step == "reply":
        need(s in ("registered", "acknowledged"), "the complaint has already been replied to")
    elif step == "close":
        need(s == "replied", "a complaint is closed after the reply")


def evolve(state: ComplaintState, event_type: str, data: dict, at: datetime, actor: str) -> ComplaintState:
    """The state after a recorded event. Never raises on a recorded fact. The state is copied
    shallowly: what an event changes is replaced, never changed in place (domain.lifecycle)."""
    s = state.model_copy()
    s.version += 1
    if evolve_alarm(s, event_type, data, at):
        return s
    if event_type == "Registered":
        for k in ("customer", "contact", "channel", "category", "description", "about_person", "about_department",
                  "about_head", "routed_to", "routed_head", "emergency", "ticket_id"):
            setattr(s, k, data.get(k))
        s.emergency = bool(s.emergency)
        s.case_id = data.get("case_id", s.case_id)
        s.status, s.registered_by, s.registered_at = "registered", actor, at
        s.windows = {g: OpenWindow(**w) for g, w in data.get("windows", {}).items()}
    elif event_type == "LeadershipNotified":
        s.leadership_notified_at = at
    elif event_type == "Acknowledged":
        s.status, s.acknowledged_at = "acknowledged", at
        s.handler = data.get("handler") or actor
        mark_met(s, "acknowledged", at)
        for goal in list(s.windows):  # the handler now answers for the reply
            if goal not in s.met:
                set_responsible(s, goal, s.handler)
    elif event_type == "CustomerEscalated":
        s.requested_level = max(s.requested_level, int(data.get("level", 0)))
        s.requests = [*s.requests, CustomerRequest(level=data.get("level", 0), to=data.get("to_staff"),
                                                   to_name=data.get("to_name"), reason=data.get("reason", ""), at=at)]
    elif event_type == "Replied":
        s.status, s.replied_at = "replied", at
        s.reply, s.substantiated = data.get("reply"), data.get("substantiated")
        s.responsible_person = data.get("responsible_person")
        s.responsible_department = data.get("responsible_department")
        s.handler = s.handler or actor
        for goal in ("acknowledged", "replied"):  # a reply is also the acknowledgement
            mark_met(s, goal, at)
    elif event_type == "Closed":
        s.status, s.closed_at = "closed", at
        s.satisfaction = data.get("satisfaction")
        s.valuable_suggestion = bool(data.get("valuable_suggestion"))
    return s


def registration_data(report: dict[str, Any], routed: dict[str, Any], about_head: str | None,
                      at: datetime, windows: dict[str, timedelta]) -> dict[str, Any]:
    """The Registered event's data: the report, where it is routed and its windows."""
    return {
        **report,
        "routed_to": routed["id"], "routed_head": routed.get("head"), "about_head": about_head,
        "windows": {goal: open_window(goal, at, within, routed.get("head"), routed["id"])
                    for goal, within in windows.items()},
    }


def reply_person(state: ComplaintState, data: dict) -> str | None:
    """Whom a reply holds responsible (§九.C.7): the person it names, else the person complained about."""
    return data.get("responsible_person") or state.about_person


def reply_department(state: ComplaintState, data: dict, person_department: str | None) -> str | None:
    """The department a reply holds responsible: the one it names, else the responsible
    person's, else the department complained about, else the one that handled it."""
    return (data.get("responsible_department") or person_department or state.about_department
            or state.routed_to)
