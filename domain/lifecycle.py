"""The fault ticket's rules as a case kind: which step is legal when, and how each
recorded event changes the state. One fold serves the aggregate, the workflow and the
history replay (`as_of`), so all three agree by construction.

The fold reads what was recorded: the windows (deadlines and alarm instants) travel in
`Reported` and `Triaged`, decided from the window table once, when the fact was first
recorded (`windows_data`). Changing the table changes tickets reported afterwards."""
from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import AliasChoices, Field, computed_field

from domain import policy
from domain.casework import Alert, CaseState, IllegalStep, OpenWindow, evolve_alarm, window
from domain.steps import STEPS

__all__ = ["Alert", "IllegalStep", "TicketState", "check", "evolve", "windows_data"]


class TicketState(CaseState):
    case_id: str = Field(validation_alias=AliasChoices("case_id", "ticket_id"))
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

    @computed_field
    @property
    def ticket_id(self) -> str:
        return self.case_id

    @computed_field
    @property
    def deadlines(self) -> dict[str, datetime]:
        """Deadline per goal, as recorded."""
        return {goal: w.deadline for goal, w in self.windows.items()}

    @property
    def responsible(self) -> str | None:
        """Who answers for the ticket now: the assignee, else the supervisor."""
        return self.assignee or self.supervisor


_OPEN_WORK = ("dispatched", "in_progress")


def check(state: TicketState, step: str, data: dict) -> None:
    """Raise IllegalStep unless `step` with `data` is legal now."""
    if step not in STEPS:
        raise IllegalStep(state.status, step, f"unknown step; steps are {', '.join(STEPS)}", "ticket")
    s = state.status

    def need(cond: bool, reason: str) -> None:
        if not cond:
            raise IllegalStep(s, step, reason, "ticket")

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


def windows_data(reported_at: datetime, severity: str, zone: str) -> dict[str, Any]:
    """The windows of a ticket as event data, from today's window table: consulted once,
    when `Reported` or `Triaged` is first recorded. Every window counts from the report."""
    return {goal: {k: v.isoformat() if isinstance(v, datetime) else v
                   for k, v in window(goal, reported_at, deadline).model_dump().items()}
            for goal, deadline in policy.deadlines(reported_at, severity, zone).items()}


def first_windows_data(reported_at: datetime, severity: str, zone: str) -> dict[str, Any]:
    """The windows as the workflow decided them before they travelled in the record's answer:
    the first table, deadlines only (the alarm instants then came from the shares in
    `domain.sla`). Ticket histories recorded then replay with this."""
    return {goal: {"goal": goal, "started_at": reported_at.isoformat(), "deadline": deadline.isoformat()}
            for goal, deadline in policy.deadlines(reported_at, severity, zone, policy.FIRST_SLA_TABLE).items()}


def _recorded_windows(data: dict, reported_at: datetime | None, kept: dict[str, OpenWindow]) -> dict[str, OpenWindow]:
    """The windows an event recorded: in full, or (events recorded before the alarm instants
    travelled with them) as deadlines counted from the report; `kept` when it recorded none."""
    if "windows" in data:
        return {goal: OpenWindow(**w) for goal, w in data["windows"].items()}
    if "deadlines" in data and reported_at is not None:
        return {goal: OpenWindow(goal=goal, started_at=reported_at, deadline=deadline)
                for goal, deadline in data["deadlines"].items()}
    return kept


def evolve(state: TicketState, event_type: str, data: dict, at: datetime, actor: str) -> TicketState:
    """The state after a recorded event. Never raises on a recorded fact. The state is copied
    shallowly (a replay folds every event: copying all of it each time was most of the
    fold's cost): what an event changes is replaced, never changed in place."""
    s = state.model_copy()
    s.version += 1
    if event_type == "Reported":
        s.status = "reported"
        for k in ("customer", "site", "contact_phone", "confidential_notes", "product_model",
                  "symptoms", "channel", "severity", "zone"):
            setattr(s, k, data.get(k))
        s.received_by, s.reported_at = actor, at
        s.windows = _recorded_windows(data, at, s.windows)
    elif event_type == "Triaged":
        s.severity, s.zone = data["severity"], data["zone"]
        s.service_category = data.get("service_category", "free")
        s.supervisor = actor
        s.windows = _recorded_windows(data, s.reported_at, s.windows)
        if s.status == "reported":
            s.status = "triaged"
    elif event_type == "Dispatched":
        s.assignee, s.travel_mode = data["engineer"], data.get("travel_mode")
        s.supervisor = actor
        s.status = "dispatched"
    elif event_type == "ArrivedOnSite":
        s.arrived_at, s.status = at, "in_progress"
        s.met = {policy.Goal.on_site.value: at, **s.met}
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
        # resolving also ends the need to be on site
        s.met = {**{goal.value: at for goal in policy.Goal}, **s.met}
    elif event_type == "SignedOff":
        s.satisfaction, s.status = data["satisfaction"], "signed_off"
    elif event_type == "Closed":
        s.closed_at, s.status = at, "closed"
    else:
        evolve_alarm(s, event_type, data, at)
    return s


def event_type_for(step: str) -> str:
    return STEPS[step][0]
