"""Who may do what (roles from the org file) and what each role may not see, as pure
functions: one per decision, each refusal with a reason that names the rule. The API
asks these before it forwards anything, and answers a refusal with its reason.

Fault tickets. An intake clerk reports them. A ticket belongs to the department of its
assignee, or, before dispatch, of the supervisor who triaged it; an untriaged ticket
belongs to no department yet, so any supervisor may take it up (the after-sales duty
supervisor answers for it meanwhile, see `Org.duty_supervisor`). Supervisors triage,
dispatch within their department and close; engineers advance the tickets assigned to
them.

Complaints, returns/exchanges, maintenance plans and visits (least privilege: each step
by the department that handles the case now, and leadership).
- Intake clerks register complaints and return requests (§九.C.2).
- Supervisors, department heads (managers) and leadership handle them: a complaint by
  the department it was routed to (§九.C.3: R&D for product quality and functionality,
  the project department for the rest), a return's hand-off by its own department
  (§九.D.3: project approves and ships, R&D inspects, finance refunds, after-sales follows
  up the customer's confirmation); leadership may take any.
- What the customer says later (a complaint's escalation request and satisfaction, a
  return's confirmation: CUSTOMER_VOICE_STEPS) is recorded by the department handling the
  case — its clerks, supervisors and head — or leadership; not by another department, so
  the department complained about never closes the complaint against it. A person a
  complaint is about (the person complained about, the head of the department complained
  about) neither records what the customer says of it nor its finding (the reply:
  substantiated or not); leadership does where nobody else of the department can.
- A maintenance contract belongs to a department: its engineer in charge's, else the
  project department's (§八: 由项目实施部门负责日常实施). That department's supervisors
  and head, and leadership, start, change and end its plan and assign and cancel its
  visits, handing them only within the department. Engineers do the visits: the
  follow-up call and the inspection of a visit they answer for or went on; they read the
  visits assigned to them, and the plan they are in charge of without its contact phone
  (the visit carries it), and no other plan or visit.

Managers, leadership and auditors read and replay everything and read the reports; they
change nothing. Confidential customer data (§四.5: passwords, core parameters, and here
the contact details: PERSONAL_FIELDS) is masked for the auditor, who reads everything but
needs none of it, and kept by nothing that does not need it (api.idempotency)."""
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
JUDGING_STEPS = {"complaint": frozenset({"reply"})}  # the finding: substantiated or not, and against whom
ENGINEER_VISIT_STEPS = frozenset({"call", "inspect"})

# --- masking (§四.5) ---------------------------------------------------------------------------

MASK = "***"
PERSONAL_FIELDS = frozenset({"contact_phone", "confidential_notes", "contact"})  # the customer's, §四.5
MASKED_FIELDS: dict[str, frozenset[str]] = {  # role -> fields it sees only as MASK
    "auditor": PERSONAL_FIELDS,
}
MASKED_BY_KIND: dict[tuple[str, str], frozenset[str]] = {  # (role, case kind) -> more fields it sees masked
    ("engineer", "plan"): PERSONAL_FIELDS,  # the visit assigned to them carries the phone they call
}


def masked_fields(staff: Staff, kind: str | None = None) -> frozenset[str]:
    return MASKED_FIELDS.get(staff.role, frozenset()) | MASKED_BY_KIND.get((staff.role, kind or ""), frozenset())


def mask(staff: Staff, data: dict[str, Any], kind: str | None = None) -> dict[str, Any]:
    """`data` (of a case of `kind`, if given) with what this person may not see replaced
    by MASK (a copy when anything is hidden). A value that is None or "" stays as it is:
    there is nothing to hide."""
    hidden = masked_fields(staff, kind)
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


class _Responsible(Protocol):
    responsible: str | None


@dataclass(frozen=True)
class VisitFacts:
    """What the rules need to know about a maintenance plan or one of its visits."""

    responsible: str | None = None  # the engineer in charge (of the plan, or of the visit)
    team: tuple[str, ...] = ()  # who went on the visit
    department: str | None = None  # the contract's department (`contract_department`)

    @classmethod
    def of(cls, org: Org, state: _Responsible) -> "VisitFacts":
        """The facts of a PlanState or an InspectionState."""
        return cls(responsible=state.responsible, team=tuple(getattr(state, "team", ()) or ()),
                   department=contract_department(org, state.responsible))


def contract_department(org: Org, responsible: str | None) -> str | None:
    """The department a maintenance contract belongs to: its engineer in charge's, else the
    project department (§八: 由项目实施部门负责日常实施)."""
    person = org.get(responsible)
    if person is not None:
        return person.department
    return next((d.id for d in org.departments.values() if d.kind == "project"), None)


def may_register(staff: Staff, kind: str) -> Decision:
    """A complaint or a return request is registered by an intake clerk."""
    if staff.role == "clerk":
        return ALLOW
    return refuse(f"{staff.id} is a {staff.role}: a {kind} is registered by an intake clerk")


