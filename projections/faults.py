"""Fault register and problem library (《故障处理情况登记表》, §八.6, §八.12): every
fault handled — product model, symptoms, cause, resolution, parts, engineer, and the
written summary of a difficult one — searchable by words in the symptoms and cause."""
from __future__ import annotations

from typing import Any

from eventsourcing.dispatch import singledispatchmethod

from domain.ticket import Ticket
from projections.base import Batch, ReadModel, ReadModelView, Table

TICKETS = Table(
    "fault_tickets",
    (("originator_id", "TEXT"), ("ticket_id", "TEXT"), ("customer", "TEXT"), ("product_model", "TEXT"),
     ("symptoms", "TEXT"), ("engineer", "TEXT")),
    key=("originator_id",),
)
REGISTER = Table(
    "fault_register",
    (("originator_id", "TEXT"), ("version", "INT"), ("ticket_id", "TEXT"), ("command_id", "TEXT"),
     ("customer", "TEXT"), ("product_model", "TEXT"), ("symptoms", "TEXT"), ("cause", "TEXT"),
     ("resolution", "TEXT"), ("parts_used", "JSON"), ("engineer", "TEXT"), ("difficult", "INT"),
     ("summary", "TEXT"), ("resolved_at", "TEXT"), ("month", "TEXT")),
    key=("originator_id", "version"),
    indexes=(("product_model",), ("resolved_at",)),
)
SEARCHED = ("symptoms", "cause", "resolution", "product_model", "summary")


class FaultRegister(ReadModel):
    name = "fault_register"
    title = "Fault register and problem library"
    tickets = TICKETS
    facts = (REGISTER,)

    @singledispatchmethod
    def apply(self, event: Any, batch: Batch) -> None:
        """Other events do not enter the register."""

    @apply.register
    def _(self, e: Ticket.Reported, batch: Batch) -> None:
        d = e.data
        batch.new_ticket(e, ticket_id=d["ticket_id"], customer=d.get("customer"),
                         product_model=d.get("product_model"), symptoms=d.get("symptoms"))

    @apply.register
    def _(self, e: Ticket.Dispatched, batch: Batch) -> None:
        if (row := batch.ticket(e)) is not None:
            row["engineer"] = e.data["engineer"]

    @apply.register
    def _(self, e: Ticket.Resolved, batch: Batch) -> None:
        row = batch.peek(e)
        if row is None:
            return
        d = e.data
        batch.append(REGISTER, e, ticket_id=row["ticket_id"], customer=row["customer"],
                     product_model=row["product_model"], symptoms=row["symptoms"], cause=d.get("cause"),
                     resolution=d.get("resolution"), parts_used=list(d.get("parts_used") or []),
                     engineer=row["engineer"] or e.actor, difficult=1 if d.get("difficult") else 0,
                     summary=d.get("summary"), resolved_at=batch.at(e), month=batch.month(e))


def _like(word: str) -> str:
    return "%" + word.lower().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"


def search_faults(view: ReadModelView, q: str | None = None, product_model: str | None = None,
                  limit: int = 50, offset: int = 0) -> list[dict[str, Any]]:
    """Register entries whose symptoms, cause, resolution, model or summary contain
    every word of `q` (case-insensitive; Chinese matches as a substring), newest first."""
    where, params = [], []
    for word in (q or "").split():
        where.append("(" + " OR ".join(f"lower(coalesce({c}, '')) LIKE ? ESCAPE '\\'" for c in SEARCHED) + ")")
        params += [_like(word)] * len(SEARCHED)
    if product_model is not None:
        where.append("product_model = ?"), params.append(product_model)
    rows = view.select(REGISTER, " AND ".join(where), params, order="resolved_at DESC, ticket_id",
                       limit=limit, offset=offset)
    for r in rows:
        r["difficult"] = bool(r["difficult"])
        r["events"] = [{"ticket_id": r["ticket_id"], "versions": [r["version"]]}]
        del r["originator_id"]
    return rows
