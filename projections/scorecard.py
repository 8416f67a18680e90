"""Engineer scorecard (考核), per engineer per month.

A ticket counts for the engineer it is dispatched to (the last dispatch), in the
month (China Standard Time) it was resolved: tickets handled, share of on-site and
resolution windows met, median and p90 hours from report to arrival and to
resolution, the customer's satisfaction and the supervisor's time and quality
ratings given on close (satisfaction counted apart when the engineer entered it for the
customer rather than the customer on their own device). Breaches and escalations (level 1 and 2) count for the
person responsible when they were recorded, in the month they were recorded. The
escalations a person acknowledged (of every case kind) count for them in the month they
acknowledged, with the minutes from the escalation to the acknowledgement (issue 14)."""
from __future__ import annotations

import math
import statistics
from collections import defaultdict
from typing import Any

from eventsourcing.dispatch import singledispatchmethod

from domain import policy
from domain.complaint import Complaint
from domain.inspection import Inspection
from domain.kinds import AGGREGATES, KINDS
from domain.returns import ReturnCase
from domain.ticket import Ticket
from projections.base import (GOALS, ON_SITE, Batch, ReadModel, ReadModelView, Table, case_refs, deadlines_of,
                              department_of, hours_between, refs, staff_name)

TICKETS = Table(
    "scorecard_tickets",
    (("originator_id", "TEXT"), ("ticket_id", "TEXT"), ("engineer", "TEXT"), ("month", "TEXT"),
     ("reported_at", "TEXT"), ("arrived_at", "TEXT"), ("resolved_at", "TEXT"), ("severity", "TEXT"),
     ("zone", "TEXT"), ("deadlines", "JSON"), ("met", "JSON"), ("satisfaction", "INT"), ("customer_signed", "INT"),
     ("time_rating", "INT"),
     ("quality_rating", "INT"), ("versions", "JSON")),
    key=("originator_id",),
    indexes=(("month", "engineer"),),
)
ALERTS = Table(
    "scorecard_alerts",
    (("originator_id", "TEXT"), ("version", "INT"), ("ticket_id", "TEXT"), ("command_id", "TEXT"),
     ("person", "TEXT"), ("month", "TEXT"), ("kind", "TEXT"), ("goal", "TEXT"), ("level", "INT"), ("at", "TEXT")),
    key=("originator_id", "version"),
    indexes=(("month", "person"),),
)


ACKS = Table(
    "scorecard_acknowledgements",
    (("originator_id", "TEXT"), ("version", "INT"), ("command_id", "TEXT"), ("case_kind", "TEXT"), ("case_id", "TEXT"),
     ("person", "TEXT"), ("month", "TEXT"), ("level", "INT"), ("minutes", "REAL"), ("at", "TEXT")),
    key=("originator_id", "version"),
    indexes=(("month", "person"),),
)


