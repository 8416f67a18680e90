"""The registry of case kinds: each kind's aggregate, with its events declared once as
the aggregate's nested classes, and its own rule module (state, step check, fold).
Adding a kind is one entry here plus its rule module and its workflow."""
from __future__ import annotations

from datetime import datetime
from typing import Any

from domain.casework import CaseState
from domain.chained import ChainedCase
from domain.complaint import Complaint
from domain.inspection import Inspection
from domain.plan import MaintenancePlan
from domain.returns import ReturnCase
from domain.ticket import Ticket

AGGREGATES: dict[str, type[ChainedCase]] = {
    c.KIND: c for c in (Ticket, Complaint, ReturnCase, Inspection, MaintenancePlan)}


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
