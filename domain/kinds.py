"""The registry of case kinds: each kind's aggregate, with its events declared once as
the aggregate's nested classes, its steps (from its own rule module: state, step check,
fold) and the events its workflow records itself. Adding a step is an entry in its
kind's STEPS and an event class on its aggregate; adding a kind is an entry here plus its
rule module, aggregate and workflow. tests/unit/test_kinds.py checks that they agree."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Mapping

from domain import complaint_rules, inspection_rules, maintenance, return_rules, steps
from domain.casework import NOTICE_EVENTS, CaseState
from domain.chained import ChainedCase
from domain.complaint import Complaint
from domain.inspection import Inspection
from domain.plan import MaintenancePlan
from domain.returns import ReturnCase
from domain.ticket import Ticket

# domain.sla's facts and their delivery (domain.casework.NOTICE_EVENTS), every kind with windows
ALARM_EVENTS = frozenset({"SlaWarned", "SlaBreached", "Escalated"}) | NOTICE_EVENTS


@dataclass(frozen=True)
class Kind:
    """One case kind: its aggregate (whose nested classes declare its events, once), the
    steps people take (step -> (event type, payload model, ...)), and the events its
    workflow records itself (the opening, its alarms, what its timers decide)."""

    aggregate: type[ChainedCase]
    steps: Mapping[str, tuple]
    recorded_by_workflow: frozenset[str]
    workflow_prefix: str

    @property
    def step_events(self) -> frozenset[str]:
        return frozenset(v[0] for v in self.steps.values())


KINDS: dict[str, Kind] = {
    "ticket": Kind(Ticket, steps.STEPS, frozenset({"Reported"}) | ALARM_EVENTS, "ticket-"),
    "complaint": Kind(Complaint, complaint_rules.STEPS, frozenset({"Registered", "LeadershipNotified"}) | ALARM_EVENTS,
                      "complaint-"),
    "return": Kind(ReturnCase, return_rules.STEPS, frozenset({"Requested"}) | ALARM_EVENTS, "return-"),
    "inspection": Kind(Inspection, inspection_rules.STEPS,
                       frozenset({"Scheduled", "FaultTicketOpened"}) | ALARM_EVENTS, "inspection-"),
    "plan": Kind(MaintenancePlan, maintenance.STEPS, frozenset({"PlanStarted", "VisitScheduled"}), "plan-"),
}
AGGREGATES: dict[str, type[ChainedCase]] = {name: kind.aggregate for name, kind in KINDS.items()}


def replay(kind: str, case_id: str, events: list[dict[str, Any]], *, version: int | None = None,
           as_of: datetime | None = None) -> CaseState:
    """A case's state after its recorded events up to `version`, or up to business time
    `as_of` (events as `EventStore.read_history` gives them): the kind's one fold."""
    aggregate = AGGREGATES[kind]
    state = aggregate.new_state(case_id)
    for e in events:
        if (version is not None and e["version"] > version) or (as_of is not None and e["at"] > as_of):
            break
        state = aggregate.fold(state, e["type"], e["data"], e["at"], e["actor"])
    return state


def kind_of_topic(topic: str) -> str | None:
    """The case kind of a stored event's topic ("domain.ticket:Ticket.Reported" -> "ticket")."""
    owner = topic.rpartition(":")[2].partition(".")[0]
    return next((k for k, a in AGGREGATES.items() if a.__name__ == owner), None)
