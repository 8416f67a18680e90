"""Who may do what with complaints, returns/exchanges, maintenance plans and their
visits, as pure functions beside `domain.permissions` (the tickets' rules, whose
`Decision` these answer with).

- Intake clerks register complaints and return requests (§九.C.2), and record what the
  customer says later (an escalation request, satisfaction, a confirmation).
- Supervisors, department heads (managers) and leadership handle them: a complaint by
  the department it was routed to (§九.C.3: R&D for product quality and functionality,
  the project department for the rest), a return's hand-off by its own department
  (§九.D.3: project approves and ships, R&D inspects, finance refunds); leadership may
  take any.
- Engineers do the visits of a maintenance plan: the follow-up call and the inspection
  of a visit they answer for or went on; supervisors and managers assign and cancel.
- Auditors read everything and change nothing; the customer's contact is masked for them."""
from __future__ import annotations

from typing import Any

from domain.org import Staff
from domain.permissions import ALLOW, Decision, refuse

HANDLERS = frozenset({"supervisor", "manager", "leadership"})
READERS = frozenset({"clerk", "supervisor", "manager", "leadership", "auditor"})
CUSTOMER_VOICE_STEPS = {"complaint": frozenset({"escalate", "close"}), "return": frozenset({"confirm"})}
ENGINEER_VISIT_STEPS = frozenset({"call", "inspect"})
MASKED_FOR_AUDITORS = frozenset({"contact", "contact_phone"})
MASK = "***"


def may_register(staff: Staff, kind: str) -> Decision:
    """A complaint or a return request is registered by an intake clerk."""
    if staff.role == "clerk":
        return ALLOW
    return refuse(f"{staff.id} is a {staff.role}: a {kind} is registered by an intake clerk")


def may_read(staff: Staff, kind: str) -> Decision:
    if staff.role in READERS or (staff.role == "engineer" and kind in ("plan", "inspection")):
        return ALLOW
    return refuse(f"{staff.id} is a {staff.role}: that role does not read {kind}s")


def may_step(staff: Staff, kind: str, step: str, department: str | None = None) -> Decision:
    """A step on a complaint or return. `department` is the one that handles it now: the
    department a complaint was routed to, or the open hand-off's for a return; only its
    supervisors and head (or leadership) take the handling steps."""
    if staff.role == "clerk" and step in CUSTOMER_VOICE_STEPS.get(kind, ()):
        return ALLOW
    if staff.role not in HANDLERS:
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
    if staff.role in HANDLERS:
        return ALLOW
    return refuse(f"{staff.id} is a {staff.role}: a maintenance plan is set by a supervisor or department head")


def may_visit_step(staff: Staff, step: str, responsible: str | None, team: list[str] | None = None) -> Decision:
    if staff.role in HANDLERS:
        return ALLOW
    if staff.role == "engineer" and step in ENGINEER_VISIT_STEPS:
        if staff.id == responsible or staff.id in (team or []):
            return ALLOW
        return refuse(f"the visit is {responsible or 'nobody'}'s: engineers record their own visits")
    return refuse(f"{staff.id} is a {staff.role}: visits are recorded by their engineer, assigned by a supervisor")


def mask(staff: Staff, data: dict[str, Any]) -> dict[str, Any]:
    if staff.role != "auditor":
        return data
    return {k: (MASK if k in MASKED_FOR_AUDITORS and v else v) for k, v in data.items()}
