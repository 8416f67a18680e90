"""The fault ticket's state machine: which step is legal when, and how each recorded
event changes the state. One fold serves the aggregate, the workflow and the
history replay (`as_of`), so all three agree by construction."""
from __future__ import annotations

from datetime import datetime
from pydantic import BaseModel, Field

from domain import policy
from domain.steps import STEPS


class IllegalStep(Exception):
    """A step that the ticket's current state does not allow."""

    def __init__(self, status: str, step: str, reason: str):
        self.status, self.step, self.reason = status, step, reason
        super().__init__(f"step '{step}' is not allowed while the ticket is '{status}': {reason}")


class Alert(BaseModel):
    """A warning, breach or escalation as the ticket shows it."""

    goal: str
    deadline: datetime
    at: datetime
    responsible: str | None = None
    level: int | None = None  # 0 warning to the responsible person, 1 superior, 2 leadership
    to: str | None = None
    to_name: str | None = None
    reason: str | None = None


class TicketState(BaseModel):
    ticket_id: str
    version: int = 0
    status: str = "new"
    customer: str = ""
    site: str = ""
    contact_phone: str = ""
    confidential_notes: str | None = None
    product_model: str = ""
    symptoms: str = ""
    channel: str = ""
    received_by: str = ""
    reported_at: datetime | None = None
    severity: str = "general"
    zone: str = "A"
    service_category: str | None = None
    deadlines: dict[str, datetime] = Field(default_factory=dict)
    met: dict[str, datetime] = Field(default_factory=dict)
    supervisor: str | None = None
    assignee: str | None = None
    travel_mode: str | None = None
    arrived_at: datetime | None = None
    remote_at: datetime | None = None
    fee_quoted_yuan: str | None = None
    fee_accepted: bool = False
    equipment_receipt: str | None = None
    backup_unit: str | None = None
    resolved_at: datetime | None = None
    satisfaction: int | None = None
    closed_at: datetime | None = None
    warnings: list[Alert] = Field(default_factory=list)
    breaches: list[Alert] = Field(default_factory=list)
    escalations: list[Alert] = Field(default_factory=list)
    fired: list[str] = Field(default_factory=list)  # "goal:kind" alarms already raised

    @property
    def responsible(self) -> str | None:
        """Who answers for the ticket now: the assignee, else the supervisor."""
        return self.assignee or self.supervisor


_OPEN_WORK = ("dispatched", "in_progress")


def check(state: TicketState, step: str, data: dict) -> None:
    """Raise IllegalStep unless `step` with `data` is legal now."""
    if step not in STEPS:
        raise IllegalStep(state.status, step, f"unknown step; steps are {', '.join(STEPS)}")
    s = state.status

    def need(cond: bool, reason: str) -> None:
        if not cond:
            raise IllegalStep(s, step, reason)

    need(s not in ("new",), "the ticket has not been reported yet")
    need(s != "closed", "the ticket is closed")
    paid_ok = state.service_category != "paid" or state.fee_accepted
    if step == "triage":
        need(s in ("reported", "triaged", *_OPEN_WORK), "triage is only possible before resolution")
    elif step == "dispatch":
        need(s in ("triaged", "dispatched"), "dispatch needs a triaged ticket not yet started")
    elif step == "arrive":
        need(s in _OPEN_WORK, "arrival needs a dispatched ticket")
        need(state.arrived_at is None, "the engineer has already arrived")
    elif step == "start-remote":
        need(s in _OPEN_WORK, "a remote session needs a dispatched ticket")
        need(state.remote_at is None, "a remote session has already started")
    elif step == "quote-fee":
        need(s == "in_progress", "a fee is quoted once work has started")
        need(state.service_category == "paid", "only paid service is quoted (§九.E.3)")
        need(not state.fee_accepted, "the fee has already been accepted")
    elif step == "accept-fee":
        need(state.fee_quoted_yuan is not None, "no fee has been quoted")
        need(not state.fee_accepted, "the fee has already been accepted")
    elif step == "take-back":
        need(s == "in_progress", "equipment is taken back during the work")
        need(state.equipment_receipt is None, "equipment is already taken back")
        need(paid_ok, "paid work needs the fee accepted before work (§九.E.12)")
    elif step == "return-equipment":
        need(state.equipment_receipt is not None, "no equipment has been taken back")
        need(data.get("receipt_no") == state.equipment_receipt,
             f"the receipt to take back is {state.equipment_receipt}")
    elif step == "provide-backup":
        need(s in ("dispatched", "in_progress"), "a backup unit is provided while the fault is open")
        need(state.backup_unit is None, "a backup unit is already provided")
        need(state.service_category != "paid", "backup units are a warranty service (§九.A.4)")
    elif step == "retrieve-backup":
        need(state.backup_unit is not None, "no backup unit is out")
        need(data.get("unit") == state.backup_unit, f"the backup unit out is {state.backup_unit}")
    elif step == "resolve":
        need(s == "in_progress", "resolution needs work started (arrived or remote)")
        need(state.equipment_receipt is None, "equipment taken back must be returned first")
        need(paid_ok, "paid work needs the fee accepted before work (§九.E.12)")
    elif step == "sign-off":
        need(s == "resolved", "the customer signs off a resolved ticket")
        need(state.equipment_receipt is None, "equipment taken back must be returned first")
    elif step == "close":
        need(s == "signed_off", "the supervisor closes a signed-off ticket")
        need(state.backup_unit is None, "the backup unit must be retrieved first")


