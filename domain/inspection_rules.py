"""One visit of a maintenance plan (例行检查) as pure rules: its window, what its steps
carry, which step is legal when, the replacement rule, and the fold.

A phone follow-up (§八.7) records whom the engineer spoke with and what came up. An
inspection (§八.8-10) records who went, whether the customer's staff came along and
were trained (§八.8), a finding per device, and a replacement recommendation where a
device's performance has drifted too far (§八.10: 性能偏差太大 ... 说服客户予以更换).
A finding can open a fault ticket. An overdue visit escalates like a ticket."""
from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any, Literal

from pydantic import Field, StrictBool, StrictFloat, ValidationInfo, field_validator

from domain.casework import CaseState, IllegalStep, OpenWindow, evolve_alarm, mark_met, set_responsible
from domain.policy import Severity
from domain.steps import Payload, Text
from domain.text import Line, Lines

# kind -> window from the day it falls due. WEIBAO_INSPECTION_WINDOWS overrides.
WINDOWS: dict[str, timedelta] = {
    "follow_up": timedelta(days=7),  # §八.7 phone follow-up
    "routine": timedelta(days=14),  # §八.8 routine inspection
    "key_equipment": timedelta(days=14),  # §八.9 key equipment, half-yearly
    "full": timedelta(days=30),  # §八.10 all equipment and lines, yearly
}
GOAL = "done"
REPLACE_AT_DRIFT_PERCENT = 20.0  # a device this far off its delivered performance: recommend replacement


class AssignVisit(Payload):
    engineer: Line = Field(min_length=1, max_length=64)


class Call(Payload):
    """电话交流 (§八.7)."""

    spoke_with: Line = Field(min_length=1, max_length=200)
    notes: Lines = Text
    issues: list[Line] = Field(default_factory=list, max_length=50)


class Finding(Payload):
    device: Line = Field(min_length=1, max_length=200)
    status: Literal["ok", "degraded", "faulty"]
    drift_percent: StrictFloat | None = Field(default=None, ge=0, le=1000,
                                              description="performance off its delivered state, in %")
    notes: Lines = Field(default="", max_length=2000)
    recommend_replacement: StrictBool = False
    open_ticket: StrictBool = Field(default=False, description="open a fault ticket for this device")
    severity: Severity = Severity.general
    symptoms: Lines = Field(default="", max_length=2000, validate_default=True)

    @field_validator("symptoms")
    @classmethod
    def _ticket_has_symptoms(cls, v: str, info: ValidationInfo) -> str:
        if info.data.get("open_ticket") and not v:
            raise ValueError("a finding that opens a fault ticket describes the symptoms")
        return v


class Inspect(Payload):
    """检查 (§八.8-10): who went, the customer's staff, findings per device."""

    team: list[Line] = Field(min_length=1, max_length=20, description="staff ids of who went")
    customer_staff_present: StrictBool
    customer_staff: list[Line] = Field(default_factory=list, max_length=50)
    trained: StrictBool = Field(default=False, validate_default=True)
    training_topics: Lines = Field(default="", max_length=2000)
    findings: list[Finding] = Field(min_length=1, max_length=500)
    summary: Lines = Field(default="", max_length=4000)

    @field_validator("trained")
    @classmethod
    def _training_needs_attendance(cls, v: bool, info: ValidationInfo) -> bool:
        if v and not info.data.get("customer_staff_present"):
            raise ValueError("the customer's staff were trained only if they came (§八.8)")
        return v


class Cancel(Payload):
    reason: Lines = Text


STEPS: dict[str, tuple[str, type[Payload]]] = {
    "assign": ("Assigned", AssignVisit),
    "call": ("FollowUpCalled", Call),
    "inspect": ("Inspected", Inspect),
    "cancel": ("Cancelled", Cancel),
}


def replacement_recommended(finding: dict[str, Any]) -> bool:
    drift = finding.get("drift_percent")
    return bool(finding.get("recommend_replacement")) or (drift is not None and drift >= REPLACE_AT_DRIFT_PERCENT)


def with_recommendations(data: dict[str, Any]) -> dict[str, Any]:
    """The Inspected event's data: each finding marked, and the devices to replace."""
    findings = [{**f, "replace": replacement_recommended(f)} for f in data["findings"]]
    return {**data, "findings": findings, "replacements": [f["device"] for f in findings if f["replace"]]}


class InspectionState(CaseState):
    TERMINAL = ("completed", "cancelled")

    contract_id: str = ""
    kind: str = ""
    month: int = 0
    customer: str = ""
    site: str = ""
    contact_phone: str = ""
    zone: str = "A"
    due_at: datetime | None = None
    responsible: str | None = None
    team: list[str] = Field(default_factory=list)
    customer_staff_present: bool | None = None
    customer_staff: list[str] = Field(default_factory=list)
    trained: bool | None = None
    findings: list[dict[str, Any]] = Field(default_factory=list)
    replacements: list[str] = Field(default_factory=list)
    tickets: list[dict[str, Any]] = Field(default_factory=list)  # [{finding, device, ticket_id}]
    call: dict[str, Any] | None = None
    completed_at: datetime | None = None
    cancel_reason: str | None = None


def check(state: InspectionState, step: str, data: dict) -> None:
    s = state.status

    def need(cond: bool, reason: str) -> None:
        if not cond:
            raise IllegalStep(s, step, reason, "inspection")

    if step not in STEPS:
        raise IllegalStep(s, step, f"unknown step; steps are {', '.join(STEPS)}", "inspection")
    need(s != "new", "the visit has not been scheduled")
    need(s not in InspectionState.TERMINAL, f"the visit is {s}")
    if step == "call":
        need(state.kind == "follow_up", "a call records a phone follow-up; an inspection is recorded with 'inspect'")
    elif step == "inspect":
        need(state.kind != "follow_up", "a phone follow-up is recorded with 'call'")


def evolve(state: InspectionState, event_type: str, data: dict, at: datetime, actor: str) -> InspectionState:
    """The state after a recorded event. The state is copied shallowly: what an event changes
    is replaced, never changed in place (domain.lifecycle)."""
    s = state.model_copy()
    s.version += 1
    if evolve_alarm(s, event_type, data, at):
        return s
    if event_type == "Scheduled":
        s.case_id = data.get("case_id", s.case_id)
        for k in ("contract_id", "kind", "month", "customer", "site", "contact_phone", "zone", "responsible"):
            setattr(s, k, data.get(k))
        s.due_at = datetime.fromisoformat(data["due_at"])
        s.windows = {GOAL: OpenWindow(**data["window"])}
        s.status = "scheduled"
    elif event_type == "Assigned":
        s.responsible = data["engineer"]
        set_responsible(s, GOAL, data["engineer"])
    elif event_type == "FollowUpCalled":
        s.call = data
        s.status, s.completed_at = "completed", at
        mark_met(s, GOAL, at)
    elif event_type == "Inspected":
        for k in ("team", "customer_staff_present", "customer_staff", "trained", "findings", "replacements"):
            setattr(s, k, data.get(k))
        s.status, s.completed_at = "completed", at
        mark_met(s, GOAL, at)
    elif event_type == "FaultTicketOpened":
        s.tickets = [*s.tickets, {k: data.get(k) for k in ("finding", "device", "ticket_id")}]
    elif event_type == "Cancelled":
        s.status, s.cancel_reason = "cancelled", data.get("reason")
    return s
