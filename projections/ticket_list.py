"""Ticket list (GET /tickets): status, assignee, deadlines and whether a window was
breached, one row per ticket. The status follows `domain.lifecycle.evolve` step for
step (a test holds them equal); no contact or confidential data is kept here.

Beside it, `ticket_links`: the complaints, returns and inspections that name a ticket,
for the ticket's history view (GET /tickets/{id}/history, `linked_cases`)."""
from __future__ import annotations

from typing import Any

from eventsourcing.dispatch import singledispatchmethod

from domain.complaint import Complaint
from domain.inspection import Inspection
from domain.returns import ReturnCase
from domain.ticket import Ticket
from projections.base import GOALS, ON_SITE, Batch, ReadModel, ReadModelView, Table, deadlines_of, iso

TICKETS = Table(
    "ticket_list",
    (("originator_id", "TEXT"), ("ticket_id", "TEXT"), ("status", "TEXT"), ("customer", "TEXT"),
     ("site", "TEXT"), ("product_model", "TEXT"), ("channel", "TEXT"), ("received_by", "TEXT"),
     ("severity", "TEXT"), ("zone", "TEXT"), ("service_category", "TEXT"), ("supervisor", "TEXT"),
     ("assignee", "TEXT"), ("reported_at", "TEXT"), ("deadlines", "JSON"), ("met", "JSON"),
     ("breached", "INT"), ("breached_goals", "JSON"), ("escalation_level", "INT"), ("resolved_at", "TEXT"),
     ("closed_at", "TEXT"), ("version", "INT"), ("updated_at", "TEXT")),
    key=("originator_id",),
    indexes=(("ticket_id",), ("status", "reported_at"), ("assignee", "reported_at"), ("reported_at",)),
)

LINKS = Table(
    "ticket_links",
    (("originator_id", "TEXT"), ("version", "INT"), ("command_id", "TEXT"), ("ticket_id", "TEXT"),
     ("kind", "TEXT"), ("case_id", "TEXT"), ("event_type", "TEXT"), ("at", "TEXT"), ("actor", "TEXT")),
    key=("originator_id", "version"),
    indexes=(("ticket_id",),),
)

STATUSES = ("reported", "triaged", "dispatched", "in_progress", "resolved", "signed_off", "closed")


