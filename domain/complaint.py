"""The Complaint aggregate (客户意见和投诉登记): each step a chained, recorded event."""
from __future__ import annotations

from eventsourcing.domain import Aggregate

from domain import complaint_rules
from domain.chained import ChainedCase
from domain.complaint_rules import ComplaintState


class Complaint(ChainedCase):
    KIND = "complaint"
    CREATED = "Registered"
    new_state = staticmethod(lambda case_id: ComplaintState(case_id=case_id))
    fold = staticmethod(complaint_rules.evolve)
    check = staticmethod(complaint_rules.check)

    def __init__(self) -> None:  # an explicit __init__: eventsourcing would generate one
        super().__init__()

    class Registered(ChainedCase.Event, Aggregate.Created):
        """登记: channel, customer, about whom, category, routed department, windows."""

    class LeadershipNotified(ChainedCase.Event): """紧急事件上报 (§九.C.2)."""
    class Acknowledged(ChainedCase.Event): """受理 by the handling department."""
    class CustomerEscalated(ChainedCase.Event): """客户向直接上级或公司领导投诉 (§九.C.3)."""
    class Replied(ChainedCase.Event): """答复: substantiated or not, attributed."""
    class Closed(ChainedCase.Event): """回访: satisfaction, valuable suggestion."""
    class SlaWarned(ChainedCase.Event): """时限预警."""
    class SlaBreached(ChainedCase.Event): """超出答复时限."""
    class Escalated(ChainedCase.Event): """上报: level 1 direct superior, level 2 leadership."""
    class NotificationSent(ChainedCase.Event): """A warning or escalation reached its target on a channel."""
    class NotificationGivenUp(ChainedCase.Event): """Delivery on a channel gave up, with the last reason."""
    class EscalationAcknowledged(ChainedCase.Event): """The target acknowledged it (§九.A.2)."""
