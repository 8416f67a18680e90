"""Escalation log (时限预警与上报): every warning and escalation of every case kind —
fault tickets, complaints, returns/exchanges and inspections (they share the event
store and the alarm rules, `domain.sla`) — with the case, customer, level, target,
reason and business time. Level 0 warns the responsible person before the window
closes, 1 goes to their direct superior, 2 to company leadership.

`source` says what raised it: `window` (a window's alarm: the warning, the breach's
escalation, leadership half a window later), `customer` (a complainant took the
complaint to the superior or to leadership, §九.C.3: logged at the level asked for,
with the person it went to) or `emergency` (an emergency complaint reported to
leadership at once, §九.C.2). Only `window` rows count against anyone
(projections.candidates, projections.departments)."""
from __future__ import annotations

from typing import Any

from eventsourcing.dispatch import singledispatchmethod

from domain.complaint import Complaint
from domain.inspection import Inspection
from domain.returns import ReturnCase
from domain.ticket import Ticket
from projections.base import Batch, ReadModel, ReadModelView, Table, case_refs, iso

TICKETS = Table(  # one row per case (the table keeps its old name)
    "escalation_tickets",
    (("originator_id", "TEXT"), ("ticket_id", "TEXT"), ("customer", "TEXT"), ("case_kind", "TEXT"),
     ("case_id", "TEXT")),
    key=("originator_id",))
LOG = Table(
    "escalation_log",
    (("originator_id", "TEXT"), ("version", "INT"), ("case_kind", "TEXT"), ("case_id", "TEXT"),
     ("ticket_id", "TEXT"), ("customer", "TEXT"), ("command_id", "TEXT"), ("kind", "TEXT"), ("level", "INT"),
     ("source", "TEXT"), ("goal", "TEXT"), ("deadline", "TEXT"), ("responsible", "TEXT"), ("target", "TEXT"),
     ("target_name", "TEXT"), ("reason", "TEXT"), ("at", "TEXT")),
    key=("originator_id", "version"),
    indexes=(("at",), ("ticket_id",), ("case_kind", "case_id")),
)


class EscalationLog(ReadModel):
    name = "escalation_log"
    title = "Escalation log: every warning and escalation of every case kind"
    version = 2  # 2: every case kind, case_kind, case_id and source columns
    tickets = TICKETS
    facts = (LOG,)

    @singledispatchmethod
    def apply(self, event: Any, batch: Batch) -> None:
        """Other events are not logged here."""

    @apply.register
    def _(self, e: Ticket.Reported, batch: Batch) -> None:
        tid = e.data["ticket_id"]
        batch.new_ticket(e, ticket_id=tid, customer=e.data.get("customer"), case_kind="ticket", case_id=tid)

    @apply.register(Complaint.Registered)
    @apply.register(ReturnCase.Requested)
    @apply.register(Inspection.Scheduled)
    def _opened(self, e: Any, batch: Batch) -> None:
        batch.new_ticket(e, customer=e.data.get("customer"), case_kind=KINDS[type(e)], case_id=e.data["case_id"])

    def _log(self, e: Any, batch: Batch, kind: str, source: str = "window", **values: Any) -> None:
        row = batch.peek(e)
        if row is None:
            return
        d = e.data
        fields = dict(level=int(d.get("level", 0 if kind == "warning" else 1)), goal=d.get("goal"),
                      deadline=iso(d["deadline"]) if d.get("deadline") else None, responsible=d.get("responsible"),
                      target=d.get("to"), target_name=d.get("to_name"), reason=d.get("reason"))
        batch.append(LOG, e, case_kind=row["case_kind"], case_id=row["case_id"],
                     ticket_id=row["ticket_id"], customer=row["customer"], kind=kind, source=source,
                     at=batch.at(e), **{**fields, **values})

    @apply.register(Ticket.SlaWarned)
    @apply.register(Complaint.SlaWarned)
    @apply.register(ReturnCase.SlaWarned)
    @apply.register(Inspection.SlaWarned)
    def _warned(self, e: Any, batch: Batch) -> None:
        self._log(e, batch, "warning")

    @apply.register(Ticket.Escalated)
    @apply.register(Complaint.Escalated)
    @apply.register(ReturnCase.Escalated)
    @apply.register(Inspection.Escalated)
    def _escalated(self, e: Any, batch: Batch) -> None:
        self._log(e, batch, "escalation")

    @apply.register
    def _(self, e: Complaint.CustomerEscalated, batch: Batch) -> None:
        # `to` is where the customer went ("superior" or "leadership"); the person is `to_staff`
        self._log(e, batch, "escalation", "customer", target=e.data.get("to_staff"))

    @apply.register
    def _(self, e: Complaint.LeadershipNotified, batch: Batch) -> None:
        self._log(e, batch, "escalation", "emergency", level=2)


KINDS = {Complaint.Registered: Complaint.KIND, ReturnCase.Requested: ReturnCase.KIND,
         Inspection.Scheduled: Inspection.KIND}


def escalation_log(view: ReadModelView, start: str | None = None, end: str | None = None,
                   limit: int = 10000) -> list[dict[str, Any]]:
    """Warnings and escalations with start <= at < end (ISO UTC text), oldest first.
    Each row names its case (`case_kind`, `case_id`; `ticket_id` only for a ticket)
    and its event (`events`: [{"ticket_id" | "complaint_id" | "return_id" |
    "inspection_id": id, "versions": [version]}])."""
    where, params = [], []
    if start is not None:
        where.append("at >= ?"), params.append(start)
    if end is not None:
        where.append("at < ?"), params.append(end)
    rows = view.select(LOG, " AND ".join(where), params, order="at, case_kind, case_id, version", limit=limit)
    for r in rows:
        r["events"] = case_refs([(r["case_kind"], r["case_id"], r["version"])])
        del r["originator_id"]
    return rows
