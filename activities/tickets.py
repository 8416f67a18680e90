"""Ticket activities, each a few lines: the decisions are in domain/ and workflows/.

They are plain `def` (eventsourcing and psycopg are synchronous) and run as local
activities on the worker's thread pool."""
from __future__ import annotations

from datetime import datetime
from typing import Any

from eventsourcing.application import AggregateNotFoundError
from eventsourcing.persistence import RecordConflictError
from pydantic import BaseModel
from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.outbox import Outbox
from activities.store import Tickets
from domain.lifecycle import IllegalStep
from domain.org import Org
from domain.ticket import Ticket


class RecordCommand(BaseModel):
    ticket_id: str
    command_id: str  # deterministic: workflow id + update id or alarm key
    event_type: str
    step: str | None = None
    at: datetime
    actor: str
    data: dict[str, Any]


class TargetRequest(BaseModel):
    responsible: str | None
    level: int  # 0 the responsible person, 1 direct superior, 2 leadership


class Target(BaseModel):
    id: str
    name: str


class Notification(BaseModel):
    id: str
    ticket_id: str
    target: str
    kind: str
    reason: str


class TicketActivities:
    def __init__(self, tickets: Tickets, org: Org, outbox: Outbox):
        self.tickets, self.org, self.outbox = tickets, org, outbox

    @activity.defn(name="record")
    def record(self, cmd: RecordCommand) -> int:
        """Append one event, exactly once per command id; returns the ticket's version."""
        for _ in range(3):
            try:
                return self._record_once(cmd)
            except RecordConflictError:
                continue  # a concurrent attempt of the same command won the race: look again
            except IllegalStep as e:
                raise ApplicationError(str(e), type="IllegalStep", non_retryable=True) from None
        raise ApplicationError(f"version conflict recording {cmd.command_id}", type="Conflict")

    def _record_once(self, cmd: RecordCommand) -> int:
        try:
            ticket = self.tickets.get_ticket(cmd.ticket_id)
        except AggregateNotFoundError:
            if cmd.event_type != "Reported":
                raise ApplicationError(f"ticket {cmd.ticket_id} is not recorded", type="UnknownTicket",
                                       non_retryable=True) from None
            ticket = Ticket.report(cmd.ticket_id, at=cmd.at, actor=cmd.actor, command_id=cmd.command_id,
                                   data=cmd.data)
        else:
            if cmd.command_id in ticket.command_ids:
                return ticket.version  # recorded by an earlier attempt
            ticket.record(cmd.event_type, at=cmd.at, actor=cmd.actor, command_id=cmd.command_id,
                          data=cmd.data, step=cmd.step)
        self.tickets.save(ticket)
        return ticket.version

    @activity.defn(name="escalation_target")
    def escalation_target(self, req: TargetRequest) -> Target:
        staff = self.org.escalation_target(req.responsible, req.level)
        return Target(id=staff.id, name=staff.name)

    @activity.defn(name="notify")
    def notify(self, n: Notification) -> None:
        self.outbox.add(n.id, n.ticket_id, n.target, n.kind, n.reason)

    def all(self) -> list:
        return [self.record, self.escalation_target, self.notify]
