"""Returns and exchanges (退货和换货, §九.D) as pure rules: eligibility as data, the
hand-offs across departments with a window each, what each step carries, which step
is legal when, and the one fold of recorded events.

Eligibility follows the PRC "three guarantees" (三包) for a quality defect: return
within 7 days of delivery, exchange within 15 days, repair within the warranty.
Days are calendar days in China Standard Time; the delivery day is day 0, so a
request on delivery + 7 days may still return and delivery + 8 days may not.

The flow (§九.D.3: 项目部(含售后)、财务、技术部门 ... 无缝衔接): the project department
approves; the technical department inspects the unit and records the root cause with
the responsible department and person (§九.D.4, counted in their assessment); finance
refunds a return, or the project department ships the exchange unit; the customer
confirms. Each hand-off's window starts when the hand-off does and escalates like a
ticket's: the responsible person's direct superior, then company leadership."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any, Literal

from pydantic import BaseModel, Field, StrictBool, StrictInt, ValidationInfo, field_validator

from domain.casework import (CaseState, IllegalStep, OpenWindow, evolve_alarm, mark_met, open_window,
                             set_responsible)
from domain.policy import CST
from domain.steps import Payload, Text
from domain.text import Line, Lines

DefectKind = Literal["quality", "not_as_ordered", "user_damage", "other"]


@dataclass(frozen=True)
class Entitlement:
    remedy: str  # "return" | "exchange"
    within_days: int  # counted from the delivery date; the last day is included
    defect_kinds: frozenset[str]


# The default rule, best remedy first. A quality defect within the warranty beyond these
# is repaired (a fault ticket); anything else is refused with the reason.
ELIGIBILITY: tuple[Entitlement, ...] = (
    Entitlement("return", 7, frozenset({"quality", "not_as_ordered"})),
    Entitlement("exchange", 15, frozenset({"quality", "not_as_ordered"})),
)
REPAIRABLE = frozenset({"quality"})
REMEDY_ORDER = ("return", "exchange")  # a return entitles to an exchange too, if the customer prefers


@dataclass(frozen=True)
class Decision:
    outcome: str  # "return" | "exchange" | "repair" | "refused"
    days_since_delivery: int
    reason: str
    next_action: str

    def as_data(self) -> dict[str, Any]:
        return {"outcome": self.outcome, "days_since_delivery": self.days_since_delivery, "reason": self.reason,
                "next_action": self.next_action}


def decide(delivery_date: date, requested_on: date, defect_kind: str, wanted: str = "return",
           warranty_until: date | None = None,
           rules: tuple[Entitlement, ...] = ELIGIBILITY) -> Decision:
    """What the customer is entitled to for a request made on `requested_on` (CST date).
    Raises ValueError for a delivery after the request."""
    days = (requested_on - delivery_date).days
    if days < 0:
        raise ValueError(f"delivery_date {delivery_date.isoformat()} is after the request ({requested_on.isoformat()})")
    for rule in rules:
        if defect_kind in rule.defect_kinds and days <= rule.within_days:
            outcome = rule.remedy
            if wanted in REMEDY_ORDER and REMEDY_ORDER.index(wanted) > REMEDY_ORDER.index(outcome):
                outcome = wanted  # within the return period the customer may choose an exchange
            reason = (f"{_kind(defect_kind)} {days} day(s) after delivery: within the {rule.within_days}-day "
                      f"{rule.remedy} period")
            return Decision(outcome, days, reason, f"project department approves the {outcome}")
    last = rules[-1].within_days if rules else 0
    if defect_kind in REPAIRABLE and (warranty_until is None or requested_on <= warranty_until):
        return Decision("repair", days, f"{_kind(defect_kind)} {days} day(s) after delivery, beyond the {last}-day "
                        "exchange period but within the warranty: repair under warranty",
                        "open a fault ticket (POST /tickets)")
    if defect_kind in REPAIRABLE:
        return Decision("refused", days, f"the warranty ended on {warranty_until.isoformat()}: neither return, "
                        "exchange nor free repair; paid repair is possible", "open a fault ticket for paid service")
    return Decision("refused", days, f"{_kind(defect_kind)} is not covered by return or exchange",
                    "explain the refusal to the customer")


def _kind(defect_kind: str) -> str:
    return {"quality": "a quality defect", "not_as_ordered": "a unit not as ordered",
            "user_damage": "damage by use", "other": "the defect"}.get(defect_kind, defect_kind)


# hand-off -> (the kind of department that answers for it, its window from the hand-off)
HANDOFFS: dict[str, tuple[str, timedelta]] = {
    "approval": ("project", timedelta(hours=24)),  # 项目部 approves
    "inspection": ("rnd", timedelta(hours=72)),  # 技术部门 inspects, root cause
    "refund": ("finance", timedelta(hours=72)),  # 财务 refunds a return
    "shipment": ("project", timedelta(hours=72)),  # 项目部(含售后) ships the exchange unit
    "confirmation": ("after_sales", timedelta(days=7)),  # the customer confirms; after-sales follows up
}
FLOWS: dict[str, tuple[str, ...]] = {
    "return": ("approval", "inspection", "refund", "confirmation"),
    "exchange": ("approval", "inspection", "shipment", "confirmation"),
}


class RequestReturn(Payload):
    """退换货申请: the unit, when it was delivered, what is wrong."""

    customer: Line = Field(min_length=1, max_length=200)
    contact: Line = Field(min_length=3, max_length=200)
    product: Line = Field(min_length=1, max_length=200)
    serial_no: Line = Field(default="", max_length=100)
    delivery_date: date
    defect: Lines = Text
    defect_kind: DefectKind
    wanted: Literal["return", "exchange"] = "return"
    warranty_until: date | None = None
    ticket_id: Line | None = Field(default=None, min_length=1, max_length=64)

    @field_validator("warranty_until")
    @classmethod
    def _after_delivery(cls, v: date | None, info: ValidationInfo) -> date | None:
        delivered = info.data.get("delivery_date")
        if v is not None and delivered is not None and v < delivered:
            raise ValueError("is before delivery_date")
        return v


class Approve(Payload):
    """项目部审批."""

    approved: StrictBool
    note: Lines = Field(default="", max_length=2000, validate_default=True)

    @field_validator("note")
    @classmethod
    def _refusal_has_reason(cls, v: str, info: ValidationInfo) -> str:
        if info.data.get("approved") is False and not v:
            raise ValueError("a refusal gives its reason")
        return v


class Inspect(Payload):
    """技术部门检测: the root cause, and who answers for it (§九.D.4)."""

    defect_confirmed: StrictBool
    root_cause: Lines = Text
    responsible_department: Line | None = Field(default=None, min_length=1, max_length=64, validate_default=True)
    responsible_person: Line | None = Field(default=None, min_length=1, max_length=64)
    notes: Lines = Field(default="", max_length=4000)

    @field_validator("responsible_department")
    @classmethod
    def _confirmed_defect_is_attributed(cls, v: str | None, info: ValidationInfo) -> str | None:
        if info.data.get("defect_confirmed") and not v:
            raise ValueError("a confirmed defect names the department responsible (§九.D.4)")
        return v


class Refund(Payload):
    """财务退款."""

    amount_yuan: Decimal = Field(gt=0, max_digits=12, decimal_places=2)
    reference: Line = Field(min_length=1, max_length=100)


class Ship(Payload):
    """换货发出."""

    replacement_serial_no: Line = Field(min_length=1, max_length=100)
    carrier: Line = Field(default="", max_length=100)


class Confirm(Payload):
    """客户确认."""

    confirmed_by: Line = Field(min_length=1, max_length=200)
    satisfaction: StrictInt = Field(ge=1, le=5)
    note: Lines = Field(default="", max_length=2000)


class Assign(Payload):
    """The current hand-off's department puts a named person on it."""

    person: Line = Field(min_length=1, max_length=64)


