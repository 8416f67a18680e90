"""Whom a warning or an escalation goes to, for every case kind (§九.A.2, §九.C.3).

- Level 0, a warning: the person responsible for the window (the after-sales duty
  supervisor when nobody is yet).
- Level 1: the direct superior (直接上级) of the person responsible; level 2: company
  leadership (公司领导), the last level.
- An escalation never goes to a person it is about, and always to someone who may act
  on the case: from the direct superior the line is climbed until the target may act.
  Who may act: the supervisors and head of the department that handles the case now
  (a ticket's is its responsible person's department; a complaint's the department it
  was routed to; a return's the open hand-off's), and leadership anywhere.

Pure: the `escalation_target` activity asks this with the org file."""
from __future__ import annotations

from dataclasses import dataclass, field

from domain.org import Org, Staff

ACTING_ROLES = frozenset({"supervisor", "manager"})  # in the handling department


@dataclass(frozen=True)
class Line:
    """What the rule needs to know about the case and the missed window."""

    responsible: str | None  # whose superior the line starts from
    kind: str = "ticket"
    department: str | None = None  # the department handling the case now (None: the responsible's)
    about: frozenset[str] = field(default_factory=frozenset)  # people the case is about


def may_act(staff: Staff, department: str | None) -> bool:
    """Whether `staff` may act on a case handled by `department`."""
    if staff.role == "leadership":
        return True
    return staff.role in ACTING_ROLES and (department is None or staff.department == department)


def target(org: Org, line: Line, level: int) -> Staff:
    if level == 0:
        return org.get(line.responsible) or org.duty_supervisor()
    about = line.about | ({line.responsible} if line.responsible else set())
    leaders = org.leadership()
    # leadership is the last level: a leader the case is not about, if the company has one
    top = next((s for s in leaders if s.id not in about), leaders[0])
    if level >= 2:
        return top
    responsible = org.get(line.responsible)
    department = line.department or (responsible.department if responsible else None)
    candidate = org.superior_of(line.responsible)
    seen: set[str] = set()
    while candidate.role != "leadership" and (candidate.id in about or not may_act(candidate, department)):
        seen.add(candidate.id)
        nxt = org.superior_of(candidate.id)
        if nxt.id in seen:  # the org file forbids loops; leadership ends the line regardless
            return top
        candidate = nxt
    return top if candidate.role == "leadership" else candidate
