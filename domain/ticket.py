"""The Ticket aggregate (报障/维修派工单): one more case kind on `domain.chained`."""
from __future__ import annotations

from eventsourcing.domain import Aggregate

from domain import lifecycle
from domain.chained import ChainedCase
from domain.lifecycle import TicketState


class Ticket(ChainedCase):
    KIND = "ticket"
    CREATED = "Reported"
    ID_FIELD = "ticket_id"  # stored tickets carry their id under this key
    new_state = staticmethod(lambda ticket_id: TicketState(case_id=ticket_id))
    fold = staticmethod(lifecycle.evolve)
    check = staticmethod(lifecycle.check)

    def __init__(self) -> None:  # an explicit __init__: eventsourcing would generate one
        super().__init__()

    class Reported(ChainedCase.Event, Aggregate.Created):
        """报障 registered."""

    class Triaged(ChainedCase.Event): """初步评价: severity, zone, category, windows."""
    class Dispatched(ChainedCase.Event): """派工."""
    class ArrivedOnSite(ChainedCase.Event): """到场, staff ID shown."""
    class RemoteSessionStarted(ChainedCase.Event): """远程维护, with consent."""
    class FeeQuoted(ChainedCase.Event): """收费标准出示."""
    class FeeAccepted(ChainedCase.Event): """客户接受收费."""
    class EquipmentTakenBack(ChainedCase.Event): """带回修复, receipt issued."""
    class EquipmentReturned(ChainedCase.Event): """修复归还, receipt retrieved."""
    class BackupUnitProvided(ChainedCase.Event): """备用机提供."""
    class BackupUnitRetrieved(ChainedCase.Event): """备用机收回."""
    class Resolved(ChainedCase.Event): """处理完成: cause, resolution, parts."""
    class SignedOff(ChainedCase.Event): """客户签字, satisfaction and opinion."""
    class Closed(ChainedCase.Event): """主管考核 time and quality."""
    class SlaWarned(ChainedCase.Event): """时限预警 to the responsible person."""
    class SlaBreached(ChainedCase.Event): """超出承诺时限."""
    class Escalated(ChainedCase.Event): """上报: level 1 direct superior, level 2 leadership."""
    class NotificationSent(ChainedCase.Event): """A warning or escalation reached its target on a channel."""
    class NotificationGivenUp(ChainedCase.Event): """Delivery on a channel gave up, with the last reason."""
    class EscalationAcknowledged(ChainedCase.Event): """The target acknowledged it (§九.A.2)."""
