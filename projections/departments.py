"""Department accountability (责任追究), per department per month: the breaches and
escalations attributed to it through the person responsible when each was recorded
(§五.5, §九.A.2), with the people involved. The department is the one the org file
gives the person when the fact is applied."""
from __future__ import annotations

from collections import defaultdict
from typing import Any

from eventsourcing.dispatch import singledispatchmethod

from domain.ticket import Ticket
from projections.base import Batch, ReadModel, ReadModelView, Table, department_of, org, refs, staff_name

TICKETS = Table("department_tickets", (("originator_id", "TEXT"), ("ticket_id", "TEXT")), key=("originator_id",))
ALERTS = Table(
    "department_alerts",
    (("originator_id", "TEXT"), ("version", "INT"), ("ticket_id", "TEXT"), ("command_id", "TEXT"),
     ("month", "TEXT"), ("department", "TEXT"), ("person", "TEXT"), ("kind", "TEXT"), ("goal", "TEXT"),
     ("level", "INT"), ("escalated_to", "TEXT"), ("at", "TEXT")),
    key=("originator_id", "version"),
    indexes=(("month", "department"),),
)


class DepartmentAccountability(ReadModel):
    name = "department_accountability"
    title = "Department accountability, per department per month"
    tickets = TICKETS
    facts = (ALERTS,)

    @singledispatchmethod
    def apply(self, event: Any, batch: Batch) -> None:
        """Other events do not change accountability."""

    @apply.register
    def _(self, e: Ticket.Reported, batch: Batch) -> None:
        batch.new_ticket(e, ticket_id=e.data["ticket_id"])

    def _alert(self, e: Any, batch: Batch, kind: str, level: int | None) -> None:
        row = batch.peek(e)
        if row is None:
            return
        person = e.data.get("responsible")
        batch.append(ALERTS, e, ticket_id=row["ticket_id"], month=batch.month(e), department=department_of(person),
                     person=person, kind=kind, goal=e.data.get("goal"), level=level, escalated_to=e.data.get("to"),
                     at=batch.at(e))

    @apply.register
    def _(self, e: Ticket.SlaBreached, batch: Batch) -> None:
        self._alert(e, batch, "breach", None)

    @apply.register
    def _(self, e: Ticket.Escalated, batch: Batch) -> None:
        level = int(e.data.get("level", 1))
        if level >= 1:
            self._alert(e, batch, "escalation", level)


def department_accountability(view: ReadModelView, month: str) -> list[dict[str, Any]]:
    """One row per department with breaches or escalations in `month` (YYYY-MM, CST)."""
    alerts = view.select(ALERTS, "month = ?", [month], order="department, at")
    by_department: dict[str, list[dict]] = defaultdict(list)
    for a in alerts:
        by_department[a["department"]].append(a)
    out = []
    for dep in sorted(by_department):
        rows = by_department[dep]
        people: dict[str | None, dict[str, int]] = defaultdict(lambda: {"breaches": 0, "escalations": 0})
        for a in rows:
            people[a["person"]]["breaches" if a["kind"] == "breach" else "escalations"] += 1
        department = org().departments.get(dep)
        out.append({
            "department": dep, "department_name": department.name if department else None, "month": month,
            "breaches": sum(1 for a in rows if a["kind"] == "breach"),
            "escalations": sum(1 for a in rows if a["kind"] == "escalation"),
            "leadership_escalations": sum(1 for a in rows if a["kind"] == "escalation" and (a["level"] or 0) >= 2),
            "tickets": len({a["ticket_id"] for a in rows}),
            "people": [{"person": p, "name": staff_name(p), **counts} for p, counts in
                       sorted(people.items(), key=lambda kv: kv[0] or "")],
            "events": refs((a["ticket_id"], a["version"]) for a in rows),
        })
    return out
