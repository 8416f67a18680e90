"""The one aggregate base of every case kind (fault ticket, complaint, return/exchange,
inspection, maintenance plan): every fact is a domain event carrying business time
`at`, the `actor`, the command id that made it (for exactly-once recording) and the
per-case hash chain of `domain.chain`. The fold and the step check are each kind's
pure rules, so the aggregate, the workflow and a history replay agree.

Events are named `<Case>.<EventType>` in the store (eventsourcing topics, e.g.
`domain.ticket:Ticket.Reported`), and every kind lives in the one event store."""
from __future__ import annotations

from datetime import datetime
from typing import Any, Callable, ClassVar
from uuid import NAMESPACE_URL, UUID, uuid5

from eventsourcing.domain import Aggregate

from domain import chain
from domain.casework import CaseState


def case_uuid(kind: str, case_id: str) -> UUID:
    """The aggregate id of a case, derived from its kind and public id."""
    return uuid5(NAMESPACE_URL, f"weibao:{kind}:{case_id}")


class ChainedCase(Aggregate):
    KIND: ClassVar[str]
    CREATED: ClassVar[str]  # the event type that opens the case
    ID_FIELD: ClassVar[str] = "case_id"  # where the opening event's data carries the public id
    new_state: ClassVar[Callable[[str], CaseState]]
    fold: ClassVar[Callable[[CaseState, str, dict, datetime, str], CaseState]]
    check: ClassVar[Callable[[CaseState, str, dict], None]]

    def __init__(self) -> None:
        self.state: CaseState | None = None
        self.head_hash = chain.GENESIS
        self.command_ids: set[str] = set()

    class Event(Aggregate.Event):
        at: datetime
        actor: str
        command_id: str
        data: dict[str, Any]
        prev_hash: str
        hash: str

        def apply(self, case: "ChainedCase") -> None:
            cls = type(case)
            state = case.state or cls.new_state(self.data.get(cls.ID_FIELD, ""))
            case.state = cls.fold(state, type(self).__name__, self.data, self.at, self.actor)
            case.head_hash = self.hash
            case.command_ids.add(self.command_id)

    @classmethod
    def open(cls, case_id: str, *, at: datetime, actor: str, command_id: str, data: dict) -> "ChainedCase":
        data = {**data, cls.ID_FIELD: case_id}
        event_class = getattr(cls, cls.CREATED)
        originator = case_uuid(cls.KIND, case_id)
        recorded_at = event_class.create_timestamp()
        h = chain.event_hash(ticket=str(originator), version=cls.INITIAL_VERSION, type=cls.CREATED, at=at,
                             actor=actor, command_id=command_id, data=data, prev_hash=chain.GENESIS,
                             recorded_at=recorded_at)
        return cls._create(event_class, id=originator, timestamp=recorded_at, at=at, actor=actor,
                           command_id=command_id, data=data, prev_hash=chain.GENESIS, hash=h)

    def record(self, event_type: str, *, at: datetime, actor: str, command_id: str, data: dict,
               step: str | None = None) -> None:
        """Record one fact; a step is checked against the case's rules first."""
        assert self.state is not None
        if step is not None:
            type(self).check(self.state, step, data)
        event_class = getattr(type(self), event_type)
        recorded_at = event_class.create_timestamp()
        h = chain.event_hash(ticket=str(self.id), version=self.version + 1, type=event_type, at=at,
                             actor=actor, command_id=command_id, data=data, prev_hash=self.head_hash,
                             recorded_at=recorded_at)
        self.trigger_event(event_class, timestamp=recorded_at, at=at, actor=actor, command_id=command_id,
                           data=data, prev_hash=self.head_hash, hash=h)


def event_types(case: type[ChainedCase]) -> set[str]:
    """The event types a case kind declares (each once, as a nested class)."""
    return {name for name in dir(case) if isinstance(getattr(case, name), type)
            and issubclass(getattr(case, name), ChainedCase.Event)} - {"Event", "Created"}
