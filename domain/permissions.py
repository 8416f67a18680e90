"""Who may do what (roles from the org file) and what each role may not see, as pure
functions: one per decision, each refusal with a reason that names the rule. The API
asks these before it forwards anything, and answers a refusal with its reason.

Fault tickets. An intake clerk reports them. A ticket belongs to the department of its
assignee, or, before dispatch, of the supervisor who triaged it; an untriaged ticket
belongs to no department yet, so any supervisor may take it up (the after-sales duty
supervisor answers for it meanwhile, see `Org.duty_supervisor`). Supervisors triage,
dispatch within their department and close; engineers advance the tickets assigned to
them.

Complaints, returns/exchanges, maintenance plans and visits.
- Intake clerks register complaints and return requests (§九.C.2), and record what the
  customer says later (an escalation request, satisfaction, a confirmation).
- Supervisors, department heads (managers) and leadership handle them: a complaint by
  the department it was routed to (§九.C.3: R&D for product quality and functionality,
  the project department for the rest), a return's hand-off by its own department
  (§九.D.3: project approves and ships, R&D inspects, finance refunds); leadership may
  take any.
- Engineers do the visits of a maintenance plan: the follow-up call and the inspection
  of a visit they answer for or went on; supervisors and managers assign and cancel.

Managers, leadership and auditors read and replay everything and read the reports; they
change nothing. Confidential customer data (§四.5: passwords, core parameters, and here
the contact details) is masked for the auditor, who reads everything but needs none of it."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterable, Protocol

from domain.org import Org, Staff

# --- roles ---------------------------------------------------------------------------------

READ_ALL_ROLES = frozenset({"clerk", "supervisor", "manager", "leadership", "auditor"})
READ_ONLY_ROLES = frozenset({"manager", "leadership", "auditor"})  # the ticket's readers who change nothing
REPORT_READERS = READ_ONLY_ROLES
CASE_HANDLERS = frozenset({"supervisor", "manager", "leadership"})
CASE_READERS = READ_ALL_ROLES
DISPATCHABLE_ROLES = frozenset({"engineer", "supervisor"})

SUPERVISOR_STEPS = frozenset({"triage", "dispatch", "close"})  # of a ticket
CUSTOMER_VOICE_STEPS = {"complaint": frozenset({"escalate", "close"}), "return": frozenset({"confirm"})}
ENGINEER_VISIT_STEPS = frozenset({"call", "inspect"})

# --- masking (§四.5) ---------------------------------------------------------------------------

MASK = "***"
MASKED_FIELDS: dict[str, frozenset[str]] = {  # role -> fields it sees only as MASK
    "auditor": frozenset({"contact_phone", "confidential_notes", "contact"}),
}


def masked_fields(staff: Staff) -> frozenset[str]:
    return MASKED_FIELDS.get(staff.role, frozenset())


def mask(staff: Staff, data: dict[str, Any]) -> dict[str, Any]:
    """`data` with what this person may not see replaced by MASK (a copy when anything
    is hidden). A value that is None or "" stays as it is: there is nothing to hide."""
    hidden = masked_fields(staff)
    if not hidden:
        return data
    return {k: (MASK if k in hidden and v is not None and v != "" else v) for k, v in data.items()}


def mask_all(staff: Staff, rows: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    return [mask(staff, r) for r in rows]


# --- decisions ---------------------------------------------------------------------------------

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


# --- fault tickets -----------------------------------------------------------------------------

class _AssignedCase(Protocol):
    assignee: str | None
    supervisor: str | None


@dataclass(frozen=True)
class TicketFacts:
    """What the rules need to know about a ticket."""

    assignee: str | None = None
    supervisor: str | None = None

    @classmethod
    def of(cls, state: _AssignedCase) -> "TicketFacts":
        """The facts of a ticket's state (domain.lifecycle.TicketState)."""
        return cls(assignee=state.assignee, supervisor=state.supervisor)


def ticket_department(org: Org, ticket: TicketFacts) -> str | None:
    for who in (ticket.assignee, ticket.supervisor):
        person = org.get(who)
        if person is not None:
            return person.department
    return None


def may_report(staff: Staff) -> Decision:
    """报障: registering a fault ticket."""
    if staff.role == "clerk":
        return ALLOW
    return refuse(f"{staff.id} is a {staff.role}: tickets are reported by an intake clerk")


def may_read_ticket(staff: Staff, ticket: TicketFacts) -> Decision:
    """Reading a ticket, its history, a replay or its verification."""
    if staff.role in READ_ALL_ROLES:
        return ALLOW
    if staff.role == "engineer" and ticket.assignee == staff.id:
        return ALLOW
    if staff.role == "engineer":
        return refuse(f"{staff.id} is an engineer and ticket is assigned to "
                      f"{ticket.assignee or 'nobody yet'}: engineers read only their own tickets")
    return refuse(f"role {staff.role!r} may not read tickets")


