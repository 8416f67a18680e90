"""The Ticket aggregate (报障/维修派工单): every step is a recorded domain event that
carries business time `at`, the `actor`, the command id that made it (for
exactly-once recording) and the per-ticket hash chain."""
from __future__ import annotations

from datetime import datetime
from typing import Any
from uuid import NAMESPACE_URL, UUID, uuid5

from eventsourcing.domain import Aggregate

from domain import chain, lifecycle
from domain.lifecycle import TicketState


def ticket_uuid(ticket_id: str) -> UUID:
    """The aggregate id of a ticket, derived from its public id."""
    return uuid5(NAMESPACE_URL, f"weibao:ticket:{ticket_id}")


class Ticket(Aggregate):
    def __init__(self) -> None:
        self.state: TicketState | None = None
        self.head_hash = chain.GENESIS
        self.command_ids: set[str] = set()

    class Event(Aggregate.Event):
        at: datetime
        actor: str
        command_id: str
        data: dict[str, Any]
        prev_hash: str
        hash: str

        def apply(self, ticket: "Ticket") -> None:
            state = ticket.state or TicketState(ticket_id=self.data.get("ticket_id", ""))
            ticket.state = lifecycle.evolve(state, type(self).__name__, self.data, self.at, self.actor)
            ticket.head_hash = self.hash
            ticket.command_ids.add(self.command_id)

    class Reported(Event, Aggregate.Created):
        """报障 registered."""

    class Triaged(Event): """初步评价: severity, zone, category, deadlines."""
    class Dispatched(Event): """派工."""
    class ArrivedOnSite(Event): """到场, staff ID shown."""
    class RemoteSessionStarted(Event): """远程维护, with consent."""
    class FeeQuoted(Event): """收费标准出示."""
    class FeeAccepted(Event): """客户接受收费."""
    class EquipmentTakenBack(Event): """带回修复, receipt issued."""
    class EquipmentReturned(Event): """修复归还, receipt retrieved."""
    class BackupUnitProvided(Event): """备用机提供."""
    class BackupUnitRetrieved(Event): """备用机收回."""
    class Resolved(Event): """处理完成: cause, resolution, parts."""
    class SignedOff(Event): """客户签字, satisfaction and opinion."""
    class Closed(Event): """主管考核 time and quality."""
    class SlaWarned(Event): """时限预警 to the responsible person."""
    class SlaBreached(Event): """超出承诺时限."""
    class Escalated(Event): """上报: level 1 direct superior, level 2 leadership."""

    @classmethod
    def report(cls, ticket_id: str, *, at: datetime, actor: str, command_id: str, data: dict) -> "Ticket":
        data = {**data, "ticket_id": ticket_id}
        originator = ticket_uuid(ticket_id)
        recorded_at = cls.Reported.create_timestamp()
        h = chain.event_hash(ticket=str(originator), version=cls.INITIAL_VERSION, type="Reported", at=at,
                             actor=actor, command_id=command_id, data=data, prev_hash=chain.GENESIS,
                             recorded_at=recorded_at)
        return cls._create(cls.Reported, id=originator, timestamp=recorded_at, at=at, actor=actor,
                           command_id=command_id, data=data, prev_hash=chain.GENESIS, hash=h)

    def record(self, event_type: str, *, at: datetime, actor: str, command_id: str, data: dict,
               step: str | None = None) -> None:
        """Record one fact. A step is checked against the state machine first; SLA
        facts (warnings, breaches, escalations) come from the workflow's timers."""
        assert self.state is not None
        if step is not None:
            lifecycle.check(self.state, step, data)
        event_class = getattr(Ticket, event_type)
        recorded_at = event_class.create_timestamp()
        h = chain.event_hash(ticket=str(self.id), version=self.version + 1, type=event_type, at=at,
                             actor=actor, command_id=command_id, data=data, prev_hash=self.head_hash,
                             recorded_at=recorded_at)
        self.trigger_event(event_class, timestamp=recorded_at, at=at, actor=actor, command_id=command_id,
                           data=data, prev_hash=self.head_hash, hash=h)


EVENT_TYPES = {name for name, v in vars(Ticket).items() if isinstance(v, type) and issubclass(v, Ticket.Event)} - {"Event", "Created"}