class TicketList(ReadModel):
    name = "ticket_list"
    title = "Ticket list (status, assignee, deadlines, breached)"
    tickets = TICKETS
    facts = (LINKS,)

    @singledispatchmethod
    def apply(self, event: Any, batch: Batch) -> None:
        row = batch.ticket(event)
        if row is not None:
            row["version"], row["updated_at"] = event.originator_version, iso(event.at)

    @apply.register
    def _(self, e: Ticket.Reported, batch: Batch) -> None:
        d = e.data
        severity, zone = d.get("severity", "general"), d.get("zone", "A")
        batch.new_ticket(
            e, ticket_id=d["ticket_id"], status="reported", customer=d.get("customer"), site=d.get("site"),
            product_model=d.get("product_model"), channel=d.get("channel"), received_by=e.actor,
            severity=severity, zone=zone, reported_at=batch.at(e), deadlines=deadlines_of(d, e.at, severity, zone),
            met={}, breached=0, breached_goals=[], escalation_level=0, version=e.originator_version,
            updated_at=batch.at(e))

    def _step(self, e: Any, batch: Batch) -> dict[str, Any] | None:
        row = batch.ticket(e)
        if row is not None:
            row["version"], row["updated_at"] = e.originator_version, batch.at(e)
        return row

    @apply.register
    def _(self, e: Ticket.Triaged, batch: Batch) -> None:
        if (row := self._step(e, batch)) is None:
            return
        row["severity"], row["zone"] = e.data["severity"], e.data["zone"]
        row["service_category"] = e.data.get("service_category", "free")
        row["supervisor"] = e.actor
        row["deadlines"] = deadlines_of(e.data, row["reported_at"], row["severity"], row["zone"])
        if row["status"] == "reported":
            row["status"] = "triaged"

    @apply.register
    def _(self, e: Ticket.Dispatched, batch: Batch) -> None:
        if (row := self._step(e, batch)) is None:
            return
        row["assignee"], row["supervisor"], row["status"] = e.data["engineer"], e.actor, "dispatched"

    @apply.register
    def _(self, e: Ticket.ArrivedOnSite, batch: Batch) -> None:
        if (row := self._step(e, batch)) is None:
            return
        row["status"] = "in_progress"
        row["met"].setdefault(ON_SITE, batch.at(e))

    @apply.register
    def _(self, e: Ticket.RemoteSessionStarted, batch: Batch) -> None:
        if (row := self._step(e, batch)) is not None:
            row["status"] = "in_progress"

    @apply.register
    def _(self, e: Ticket.Resolved, batch: Batch) -> None:
        if (row := self._step(e, batch)) is None:
            return
        row["status"], row["resolved_at"] = "resolved", batch.at(e)
        for goal in GOALS:  # resolving also ends the need to be on site
            row["met"].setdefault(goal, batch.at(e))

    @apply.register
    def _(self, e: Ticket.SignedOff, batch: Batch) -> None:
        if (row := self._step(e, batch)) is not None:
            row["status"] = "signed_off"

    @apply.register
    def _(self, e: Ticket.Closed, batch: Batch) -> None:
        if (row := self._step(e, batch)) is not None:
            row["status"], row["closed_at"] = "closed", batch.at(e)

    @apply.register
    def _(self, e: Ticket.SlaBreached, batch: Batch) -> None:
        if (row := self._step(e, batch)) is None:
            return
        row["breached"] = 1
        if e.data["goal"] not in row["breached_goals"]:
            row["breached_goals"].append(e.data["goal"])

    @apply.register
    def _(self, e: Ticket.Escalated, batch: Batch) -> None:
        if (row := self._step(e, batch)) is not None:
            row["escalation_level"] = max(row["escalation_level"] or 0, int(e.data.get("level", 1)))


    def _link(self, e: Any, batch: Batch, kind: str, case_id: str | None) -> None:
        if e.data.get("ticket_id"):
            batch.append(LINKS, e, ticket_id=e.data["ticket_id"], kind=kind, case_id=case_id,
                         event_type=type(e).__name__, at=batch.at(e), actor=e.actor)

    @apply.register
    def _(self, e: Complaint.Registered, batch: Batch) -> None:
        self._link(e, batch, "complaint", e.data.get("case_id"))

    @apply.register
    def _(self, e: ReturnCase.Requested, batch: Batch) -> None:
        self._link(e, batch, "return", e.data.get("case_id"))

    @apply.register
    def _(self, e: Inspection.FaultTicketOpened, batch: Batch) -> None:
        # the inspection's id; an event recorded before it was carried leaves it to the reader
        self._link(e, batch, "inspection", e.data.get("inspection_id"))


def linked_cases(ticket_id: str, *, view: ReadModelView) -> list[dict[str, Any]]:
    """The complaints, returns and inspections that name `ticket_id`, oldest first, from
    `view` (the TicketList's). Eventually consistent, like the list. `case_id` is None
    for an inspection's finding recorded before findings carried their inspection's id;
    `originator_id` names it."""
    rows = view.select(LINKS, "ticket_id = ?", [ticket_id], order="at, originator_id, version")
    return [{"kind": r["kind"], "case_id": r["case_id"], "event": r["event_type"], "at": r["at"],
             "actor": r["actor"], "originator_id": r["originator_id"], "version": r["version"]} for r in rows]


def _public(row: dict[str, Any]) -> dict[str, Any]:
    row = dict(row)
    del row["originator_id"]
    row["breached"] = bool(row["breached"])
    return row


def list_tickets(status: str | None = None, assignee: str | None = None, breached: bool | None = None,
                 limit: int = 50, offset: int = 0, *, customer: str | None = None,
                 view: ReadModelView) -> list[dict[str, Any]]:
    """The ticket list for GET /tickets from `view` (the TicketList's), newest report
    first. Eventually consistent: as fresh as the projection runner's last batch."""
    where, params = [], []
    if status is not None:
        where.append("status = ?"), params.append(status)
    if assignee is not None:
        where.append("assignee = ?"), params.append(assignee)
    if breached is not None:
        where.append("breached = ?"), params.append(1 if breached else 0)
    if customer is not None:
        where.append("customer = ?"), params.append(customer)
    rows = view.select(TICKETS, " AND ".join(where), params, order="reported_at DESC, ticket_id",
                       limit=max(0, min(int(limit), 1000)), offset=max(0, int(offset)))
    return [_public(r) for r in rows]


def get_ticket_row(ticket_id: str, *, view: ReadModelView) -> dict[str, Any] | None:
    """One ticket's row from `view` (the TicketList's), or None."""
    rows = view.select(TICKETS, "ticket_id = ?", [ticket_id])
    return _public(rows[0]) if rows else None