def may_read_case(staff: Staff, kind: str, case: VisitFacts | None = None) -> Decision:
    """Reading a complaint, return, plan or visit, or its history. An engineer reads the
    visits assigned to them (in charge, or on its team) and the plans they are in charge
    of: with `case`, whether this one is theirs; without, whether they read some at all (a
    menu; a list is held to their own by `may_list_cases`)."""
    if staff.role in CASE_READERS:
        return ALLOW
    if staff.role == "engineer" and kind in ("plan", "inspection"):
        if case is None or staff.id == case.responsible or (kind == "inspection" and staff.id in case.team):
            return ALLOW
        whose = f"{case.responsible}'s" if case.responsible else "nobody's"
        return refuse(f"the {'plan' if kind == 'plan' else 'visit'} is {whose}, not {staff.id}'s: engineers read "
                      "only the visits assigned to them and the plans they are in charge of")
    return refuse(f"{staff.id} is a {staff.role}: that role does not read {kind}s")


def may_list_cases(staff: Staff, kind: str) -> tuple[Decision, str | None]:
    """Listing cases of `kind`, and the person the list is held to: an engineer lists only
    their own visits and the plans they are in charge of."""
    decision = may_read_case(staff, kind)
    if decision and staff.role == "engineer":
        return decision, staff.id
    return decision, None


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


def case_about(kind: str, state: Any) -> frozenset[str]:
    """The people a case is about, who neither judge it nor record what the customer says of
    it: a complaint's person complained about and the head of the department complained
    about (as the escalation line has it)."""
    if kind != "complaint":
        return frozenset()
    about = (state.about_person, state.about_head if state.about_department else None)
    return frozenset(p for p in about if p)


def may_step_case(staff: Staff, kind: str, step: str, department: str | None = None,
                  about: frozenset[str] | set[str] = frozenset()) -> Decision:
    """A step on a complaint or return. `department` is the one that handles it now
    (`handling_department`); only its supervisors and head, or leadership, take the
    handling steps, and only they or its clerks record what the customer says
    (CUSTOMER_VOICE_STEPS). Nobody the case is about (`case_about`) records what the
    customer says or the finding (JUDGING_STEPS); they may take it up (acknowledge)."""
    voice = step in CUSTOMER_VOICE_STEPS.get(kind, ())
    if staff.id in about and (voice or step in JUDGING_STEPS.get(kind, ())):
        return refuse(f"the {kind} is about {staff.id}: a person a {kind} is about neither judges it nor records "
                      "what the customer says of it")
    if staff.role not in CASE_HANDLERS and not (voice and staff.role == "clerk"):
        return refuse(f"{staff.id} is a {staff.role}: {kind} steps are for supervisors, department heads "
                      "and leadership" + (" (clerks record what the customer says, in the department handling it)"
                                          if staff.role == "clerk" else ""))
    if department and staff.role != "leadership" and staff.department != department:
        whose = "the complaint is routed to" if kind == "complaint" else "the open hand-off belongs to"
        return refuse(f"{whose} department {department!r}; {staff.id} is in {staff.department!r}"
                      + (": what the customer says is recorded by that department or leadership" if voice else ""))
    return ALLOW


def may_plan(org: Org, staff: Staff, responsible: str | None, new_responsible: str | None = None) -> Decision:
    """Starting, changing or ending a contract's maintenance plan: the contract's department
    (`contract_department` of its engineer in charge, `responsible`) or leadership; a new
    engineer in charge (`new_responsible`) from the same department but by leadership."""
    if staff.role not in CASE_HANDLERS:
        return refuse(f"{staff.id} is a {staff.role}: a maintenance plan is set by a supervisor or department "
                      "head of the contract's department, or leadership")
    return _within_contract_department(org, staff, contract_department(org, responsible), new_responsible,
                                       "responsible", "the plan")


def _within_contract_department(org: Org, staff: Staff, department: str | None, handed_to: str | None,
                                field: str, what: str) -> Decision:
    if staff.role == "leadership":
        return ALLOW
    if department is not None and staff.department != department:
        return refuse(f"{what} belongs to department {department!r} (the contract's); {staff.id} is in "
                      f"{staff.department!r}")
    if handed_to is not None:
        person = org.get(handed_to)
        if person is None:
            return refuse(f"{handed_to!r} is not on the staff", field, invalid=True)
        if person.department != staff.department:
            return refuse(f"{person.id} works in {person.department!r}; {staff.id} hands {what} only within "
                          f"{staff.department!r} (leadership may hand it to another department)", field)
    return ALLOW


def may_visit_step(org: Org, staff: Staff, step: str, visit: VisitFacts, data: dict[str, Any] | None = None) -> Decision:
    """A step of a maintenance visit (a follow-up call or an inspection): the engineer in
    charge or on its team records it; the contract's department or leadership assigns
    (within the department) and cancels."""
    if staff.role in CASE_HANDLERS:
        engineer = (data or {}).get("engineer") if step == "assign" else None
        return _within_contract_department(org, staff, visit.department, engineer, "engineer", "the visit")
    if staff.role == "engineer" and step in ENGINEER_VISIT_STEPS:
        if staff.id == visit.responsible or staff.id in visit.team:
            return ALLOW
        return refuse(f"the visit is {visit.responsible or 'nobody'}'s: engineers record their own visits")
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
