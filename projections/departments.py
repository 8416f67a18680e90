"""Department accountability (责任追究), per department per month: the breaches and
escalations of tickets, complaints, returns and inspections attributed to it through the person
responsible when each was recorded (§五.5, §九.A.2), the complaints found substantiated
against it (§九.C.7) and the return/exchange causes attributed to it (§九.D.4), with
the people involved. A ticket's department is the one the org file gives the person
when the fact is applied; complaints and returns name theirs."""
from __future__ import annotations

from collections import defaultdict
from typing import Any

from eventsourcing.dispatch import singledispatchmethod

from domain.complaint import Complaint
from domain.inspection import Inspection
from domain.returns import ReturnCase
from domain.ticket import Ticket
from projections.base import Batch, ReadModel, ReadModelView, Table, case_refs, department_of, org, staff_name

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
    version = 2  # 2: inspections' breaches and escalations too
    tickets = TICKETS
    facts = (ALERTS,)

    @singledispatchmethod
    def apply(self, event: Any, batch: Batch) -> None:
        """Other events do not change accountability."""

    @apply.register
    def _(self, e: Ticket.Reported, batch: Batch) -> None:
        batch.new_ticket(e, ticket_id=e.data["ticket_id"])

    @apply.register
    def _(self, e: Complaint.Registered, batch: Batch) -> None:
        batch.new_ticket(e, ticket_id=f"complaint:{e.data['case_id']}")

    @apply.register
    def _(self, e: ReturnCase.Requested, batch: Batch) -> None:
        batch.new_ticket(e, ticket_id=f"return:{e.data['case_id']}")

    @apply.register
    def _(self, e: Inspection.Scheduled, batch: Batch) -> None:
        batch.new_ticket(e, ticket_id=f"inspection:{e.data['case_id']}")

    def _fact(self, e: Any, batch: Batch, kind: str, person: str | None, department: str | None = None,
              level: int | None = None) -> None:
        row = batch.peek(e)
        if row is None:
            return
        batch.append(ALERTS, e, ticket_id=row["ticket_id"], month=batch.month(e),
                     department=department or department_of(person), person=person, kind=kind,
                     goal=e.data.get("goal"), level=level, escalated_to=e.data.get("to"), at=batch.at(e))

    @apply.register(Ticket.SlaBreached)
    @apply.register(Complaint.SlaBreached)
    @apply.register(ReturnCase.SlaBreached)
    @apply.register(Inspection.SlaBreached)
    def _breach(self, e: Any, batch: Batch) -> None:
        self._fact(e, batch, "breach", e.data.get("responsible"), e.data.get("department"))

    @apply.register(Ticket.Escalated)
    @apply.register(Complaint.Escalated)
    @apply.register(ReturnCase.Escalated)
    @apply.register(Inspection.Escalated)
    def _escalation(self, e: Any, batch: Batch) -> None:
        level = int(e.data.get("level", 1))
        if level >= 1:
            self._fact(e, batch, "escalation", e.data.get("responsible"), e.data.get("department"), level)

    @apply.register
    def _(self, e: Complaint.Replied, batch: Batch) -> None:
        if e.data.get("substantiated"):
            self._fact(e, batch, "substantiated_complaint", e.data.get("responsible_person"),
                       e.data.get("responsible_department"))

    @apply.register
    def _(self, e: ReturnCase.Inspected, batch: Batch) -> None:
        if e.data.get("responsible_department") or e.data.get("responsible_person"):
            self._fact(e, batch, "return_cause", e.data.get("responsible_person"),
                       e.data.get("responsible_department"))


def _case(key: str) -> tuple[str, str]:
    """(kind, case id) of a row key: a ticket's id, or "complaint:<id>", "return:<id>", "inspection:<id>"."""
    kind, _, case_id = key.partition(":")
    return (kind, case_id) if kind in (Complaint.KIND, ReturnCase.KIND, Inspection.KIND) else (Ticket.KIND, key)


COUNTS = {"breach": "breaches", "escalation": "escalations", "substantiated_complaint": "substantiated_complaints",
          "return_cause": "return_causes"}


def department_accountability(view: ReadModelView, month: str) -> list[dict[str, Any]]:
    """One row per department with facts held against it in `month` (YYYY-MM, CST)."""
    alerts = view.select(ALERTS, "month = ?", [month], order="department, at")
    by_department: dict[str, list[dict]] = defaultdict(list)
    for a in alerts:
        by_department[a["department"]].append(a)
    out = []
    for dep in sorted(by_department):
        rows = by_department[dep]
        people: dict[str | None, dict[str, int]] = defaultdict(lambda: dict.fromkeys(COUNTS.values(), 0))
        for a in rows:
            people[a["person"]][COUNTS[a["kind"]]] += 1
        department = org().departments.get(dep)
        out.append({
            "department": dep, "department_name": department.name if department else None, "month": month,
            "breaches": sum(1 for a in rows if a["kind"] == "breach"),
            "escalations": sum(1 for a in rows if a["kind"] == "escalation"),
            "leadership_escalations": sum(1 for a in rows if a["kind"] == "escalation" and (a["level"] or 0) >= 2),
            "substantiated_complaints": sum(1 for a in rows if a["kind"] == "substantiated_complaint"),
            "return_causes": sum(1 for a in rows if a["kind"] == "return_cause"),
            "tickets": len({a["ticket_id"] for a in rows}),
            "people": [{"person": p, "name": staff_name(p), **counts} for p, counts in
                       sorted(people.items(), key=lambda kv: kv[0] or "")],
            "events": case_refs((*_case(a["ticket_id"]), a["version"]) for a in rows),
        })
    return out
