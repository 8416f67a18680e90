"""The Inspection aggregate (例行检查 / 电话回访): one visit of a maintenance plan."""
from __future__ import annotations

from eventsourcing.domain import Aggregate

from domain import inspection_rules
from domain.chained import ChainedCase
from domain.inspection_rules import InspectionState


class Inspection(ChainedCase):
    KIND = "inspection"
    CREATED = "Scheduled"
    new_state = staticmethod(lambda case_id: InspectionState(case_id=case_id))
    fold = staticmethod(inspection_rules.evolve)
    check = staticmethod(inspection_rules.check)

    def __init__(self) -> None:  # an explicit __init__: eventsourcing would generate one
        super().__init__()

    class Scheduled(ChainedCase.Event, Aggregate.Created):
        """到期: kind, contract, due day, window and who answers for it."""

    class Assigned(ChainedCase.Event): """派人."""
    class FollowUpCalled(ChainedCase.Event): """电话交流 (§八.7)."""
    class Inspected(ChainedCase.Event): """检查记录: team, customer staff and training, findings, replacements."""
    class FaultTicketOpened(ChainedCase.Event): """A finding opened a fault ticket."""
    class Cancelled(ChainedCase.Event): """取消, with the reason."""
    class SlaWarned(ChainedCase.Event): """时限预警."""
    class SlaBreached(ChainedCase.Event): """检查逾期."""
    class Escalated(ChainedCase.Event): """上报: level 1 direct superior, level 2 leadership."""
    class NotificationSent(ChainedCase.Event): """A warning or escalation reached its target on a channel."""
    class NotificationGivenUp(ChainedCase.Event): """Delivery on a channel gave up, with the last reason."""
    class EscalationAcknowledged(ChainedCase.Event): """The target acknowledged it (§九.A.2)."""
