"""The ReturnCase aggregate (退货和换货): each step a chained, recorded event."""
from __future__ import annotations

from eventsourcing.domain import Aggregate

from domain import return_rules
from domain.chained import ChainedCase
from domain.return_rules import ReturnState


class ReturnCase(ChainedCase):
    KIND = "return"
    CREATED = "Requested"
    new_state = staticmethod(lambda case_id: ReturnState(case_id=case_id))
    fold = staticmethod(return_rules.evolve)
    check = staticmethod(return_rules.check)

    def __init__(self) -> None:  # an explicit __init__: eventsourcing would generate one
        super().__init__()

    class Requested(ChainedCase.Event, Aggregate.Created):
        """退换货申请 with the eligibility decision (return, exchange, repair or refused)."""

    class Assigned(ChainedCase.Event): """A named person takes the open hand-off."""
    class Approved(ChainedCase.Event): """项目部审批 (approved or rejected with the reason)."""
    class Inspected(ChainedCase.Event): """技术部门检测: root cause, responsible department and person."""
    class Refunded(ChainedCase.Event): """财务退款."""
    class ExchangeShipped(ChainedCase.Event): """换货发出."""
    class Confirmed(ChainedCase.Event): """客户确认."""
    class SlaWarned(ChainedCase.Event): """时限预警."""
    class SlaBreached(ChainedCase.Event): """交接超时."""
    class Escalated(ChainedCase.Event): """上报: level 1 direct superior, level 2 leadership."""
    class NotificationSent(ChainedCase.Event): """A warning or escalation reached its target on a channel."""
    class NotificationGivenUp(ChainedCase.Event): """Delivery on a channel gave up, with the last reason."""
    class EscalationAcknowledged(ChainedCase.Event): """The target acknowledged it (§九.A.2)."""