# step name -> (event type recorded, payload model, the hand-off it completes or None)
STEPS: dict[str, tuple[str, type[Payload], str | None]] = {
    "approve": ("Approved", Approve, "approval"),
    "inspect": ("Inspected", Inspect, "inspection"),
    "refund": ("Refunded", Refund, "refund"),
    "ship": ("ExchangeShipped", Ship, "shipment"),
    "confirm": ("Confirmed", Confirm, "confirmation"),
    "assign": ("Assigned", Assign, None),
}


class Route(BaseModel):
    department: str | None = None
    responsible: str | None = None


class ReturnState(CaseState):
    TERMINAL = ("closed", "refused", "repair", "rejected")

    customer: str = ""
    contact: str = ""
    product: str = ""
    serial_no: str = ""
    delivery_date: date | None = None
    defect: str = ""
    defect_kind: str = ""
    ticket_id: str | None = None
    requested_by: str = ""
    requested_at: datetime | None = None
    decision: dict[str, Any] = Field(default_factory=dict)
    outcome: str | None = None  # return | exchange | repair | refused
    stage: str | None = None  # the open hand-off
    routes: dict[str, Route] = Field(default_factory=dict)
    spans: dict[str, float] = Field(default_factory=dict)  # hand-off -> window in seconds
    root_cause: str | None = None
    defect_confirmed: bool | None = None
    responsible_department: str | None = None
    responsible_person: str | None = None
    refund_yuan: str | None = None
    replacement_serial_no: str | None = None
    satisfaction: int | None = None
    rejected_reason: str | None = None
    closed_at: datetime | None = None

    @property
    def holder(self) -> str | None:
        """The responsible person of the open hand-off."""
        route = self.routes.get(self.stage) if self.stage else None
        return route.responsible if route is not None else None