def evolve(state: TicketState, event_type: str, data: dict, at: datetime, actor: str) -> TicketState:
    """The state after a recorded event. Never raises on a recorded fact."""
    s = state.model_copy(deep=True)
    s.version += 1
    if event_type == "Reported":
        s.status = "reported"
        for k in ("customer", "site", "contact_phone", "confidential_notes", "product_model",
                  "symptoms", "channel", "severity", "zone"):
            setattr(s, k, data.get(k))
        s.received_by, s.reported_at = actor, at
        s.deadlines = policy.deadlines(at, s.severity, s.zone)
    elif event_type == "Triaged":
        s.severity, s.zone = data["severity"], data["zone"]
        s.service_category = data.get("service_category", "free")
        s.supervisor = actor
        if s.reported_at is not None:
            s.deadlines = policy.deadlines(s.reported_at, s.severity, s.zone)
        if s.status == "reported":
            s.status = "triaged"
    elif event_type == "Dispatched":
        s.assignee, s.travel_mode = data["engineer"], data.get("travel_mode")
        s.supervisor = actor
        s.status = "dispatched"
    elif event_type == "ArrivedOnSite":
        s.arrived_at, s.status = at, "in_progress"
        s.met.setdefault(policy.Goal.on_site.value, at)
    elif event_type == "RemoteSessionStarted":
        s.remote_at, s.status = at, "in_progress"
    elif event_type == "FeeQuoted":
        s.fee_quoted_yuan = str(data["amount_yuan"])
    elif event_type == "FeeAccepted":
        s.fee_accepted = True
    elif event_type == "EquipmentTakenBack":
        s.equipment_receipt = data["receipt_no"]
    elif event_type == "EquipmentReturned":
        s.equipment_receipt = None
    elif event_type == "BackupUnitProvided":
        s.backup_unit = data["unit"]
    elif event_type == "BackupUnitRetrieved":
        s.backup_unit = None
    elif event_type == "Resolved":
        s.resolved_at, s.status = at, "resolved"
        for goal in policy.Goal:  # resolving also ends the need to be on site
            s.met.setdefault(goal.value, at)
    elif event_type == "SignedOff":
        s.satisfaction, s.status = data["satisfaction"], "signed_off"
    elif event_type == "Closed":
        s.closed_at, s.status = at, "closed"
    elif event_type == "SlaWarned":
        s.warnings.append(Alert(**data, at=at))
        s.fired.append(f"{data['goal']}:warning")
    elif event_type == "SlaBreached":
        s.breaches.append(Alert(**data, at=at))
        s.fired.append(f"{data['goal']}:breach")
    elif event_type == "Escalated":
        s.escalations.append(Alert(**data, at=at))
        if data["level"] >= 2:
            s.fired.append(f"{data['goal']}:leadership")
    return s


def event_type_for(step: str) -> str:
    return STEPS[step][0]