class EngineerScorecard(ReadModel):
    name = "engineer_scorecard"
    title = "Engineer scorecard, per engineer per month"
    version = 3  # 2: acknowledgements and the minutes to acknowledge; 3: who gave the satisfaction score
    tickets = TICKETS
    facts = (ALERTS, ACKS)

    @singledispatchmethod
    def apply(self, event: Any, batch: Batch) -> None:
        """Other events do not change the scorecard."""

    def _row(self, e: Any, batch: Batch) -> dict[str, Any] | None:
        row = batch.ticket(e)
        if row is not None:
            row["versions"].append(e.originator_version)
        return row

    @apply.register
    def _(self, e: Ticket.Reported, batch: Batch) -> None:
        d = e.data
        severity, zone = d.get("severity", "general"), d.get("zone", "A")
        batch.new_ticket(e, ticket_id=d["ticket_id"], reported_at=batch.at(e), severity=severity, zone=zone,
                         deadlines=deadlines_of(d, e.at, severity, zone), met={},
                         versions=[e.originator_version])

    @apply.register
    def _(self, e: Ticket.Triaged, batch: Batch) -> None:
        if (row := self._row(e, batch)) is not None:
            row["severity"], row["zone"] = e.data["severity"], e.data["zone"]
            row["deadlines"] = deadlines_of(e.data, row["reported_at"], row["severity"], row["zone"])

    @apply.register
    def _(self, e: Ticket.Dispatched, batch: Batch) -> None:
        if (row := self._row(e, batch)) is not None:
            row["engineer"] = e.data["engineer"]

    @apply.register
    def _(self, e: Ticket.ArrivedOnSite, batch: Batch) -> None:
        if (row := self._row(e, batch)) is not None:
            row["arrived_at"] = row["arrived_at"] or batch.at(e)
            row["met"].setdefault(ON_SITE, batch.at(e))

    @apply.register
    def _(self, e: Ticket.Resolved, batch: Batch) -> None:
        if (row := self._row(e, batch)) is not None:
            row["resolved_at"], row["month"] = batch.at(e), batch.month(e)
            row["engineer"] = row["engineer"] or e.actor
            for goal in GOALS:
                row["met"].setdefault(goal, batch.at(e))

    @apply.register
    def _(self, e: Ticket.SignedOff, batch: Batch) -> None:
        if (row := self._row(e, batch)) is not None:
            row["satisfaction"] = e.data["satisfaction"]
            # the customer on their own device; else the engineer entered it for them (§九.A.2)
            row["customer_signed"] = int(e.actor.startswith("customer:") and not e.data.get("entered_by"))

    @apply.register
    def _(self, e: Ticket.Closed, batch: Batch) -> None:
        if (row := self._row(e, batch)) is not None:
            row["time_rating"], row["quality_rating"] = e.data["time_rating"], e.data["quality_rating"]

    def _alert(self, e: Any, batch: Batch, kind: str, level: int | None) -> None:
        row = batch.peek(e)
        person = e.data.get("responsible")
        if row is None or not person:
            return
        batch.append(ALERTS, e, ticket_id=row["ticket_id"], person=person, month=batch.month(e), kind=kind,
                     goal=e.data.get("goal"), level=level, at=batch.at(e))

    @apply.register
    def _(self, e: Ticket.SlaBreached, batch: Batch) -> None:
        self._alert(e, batch, "breach", None)

    @apply.register
    def _(self, e: Ticket.Escalated, batch: Batch) -> None:
        if int(e.data.get("level", 1)) >= 1:
            self._alert(e, batch, "escalation", int(e.data.get("level", 1)))


    @apply.register(Ticket.EscalationAcknowledged)
    @apply.register(Complaint.EscalationAcknowledged)
    @apply.register(ReturnCase.EscalationAcknowledged)
    @apply.register(Inspection.EscalationAcknowledged)
    def _(self, e: Any, batch: Batch) -> None:
        d = e.data
        kind = type(e).__qualname__.split(".")[0]
        kind = next(k for k, a in AGGREGATES.items() if a.__name__ == kind)
        workflow_id = d.get("notice", "").split(":")[0]
        case_id = workflow_id.removeprefix(KINDS[kind].workflow_prefix)
        raised = d.get("raised_at")
        minutes = (hours_between(raised, batch.at(e)) or 0.0) * 60 if raised else None
        batch.append(ACKS, e, case_kind=kind, case_id=case_id, person=e.actor, month=batch.month(e),
                     level=d.get("level"), minutes=minutes, at=batch.at(e))


# ---------------------------------------------------------------- the report