def may_list_tickets(staff: Staff, assignee: str | None) -> tuple[Decision, str | None]:
    """Listing tickets, and the assignee filter the list is held to: an engineer sees
    only their own."""
    if staff.role == "engineer":
        if assignee not in (None, staff.id):
            return refuse(f"{staff.id} is an engineer: engineers list only their own tickets",
                          "assignee"), None
        return ALLOW, staff.id
    return may_read_ticket(staff, TicketFacts()), assignee


def may_step_ticket(org: Org, staff: Staff, step: str, ticket: TicketFacts, data: dict[str, Any]) -> Decision:
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


# --- complaints, returns, plans and visits -------------------------------------------------------

class _ReturnCase(Protocol):
    stage: str | None
    windows: dict[str, Any]


def may_register(staff: Staff, kind: str) -> Decision:
    """A complaint or a return request is registered by an intake clerk."""
    if staff.role == "clerk":
        return ALLOW
    return refuse(f"{staff.id} is a {staff.role}: a {kind} is registered by an intake clerk")


def may_read_case(staff: Staff, kind: str) -> Decision:
    """Reading a complaint, return, plan or visit, or its history."""
    if staff.role in CASE_READERS or (staff.role == "engineer" and kind in ("plan", "inspection")):
        return ALLOW
    return refuse(f"{staff.id} is a {staff.role}: that role does not read {kind}s")


def return_step_department(state: _ReturnCase) -> str | None:
    """The department that takes a return's next step: the open hand-off's (§九.D.3),
    as its window recorded it; None when no hand-off is open."""
    window = state.windows.get(state.stage or "")
    return window.department if window is not None else None


def handling_department(kind: str, state: Any) -> str | None:
    """The department that handles a complaint (the one it was routed to) or a return
    (its open hand-off's) now."""
    if kind == "complaint":
        return state.routed_to
    if kind == "return":
        return return_step_department(state)
    return None


def may_step_case(staff: Staff, kind: str, step: str, department: str | None = None) -> Decision:
    """A step on a complaint or return. `department` is the one that handles it now
    (`handling_department`); only its supervisors and head, or leadership, take the
    handling steps. A clerk records the customer's own requests."""
    if staff.role == "clerk" and step in CUSTOMER_VOICE_STEPS.get(kind, ()):
        return ALLOW
    if staff.role not in CASE_HANDLERS:
        return refuse(f"{staff.id} is a {staff.role}: {kind} steps are for supervisors, department heads "
                      "and leadership" + (" (clerks record the customer's own requests)" if staff.role == "clerk"
                                          else ""))
    if department and staff.role != "leadership" and staff.department != department \
            and step not in CUSTOMER_VOICE_STEPS.get(kind, ()):
        whose = "the complaint is routed to" if kind == "complaint" else "the open hand-off belongs to"
        return refuse(f"{whose} department {department!r}; {staff.id} is in {staff.department!r}")
    return ALLOW


def may_plan(staff: Staff) -> Decision:
    """Starting, changing or ending a contract's maintenance plan."""
    if staff.role in CASE_HANDLERS:
        return ALLOW
    return refuse(f"{staff.id} is a {staff.role}: a maintenance plan is set by a supervisor or department head")


def may_visit_step(staff: Staff, step: str, responsible: str | None, team: list[str] | None = None) -> Decision:
    """A step of a maintenance visit (a follow-up call or an inspection)."""
    if staff.role in CASE_HANDLERS:
        return ALLOW
    if staff.role == "engineer" and step in ENGINEER_VISIT_STEPS:
        if staff.id == responsible or staff.id in (team or []):
            return ALLOW
        return refuse(f"the visit is {responsible or 'nobody'}'s: engineers record their own visits")
    return refuse(f"{staff.id} is a {staff.role}: visits are recorded by their engineer, assigned by a supervisor")


# --- reports -------------------------------------------------------------------------------------

def may_read_reports(staff: Staff) -> Decision:
    """The assessment reports (考核) and the fault register: managers, leadership, auditors."""
    if staff.role in REPORT_READERS:
        return ALLOW
    return refuse(f"{staff.id} is a {staff.role}: reports are for {', '.join(sorted(REPORT_READERS))}")


# --- warnings and escalations as delivered (issue 14) ---------------------------------------

NOTIFICATION_READERS = frozenset({"manager", "leadership", "auditor"})
RESENDERS = frozenset({"manager", "leadership"})


def may_acknowledge(staff: Staff, target: str | None) -> Decision:
    """An escalation is acknowledged by the person it went to."""
    if staff.id == target:
        return ALLOW
    return refuse(f"the escalation went to {target or 'nobody'}, not {staff.id}: only its target acknowledges it")


def may_list_notifications(staff: Staff, target: str | None) -> tuple[Decision, str | None]:
    """Managers, leadership and auditors list every notification; anyone else their own."""
    if staff.role in NOTIFICATION_READERS:
        return ALLOW, target
    if target not in (None, staff.id):
        return refuse(f"{staff.id} is a {staff.role}: that role lists only the notifications sent to them",
                      "target"), None
    return ALLOW, staff.id


def may_resend(staff: Staff) -> Decision:
    if staff.role in RESENDERS:
        return ALLOW
    return refuse(f"{staff.id} is a {staff.role}: a notification is re-sent by a manager or company leadership")
