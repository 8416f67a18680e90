"""Escalation log (时限预警与上报): every warning and escalation — ticket, level,
target, reason, business time. Level 0 warns the responsible person before the
window closes, 1 goes to their direct superior, 2 to company leadership."""
from __future__ import annotations

from typing import Any

from eventsourcing.dispatch import singledispatchmethod

from domain.ticket import Ticket
from projections.base import Batch, ReadModel, ReadModelView, Table, iso

TICKETS = Table("escalation_tickets", (("originator_id", "TEXT"), ("ticket_id", "TEXT"), ("customer", "TEXT")),
                key=("originator_id",))
LOG = Table(
    "escalation_log",
    (("originator_id", "TEXT"), ("version", "INT"), ("ticket_id", "TEXT"), ("customer", "TEXT"),
     ("command_id", "TEXT"), ("kind", "TEXT"), ("level", "INT"), ("goal", "TEXT"), ("deadline", "TEXT"),
     ("responsible", "TEXT"), ("target", "TEXT"), ("target_name", "TEXT"), ("reason", "TEXT"), ("at", "TEXT")),
    key=("originator_id", "version"),
    indexes=(("at",), ("ticket_id",)),
)


class EscalationLog(ReadModel):
    name = "escalation_log"
    title = "Escalation log: every warning and escalation"
    tickets = TICKETS
    facts = (LOG,)

    @singledispatchmethod
    def apply(self, event: Any, batch: Batch) -> None:
        """Other events are not logged here."""

    @apply.register
    def _(self, e: Ticket.Reported, batch: Batch) -> None:
        batch.new_ticket(e, ticket_id=e.data["ticket_id"], customer=e.data.get("customer"))

    def _log(self, e: Any, batch: Batch, kind: str) -> None:
        row = batch.peek(e)
        if row is None:
            return
        d = e.data
        batch.append(LOG, e, ticket_id=row["ticket_id"], customer=row["customer"], kind=kind,
                     level=int(d.get("level", 0 if kind == "warning" else 1)), goal=d.get("goal"),
                     deadline=iso(d["deadline"]) if d.get("deadline") else None, responsible=d.get("responsible"),
                     target=d.get("to"), target_name=d.get("to_name"), reason=d.get("reason"), at=batch.at(e))

    @apply.register
    def _(self, e: Ticket.SlaWarned, batch: Batch) -> None:
        self._log(e, batch, "warning")

    @apply.register
    def _(self, e: Ticket.Escalated, batch: Batch) -> None:
        self._log(e, batch, "escalation")


def escalation_log(view: ReadModelView, start: str | None = None, end: str | None = None,
                   limit: int = 10000) -> list[dict[str, Any]]:
    """Warnings and escalations with start <= at < end (ISO UTC text), oldest first."""
    where, params = [], []
    if start is not None:
        where.append("at >= ?"), params.append(start)
    if end is not None:
        where.append("at < ?"), params.append(end)
    rows = view.select(LOG, " AND ".join(where), params, order="at, ticket_id, version", limit=limit)
    for r in rows:
        r["events"] = [{"ticket_id": r["ticket_id"], "versions": [r["version"]]}]
        del r["originator_id"]
    return rows