def check(state: ReturnState, step: str, data: dict) -> None:
    s = state.status

    def need(cond: bool, reason: str) -> None:
        if not cond:
            raise IllegalStep(s, step, reason, "return")

    if step not in STEPS:
        raise IllegalStep(s, step, f"unknown step; steps are {', '.join(STEPS)}", "return")
    need(s != "new", "the request has not been made yet")
    need(s not in ReturnState.TERMINAL, {"refused": "the request was refused as ineligible",
                                          "repair": "the request became a repair under warranty: open a ticket",
                                          "rejected": "the return/exchange was rejected",
                                          "closed": "the return/exchange is closed"}.get(s, s))
    handoff = STEPS[step][2]
    if handoff is not None:
        flow = FLOWS.get(state.outcome or "", ())
        need(handoff in flow, f"a {state.outcome} has no {handoff} step")
        need(state.stage == handoff, f"the open hand-off is {state.stage}, not {handoff}")


def evolve(state: ReturnState, event_type: str, data: dict, at: datetime, actor: str) -> ReturnState:
    """The state after a recorded event. The state is copied shallowly: what an event changes
    is replaced, never changed in place (domain.lifecycle)."""
    s = state.model_copy()
    s.version += 1
    if evolve_alarm(s, event_type, data, at):
        return s
    if event_type == "Requested":
        for k in ("customer", "contact", "product", "serial_no", "defect", "defect_kind", "ticket_id"):
            setattr(s, k, data.get(k))
        s.case_id = data.get("case_id", s.case_id)
        s.delivery_date = date.fromisoformat(data["delivery_date"])
        s.requested_by, s.requested_at = actor, at
        s.decision = data.get("decision", {})
        s.outcome = s.decision.get("outcome")
        s.routes = {g: Route(**r) for g, r in data.get("routes", {}).items()}
        s.spans = dict(data.get("spans", {}))
        s.status = s.outcome if s.outcome in ("refused", "repair") else "open"
        if s.status == "open":
            _hand_off(s, FLOWS[s.outcome][0], at)
    elif event_type == "Assigned":
        set_responsible(s, s.stage, data["person"])
        if s.stage in s.routes:
            s.routes = {**s.routes, s.stage: s.routes[s.stage].model_copy(update={"responsible": data["person"]})}
    elif event_type == "Approved":
        mark_met(s, "approval", at)
        if data.get("approved"):
            _next(s, "approval", at)
        else:
            s.status, s.stage, s.rejected_reason = "rejected", None, data.get("note")
    elif event_type == "Inspected":
        mark_met(s, "inspection", at)
        s.defect_confirmed, s.root_cause = data.get("defect_confirmed"), data.get("root_cause")
        s.responsible_department = data.get("responsible_department")
        s.responsible_person = data.get("responsible_person")
        if data.get("defect_confirmed"):
            _next(s, "inspection", at)
        else:
            s.status, s.stage, s.rejected_reason = "rejected", None, f"no defect found: {data.get('root_cause')}"
    elif event_type == "Refunded":
        mark_met(s, "refund", at)
        s.refund_yuan = str(data.get("amount_yuan"))
        _next(s, "refund", at)
    elif event_type == "ExchangeShipped":
        mark_met(s, "shipment", at)
        s.replacement_serial_no = data.get("replacement_serial_no")
        _next(s, "shipment", at)
    elif event_type == "Confirmed":
        mark_met(s, "confirmation", at)
        s.satisfaction = data.get("satisfaction")
        s.status, s.stage, s.closed_at = "closed", None, at
    return s


def _next(s: ReturnState, done: str, at: datetime) -> None:
    flow = FLOWS[s.outcome]
    i = flow.index(done)
    if i + 1 < len(flow):
        _hand_off(s, flow[i + 1], at)


def _hand_off(s: ReturnState, goal: str, at: datetime) -> None:
    """The next department takes over; its window starts now."""
    route = s.routes.get(goal, Route())
    within = timedelta(seconds=s.spans.get(goal, HANDOFFS[goal][1].total_seconds()))
    s.windows = {**s.windows, goal: OpenWindow(**open_window(goal, at, within, route.responsible, route.department))}
    s.stage = goal


def request_data(request: dict[str, Any], decision: Decision, routes: dict[str, dict],
                 windows: dict[str, timedelta]) -> dict[str, Any]:
    """The Requested event's data: the request, the eligibility decision, who answers for
    each hand-off (department and head when requested) and each hand-off's window."""
    return {**request, "decision": decision.as_data(), "routes": routes,
            "spans": {g: w.total_seconds() for g, w in windows.items()}}


def requested_on(at: datetime) -> date:
    """The calendar day of a request, in China Standard Time."""
    return at.astimezone(CST).date()
