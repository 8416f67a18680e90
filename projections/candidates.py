"""Reward and penalty candidates (奖惩候选, §十一), with the evidence for each.

The read model keeps one fact per subject per event — a ticket reported or resolved,
a breach, an escalation, a satisfaction score, a quality rating, a complaint, a
substantiated complaint, a valuable suggestion — for the customer, the staff member
(the assignee for work and ratings, the person responsible for breaches, escalations
and substantiated complaints) and that person's department (the one the event
recorded, else the org file's). Breaches and escalations count alike for every case
kind: tickets, complaints, returns/exchanges and inspections. A complainant's own
escalation (Complaint.CustomerEscalated) and an emergency reported to leadership are
in the escalation log but count against nobody here: they are no missed window, and
the complaint counts through its substantiation. The rules in `projections.rules` are
applied to the monthly figures when the report is read."""
from __future__ import annotations

import statistics
from collections import defaultdict
from typing import Any

from eventsourcing.dispatch import singledispatchmethod

from domain.complaint import Complaint
from domain.inspection import Inspection
from domain.returns import ReturnCase
from domain.ticket import Ticket
from projections import rules as rulebook
from projections.base import Batch, ReadModel, ReadModelView, Table, case_refs, department_of, org, staff_name

TICKETS = Table(  # one row per case: its id in ticket_id, its kind ("ticket", "complaint", "return", "inspection")
    "candidate_tickets",
    (("originator_id", "TEXT"), ("ticket_id", "TEXT"), ("customer", "TEXT"), ("engineer", "TEXT"),
     ("kind", "TEXT")),
    key=("originator_id",),
)
FACTS = Table(
    "candidate_facts",
    (("originator_id", "TEXT"), ("version", "INT"), ("subject_kind", "TEXT"), ("fact", "TEXT"),
     ("subject", "TEXT"), ("ticket_id", "TEXT"), ("kind", "TEXT"), ("command_id", "TEXT"), ("month", "TEXT"),
     ("value", "REAL")),
    key=("originator_id", "version", "subject_kind", "fact"),
    indexes=(("month", "subject_kind", "subject"),),
)


class Candidates(ReadModel):
    name = "candidates"
    title = "Reward and penalty candidates, with evidence"
    version = 2  # 2: breaches and escalations of complaints, returns and inspections
    tickets = TICKETS
    facts = (FACTS,)

    @singledispatchmethod
    def apply(self, event: Any, batch: Batch) -> None:
        """Other events are no evidence."""

    def _fact(self, e: Any, batch: Batch, row: dict, subject_kind: str, subject: str | None, fact: str,
              value: float = 1) -> None:
        if subject:
            batch.append(FACTS, e, subject_kind=subject_kind, fact=fact, subject=subject,
                         ticket_id=row["ticket_id"], kind=row["kind"], month=batch.month(e), value=value)

    @apply.register
    def _(self, e: Complaint.Registered, batch: Batch) -> None:
        row = batch.new_ticket(e, ticket_id=e.data.get("case_id"), customer=e.data.get("customer"), kind="complaint")
        self._fact(e, batch, row, "customer", row["customer"], "complaint")

    @apply.register
    def _(self, e: Complaint.Replied, batch: Batch) -> None:
        row = batch.peek(e)
        if row is None or not e.data.get("substantiated"):
            return
        person, dep = e.data.get("responsible_person"), e.data.get("responsible_department")
        self._fact(e, batch, row, "customer", row["customer"], "substantiated_complaint")
        self._fact(e, batch, row, "staff", person, "substantiated_complaint")
        self._fact(e, batch, row, "department", dep or (department_of(person) if person else None),
                   "substantiated_complaint")

    @apply.register
    def _(self, e: Complaint.Closed, batch: Batch) -> None:
        row = batch.peek(e)
        if row is not None and e.data.get("valuable_suggestion"):
            self._fact(e, batch, row, "customer", row["customer"], "valuable_suggestion")

    @apply.register(ReturnCase.Requested)
    @apply.register(Inspection.Scheduled)
    def _opened(self, e: Any, batch: Batch) -> None:
        kind = ReturnCase.KIND if isinstance(e, ReturnCase.Requested) else Inspection.KIND
        batch.new_ticket(e, ticket_id=e.data.get("case_id"), customer=e.data.get("customer"), kind=kind)

    def _people(self, e: Any, batch: Batch, fact: str, value: float) -> None:
        """A fact for the customer, the responsible person and their department."""
        row = batch.peek(e)
        if row is None:
            return
        person = e.data.get("responsible")
        self._fact(e, batch, row, "customer", row["customer"], fact, value)
        self._fact(e, batch, row, "staff", person, fact, value)
        if person:
            self._fact(e, batch, row, "department", e.data.get("department") or department_of(person), fact, value)

    @apply.register
    def _(self, e: Ticket.Reported, batch: Batch) -> None:
        row = batch.new_ticket(e, ticket_id=e.data["ticket_id"], customer=e.data.get("customer"), kind="ticket")
        self._fact(e, batch, row, "customer", row["customer"], "ticket")

    @apply.register
    def _(self, e: Ticket.Dispatched, batch: Batch) -> None:
        if (row := batch.ticket(e)) is not None:
            row["engineer"] = e.data["engineer"]

    @apply.register
    def _(self, e: Ticket.Resolved, batch: Batch) -> None:
        if (row := batch.peek(e)) is not None:
            self._fact(e, batch, row, "staff", row["engineer"] or e.actor, "ticket")

    @apply.register
    def _(self, e: Ticket.SignedOff, batch: Batch) -> None:
        if (row := batch.peek(e)) is not None:
            score = float(e.data["satisfaction"])
            self._fact(e, batch, row, "customer", row["customer"], "rating", score)
            self._fact(e, batch, row, "staff", row["engineer"], "rating", score)

    @apply.register
    def _(self, e: Ticket.Closed, batch: Batch) -> None:
        if (row := batch.peek(e)) is not None:
            self._fact(e, batch, row, "staff", row["engineer"], "quality", float(e.data["quality_rating"]))

    @apply.register(Ticket.SlaBreached)
    @apply.register(Complaint.SlaBreached)
    @apply.register(ReturnCase.SlaBreached)
    @apply.register(Inspection.SlaBreached)
    def _breach(self, e: Any, batch: Batch) -> None:
        self._people(e, batch, "breach", 1)

    @apply.register(Ticket.Escalated)
    @apply.register(Complaint.Escalated)
    @apply.register(ReturnCase.Escalated)
    @apply.register(Inspection.Escalated)
    def _escalation(self, e: Any, batch: Batch) -> None:
        level = int(e.data.get("level", 1))
        if level >= 1:
            self._people(e, batch, "escalation", level)