def percentile(values: list[float], p: float) -> float | None:
    """Nearest-rank percentile: the smallest value with at least p % of values at or below it."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[max(0, math.ceil(p / 100 * len(ordered)) - 1)]


def _share(hit: int, of: int) -> float | None:
    return round(hit / of, 4) if of else None


def _mean(values: list[float]) -> float | None:
    return round(statistics.fmean(values), 4) if values else None


def _hours(value: float | None) -> float | None:
    return None if value is None else round(value, 4)


def engineer_scorecard(view: ReadModelView, month: str) -> list[dict[str, Any]]:
    """One row per person with handled tickets or alerts in `month` (YYYY-MM, CST)."""
    tickets = view.select(TICKETS, "month = ? AND engineer IS NOT NULL", [month], order="engineer, ticket_id")
    alerts = view.select(ALERTS, "month = ?", [month], order="person, at")
    acks = view.select(ACKS, "month = ?", [month], order="person, at")
    people: dict[str, dict[str, list]] = defaultdict(lambda: {"tickets": [], "alerts": [], "acks": []})
    for t in tickets:
        people[t["engineer"]]["tickets"].append(t)
    for a in alerts:
        people[a["person"]]["alerts"].append(a)
    for a in acks:
        people[a["person"]]["acks"].append(a)
    out = []
    for person in sorted(people):
        ts, als, acked = people[person]["tickets"], people[person]["alerts"], people[person]["acks"]
        to_ack = [a["minutes"] for a in acked if a["minutes"] is not None]
        goals = {g.value: [0, 0] for g in policy.Goal}  # goal -> [met on time, had the goal]
        for t in ts:
            for goal, deadline in t["deadlines"].items():
                goals.setdefault(goal, [0, 0])[1] += 1
                met = t["met"].get(goal)
                if met is not None and policy.is_met(met, deadline):  # ISO text: order is time order
                    goals[goal][0] += 1
        arrive = [h for t in ts if (h := hours_between(t["reported_at"], t["arrived_at"])) is not None]
        resolve = [h for t in ts if (h := hours_between(t["reported_at"], t["resolved_at"])) is not None]
        sat = [t["satisfaction"] for t in ts if t["satisfaction"] is not None]
        by_customer = [t["satisfaction"] for t in ts if t["satisfaction"] is not None and t["customer_signed"]]
        closed = [t for t in ts if t["quality_rating"] is not None]
        events = [(t["ticket_id"], v) for t in ts for v in t["versions"]] + [(a["ticket_id"], a["version"])
                                                                           for a in als]
        out.append({
            "engineer": person, "name": staff_name(person), "department": department_of(person), "month": month,
            "tickets_handled": len(ts),
            "on_site_goals": goals["on_site"][1], "on_site_on_time": goals["on_site"][0],
            "on_site_on_time_share": _share(*goals["on_site"]),
            "resolved_goals": goals["resolved"][1], "resolved_on_time": goals["resolved"][0],
            "resolved_on_time_share": _share(*goals["resolved"]),
            "hours_to_arrive_median": _hours(statistics.median(arrive) if arrive else None),
            "hours_to_arrive_p90": _hours(percentile(arrive, 90)),
            "hours_to_resolve_median": _hours(statistics.median(resolve) if resolve else None),
            "hours_to_resolve_p90": _hours(percentile(resolve, 90)),
            "breaches": sum(1 for a in als if a["kind"] == "breach"),
            "escalations_caused": sum(1 for a in als if a["kind"] == "escalation"),
            "satisfaction_mean": _mean(sat), "satisfaction_count": len(sat),
            "satisfaction_by_customer_count": len(by_customer),
            "satisfaction_entered_by_engineer_count": len(sat) - len(by_customer),
            "satisfaction_by_customer_mean": _mean(by_customer),
            "assessed": len(closed),
            "time_rating_mean": _mean([t["time_rating"] for t in closed]),
            "quality_rating_mean": _mean([t["quality_rating"] for t in closed]),
            "escalations_acknowledged": len(acked),
            "minutes_to_acknowledge_median": _hours(statistics.median(to_ack) if to_ack else None),
            "minutes_to_acknowledge_p90": _hours(percentile(to_ack, 90)),
            "events": refs(events),
            "acknowledgements": case_refs((a["case_kind"], a["case_id"], a["version"]) for a in acked),
        })
    return out
