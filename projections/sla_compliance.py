"""SLA compliance (§九.A.3), per customer per month: tickets by severity and zone, and
for each response window met, missed or still open. A ticket counts in the month
(China Standard Time) it was reported, with the severity, zone and deadlines of its
last triage. A window is met when its goal was reached at or before the deadline,
missed when a breach was recorded or the goal was reached late."""
from __future__ import annotations

from collections import defaultdict
from typing import Any

from eventsourcing.dispatch import singledispatchmethod

from domain import policy
from domain.ticket import Ticket
from projections.base import GOALS, ON_SITE, Batch, ReadModel, ReadModelView, Table, deadlines_of, refs

TICKETS = Table(
    "sla_tickets",
    (("originator_id", "TEXT"), ("ticket_id", "TEXT"), ("customer", "TEXT"), ("month", "TEXT"),
     ("severity", "TEXT"), ("zone", "TEXT"), ("reported_at", "TEXT"), ("deadlines", "JSON"), ("met", "JSON"),
     ("breached", "JSON"), ("versions", "JSON")),
    key=("originator_id",),
    indexes=(("month", "customer"),),
)


class SlaCompliance(ReadModel):
    name = "sla_compliance"
    title = "SLA compliance, per customer per month"
    tickets = TICKETS

    @singledispatchmethod
    def apply(self, event: Any, batch: Batch) -> None:
        """Other events do not change compliance."""

    def _row(self, e: Any, batch: Batch) -> dict[str, Any] | None:
        row = batch.ticket(e)
        if row is not None:
            row["versions"].append(e.originator_version)
        return row

    @apply.register
    def _(self, e: Ticket.Reported, batch: Batch) -> None:
        d = e.data
        severity, zone = d.get("severity", "general"), d.get("zone", "A")
        batch.new_ticket(e, ticket_id=d["ticket_id"], customer=d.get("customer"), month=batch.month(e),
                         severity=severity, zone=zone, reported_at=batch.at(e),
                         deadlines=deadlines_of(d, e.at, severity, zone), met={}, breached={},
                         versions=[e.originator_version])

    @apply.register
    def _(self, e: Ticket.Triaged, batch: Batch) -> None:
        if (row := self._row(e, batch)) is not None:
            row["severity"], row["zone"] = e.data["severity"], e.data["zone"]
            row["deadlines"] = deadlines_of(e.data, row["reported_at"], row["severity"], row["zone"])

    @apply.register
    def _(self, e: Ticket.ArrivedOnSite, batch: Batch) -> None:
        if (row := self._row(e, batch)) is not None:
            row["met"].setdefault(ON_SITE, batch.at(e))

    @apply.register
    def _(self, e: Ticket.Resolved, batch: Batch) -> None:
        if (row := self._row(e, batch)) is not None:
            for goal in GOALS:
                row["met"].setdefault(goal, batch.at(e))

    @apply.register
    def _(self, e: Ticket.SlaBreached, batch: Batch) -> None:
        if (row := self._row(e, batch)) is not None:
            row["breached"].setdefault(e.data["goal"], batch.at(e))


def outcome(ticket: dict[str, Any], goal: str) -> str:
    """met, missed or open, for one window of one ticket."""
    deadline, met = ticket["deadlines"][goal], ticket["met"].get(goal)
    if goal in ticket["breached"]:
        return "missed"
    if met is None:
        return "open"
    return "met" if policy.is_met(met, deadline) else "missed"


def sla_compliance(view: ReadModelView, month: str, customer: str | None = None) -> list[dict[str, Any]]:
    """One row per customer, severity, zone and window for tickets reported in `month`."""
    where, params = "month = ?", [month]
    if customer is not None:
        where, params = where + " AND customer = ?", params + [customer]
    groups: dict[tuple, list[tuple[dict, str]]] = defaultdict(list)
    for t in view.select(TICKETS, where, params, order="customer, ticket_id"):
        for goal in t["deadlines"]:
            groups[(t["customer"], t["severity"], t["zone"], goal)].append((t, outcome(t, goal)))
    out = []
    for (cust, severity, zone, goal), rows in sorted(groups.items(), key=lambda kv: tuple(x or "" for x in kv[0])):
        met = sum(1 for _, o in rows if o == "met")
        missed = sum(1 for _, o in rows if o == "missed")
        out.append({
            "customer": cust, "month": month, "severity": severity, "zone": zone, "window": goal,
            "tickets": len(rows), "met": met, "missed": missed, "open": len(rows) - met - missed,
            "met_share": round(met / (met + missed), 4) if met + missed else None,
            "missed_tickets": [t["ticket_id"] for t, o in rows if o == "missed"],
            "events": refs((t["ticket_id"], v) for t, _ in rows for v in t["versions"]),
        })
    return out