def evidence_refs(facts: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Event references grouped by case (base.case_refs): tickets first, then the other kinds."""
    return case_refs((f["kind"], f["ticket_id"], f["version"]) for f in facts)


def _selected(fact: dict[str, Any], evidence: str) -> bool:
    if evidence == "low_rating":
        return fact["fact"] == "rating" and fact["value"] <= rulebook.LOW_RATING
    if evidence == "leadership_escalation":
        return fact["fact"] == "escalation" and fact["value"] >= 2
    return fact["fact"] == evidence


def figures(facts: list[dict[str, Any]]) -> dict[str, float | int | None]:
    ratings = [f["value"] for f in facts if f["fact"] == "rating"]
    quality = [f["value"] for f in facts if f["fact"] == "quality"]
    count = lambda *names: sum(1 for f in facts if f["fact"] in names)  # noqa: E731
    return {
        "tickets": count("ticket"), "breaches": count("breach"), "escalations": count("escalation"),
        "complaints": count("complaint"), "substantiated_complaints": count("substantiated_complaint"),
        "valuable_suggestions": count("valuable_suggestion"),
        "leadership_escalations": sum(1 for f in facts if _selected(f, "leadership_escalation")),
        "ratings": len(ratings), "low_ratings": sum(1 for r in ratings if r <= rulebook.LOW_RATING),
        "mean_rating": round(statistics.fmean(ratings), 4) if ratings else None,
        "mean_quality": round(statistics.fmean(quality), 4) if quality else None,
    }


def _subject_name(kind: str, subject: str) -> str | None:
    if kind == "staff":
        return staff_name(subject)
    if kind == "department":
        dep = org().departments.get(subject)
        return dep.name if dep else None
    return subject


def candidates(view: ReadModelView, month: str, rules: list[dict[str, Any]] | None = None) -> list[dict[str, Any]]:
    """Each subject that a rule picks out in `month` (YYYY-MM, CST), with its figures
    and the events behind them; rewards first."""
    rules = rulebook.load_rules() if rules is None else rulebook.check(rules)
    by_subject: dict[tuple[str, str], list[dict]] = defaultdict(list)
    for f in view.select(FACTS, "month = ?", [month], order="subject_kind, subject, ticket_id, version"):
        by_subject[(f["subject_kind"], f["subject"])].append(f)
    out = []
    for rule in sorted(rules, key=lambda r: (r["kind"] != "reward", r["id"])):
        for (kind, subject), facts in sorted(by_subject.items()):
            if kind != rule["subject"]:
                continue
            figs = figures(facts)
            if not rulebook.holds(rule, figs):
                continue
            evidence = [f for f in facts if any(_selected(f, ev) for ev in rule.get("evidence", []))]
            out.append({
                "rule": rule["id"], "kind": rule["kind"], "basis": rule.get("basis", ""), "month": month,
                "subject_kind": kind, "subject": subject, "name": _subject_name(kind, subject),
                "figures": {name: figs[name] for name, _, _ in rule["when"]},
                "events": evidence_refs(evidence),
            })
    return out
