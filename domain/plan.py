"""The MaintenancePlan aggregate (日常例行工作计划): one per contract."""
from __future__ import annotations

from eventsourcing.domain import Aggregate

from domain import maintenance
from domain.chained import ChainedCase
from domain.maintenance import PlanState


class MaintenancePlan(ChainedCase):
    KIND = "plan"
    CREATED = "PlanStarted"
    new_state = staticmethod(lambda case_id: PlanState(case_id=case_id))
    fold = staticmethod(maintenance.evolve)
    check = staticmethod(maintenance.check)

    def __init__(self) -> None:  # an explicit __init__: eventsourcing would generate one
        super().__init__()

    class PlanStarted(ChainedCase.Event, Aggregate.Created):
        """From delivery: customer, site, routine frequency, contract end, engineer in charge."""

    class VisitScheduled(ChainedCase.Event): """A visit fell due: kind, month, inspection id."""
    class PlanChanged(ChainedCase.Event): """Contract settings changed."""
    class PlanEnded(ChainedCase.Event): """The contract ended or the plan was stopped."""
