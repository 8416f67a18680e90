"""Who may do what (roles from the org file), as pure functions.

The API asks these before it forwards anything; every refusal carries a reason that
names the rule. A ticket belongs to the department of its assignee, or, before
dispatch, of the supervisor who triaged it; an untriaged ticket belongs to no
department yet, so any supervisor may take it up (the after-sales duty supervisor
answers for it meanwhile, see `Org.duty_supervisor`).

Confidential customer data (§四.5: passwords, core parameters, and here the contact
phone) is masked for the auditor, who reads everything but needs none of it."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterable

from domain.org import Org, Staff

SUPERVISOR_STEPS = frozenset({"triage", "dispatch", "close"})
READ_ALL_ROLES = frozenset({"clerk", "supervisor", "manager", "leadership", "auditor"})
READ_ONLY_ROLES = frozenset({"manager", "leadership", "auditor"})
DISPATCHABLE_ROLES = frozenset({"engineer", "supervisor"})

MASK = "***"
MASKED_FIELDS: dict[str, frozenset[str]] = {
    "auditor": frozenset({"contact_phone", "confidential_notes"}),
}


@dataclass(frozen=True)
class Decision:
    allowed: bool
    reason: str = ""
    field: str | None = None  # set when the refusal is about a value in the request
    invalid: bool = False  # the value names nothing that exists (422), rather than a wrong person (403)

    def __bool__(self) -> bool:
        return self.allowed


ALLOW = Decision(True)


def refuse(reason: str, field: str | None = None, invalid: bool = False) -> Decision:
    return Decision(False, reason, field, invalid)


@dataclass(frozen=True)
class TicketFacts:
    """What the rules need to know about a ticket."""

    assignee: str | None = None
    supervisor: str | None = None


def ticket_department(org: Org, ticket: TicketFacts) -> str | None:
    for who in (ticket.assignee, ticket.supervisor):
        person = org.get(who)
        if person is not None:
            return person.department
    return None


def may_report(staff: Staff) -> Decision:
    if staff.role == "clerk":
        return ALLOW
    return refuse(f"{staff.id} is a {staff.role}: tickets are reported by an intake clerk")


def may_read(staff: Staff, ticket: TicketFacts) -> Decision:
    """Reading a ticket, its history, a replay or its verification."""
    if staff.role in READ_ALL_ROLES:
        return ALLOW
    if staff.role == "engineer" and ticket.assignee == staff.id:
        return ALLOW
    if staff.role == "engineer":
        return refuse(f"{staff.id} is an engineer and ticket is assigned to "
                      f"{ticket.assignee or 'nobody yet'}: engineers read only their own tickets")
    return refuse(f"role {staff.role!r} may not read tickets")


def list_filter(staff: Staff, assignee: str | None) -> tuple[Decision, str | None]:
    """The assignee filter a ticket list is held to: an engineer sees only their own."""
    if staff.role == "engineer":
        if assignee not in (None, staff.id):
            return refuse(f"{staff.id} is an engineer: engineers list only their own tickets",
                          "assignee"), None
        return ALLOW, staff.id
    return may_read(staff, TicketFacts()), assignee


def may_step(org: Org, staff: Staff, step: str, ticket: TicketFacts, data: dict[str, Any]) -> Decision:
    """A step on a ticket. Whether the step is legal now is the state machine's
    business (domain.lifecycle); this says only whether this person may take it."""
    if staff.role in READ_ONLY_ROLES:
        return refuse(f"{staff.id} is a {staff.role}: that role reads and replays, it does not change tickets")
    if staff.role == "clerk":
        return refuse(f"{staff.id} is a clerk: clerks report tickets; steps are for engineers and supervisors")
    department = ticket_department(org, ticket)
    if staff.role == "supervisor":
        if department is not None and department != staff.department:
            return refuse(f"ticket belongs to department {department!r}; {staff.id} supervises {staff.department!r}")
        if step == "dispatch":
            return _may_dispatch_to(org, staff, data.get("engineer"))
        return ALLOW
    if staff.role == "engineer":
        if step in SUPERVISOR_STEPS:
            return refuse(f"{staff.id} is an engineer: only a supervisor may {step} a ticket")
        if ticket.assignee != staff.id:
            return refuse(f"ticket is assigned to {ticket.assignee or 'nobody yet'}, not {staff.id}: "
                          "engineers advance only their own tickets")
        return ALLOW
    return refuse(f"role {staff.role!r} may not change tickets")


def _may_dispatch_to(org: Org, supervisor: Staff, engineer_id: Any) -> Decision:
    engineer = org.get(engineer_id) if isinstance(engineer_id, str) else None
    if engineer is None:
        return refuse(f"{engineer_id!r} is not on the staff", "engineer", invalid=True)
    if engineer.role not in DISPATCHABLE_ROLES:
        return refuse(f"{engineer.id} is a {engineer.role}, not an engineer", "engineer", invalid=True)
    if engineer.department != supervisor.department:
        return refuse(f"{engineer.id} works in {engineer.department!r}; {supervisor.id} dispatches "
                      f"within {supervisor.department!r}", "engineer")
    return ALLOW


def masked_fields(staff: Staff) -> frozenset[str]:
    return MASKED_FIELDS.get(staff.role, frozenset())


def mask(staff: Staff, data: dict[str, Any]) -> dict[str, Any]:
    """`data` with what this person may not see replaced by a mask (a copy)."""
    hidden = masked_fields(staff)
    if not hidden:
        return data
    return {k: (MASK if k in hidden and v is not None else v) for k, v in data.items()}


def mask_all(staff: Staff, rows: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    return [mask(staff, r) for r in rows]
