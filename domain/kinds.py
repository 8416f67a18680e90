"""The registry of case kinds: each kind's aggregate, with its events declared once as
the aggregate's nested classes, and its own rule module (state, step check, fold).
Adding a kind is one entry here plus its rule module and its workflow."""
from __future__ import annotations

from domain.chained import ChainedCase
from domain.complaint import Complaint
from domain.inspection import Inspection
from domain.plan import MaintenancePlan
from domain.returns import ReturnCase
from domain.ticket import Ticket

AGGREGATES: dict[str, type[ChainedCase]] = {
    c.KIND: c for c in (Ticket, Complaint, ReturnCase, Inspection, MaintenancePlan)}
