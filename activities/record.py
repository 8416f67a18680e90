"""The recording activities of every case kind, each a few lines: the decisions are in
domain/ and workflows/. Plain `def` (eventsourcing and psycopg are synchronous) run as
local activities on the worker's thread pool.

- `record_case` appends one event to a case of any kind, exactly once per command id.
- `raise_alarm` records an alarm in one round trip: the breach, its escalation to the
  target resolved here, both in one transaction, and the outbox row.
- `escalation_target` resolves whom a warning or an escalation goes to (`domain.escalation`).
- `org_lookup` answers the workflows' questions about the org file.
- `notify` writes a warning or escalation to the notification outbox.
- `record` is the name tickets recorded under before they became a case kind: histories
  recorded then replay against it (`workflows.ticket`, patch `PATCH_ONE_RECORD`)."""
from __future__ import annotations

import time
from datetime import datetime
from typing import Any, Callable

from eventsourcing.application import AggregateNotFoundError
from eventsourcing.persistence import RecordConflictError
from pydantic import BaseModel, Field
from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.delivery import DeliveryRequest
from activities.outbox import Outbox
from activities.store import EventStore
from domain import escalation
from domain.casework import IllegalStep
from domain.escalation import Line
from domain.kinds import AGGREGATES
from domain.org import Org


class RecordFact(BaseModel):
    kind: str  # ticket | complaint | return | inspection | plan
    case_id: str
    command_id: str  # deterministic: workflow id + update id or alarm key
    event_type: str
    step: str | None = None
    at: datetime
    actor: str
    data: dict[str, Any]


class Recorded(BaseModel):
    """What `record_case` answers: the recorded event's version, its data as it was
    recorded (by this attempt or an earlier one) and its hash. The workflow folds the data,
    so a rule that changed since the fact was recorded does not change the case when its
    history is replayed, and keeps (version, hash), so the store can be checked against
    its own record (api.evidence). Answers recorded before the hash was carried hold none."""

    version: int
    data: dict[str, Any]
    hash: str | None = None


class RaiseAlarm(BaseModel):
    """One alarm of a case in one round trip: its breach (when it is one), the target of its
    warning or escalation resolved from the org, that fact recorded — both events in one
    transaction — and the notification written to the outbox."""

    kind: str
    case_id: str
    workflow_id: str
    at: datetime
    actor: str
    breach_key: str | None = None  # the alarm's key when it is a breach
    breach_data: dict[str, Any] = Field(default_factory=dict)
    escalate: bool = True  # False: the breach alone (a customer already took the case up)
    line: "TargetRequest"
    event: str = "Escalated"  # or SlaWarned
    key: str = ""  # the command key of the warning or escalation
    data: dict[str, Any] = Field(default_factory=dict)  # without its target: filled in here
    case_ref: str = ""  # how the outbox names the case
    # the delivery of the warning or escalation, its target filled in here, left in the outbox
    # for the relay to start (activities/relay.py); None: the workflow starts it (before the
    # patch `deliveries-by-relay`)
    delivery: DeliveryRequest | None = None
    task_queue: str = ""  # the case's, for the relay


class AlarmRaised(BaseModel):
    breach: Recorded | None = None
    alarm: Recorded | None = None
    target: "Target | None" = None


class LegacyTicketRecord(BaseModel):
    """What a ticket's `record` took before tickets were a case kind."""

    ticket_id: str
    command_id: str
    event_type: str
    step: str | None = None
    at: datetime
    actor: str
    data: dict[str, Any]


class TargetRequest(BaseModel):
    responsible: str | None
    level: int  # 0 the responsible person, 1 direct superior, 2 leadership
    kind: str = "ticket"
    department: str | None = None  # the department handling the case now
    about: list[str] = Field(default_factory=list)  # people the case is about: never the target


class Target(BaseModel):
    id: str
    name: str


class OrgQuery(BaseModel):
    staff: list[str] = Field(default_factory=list)
    departments: list[str] = Field(default_factory=list)
    kinds: list[str] = Field(default_factory=list)


class Notification(BaseModel):
    id: str
    ticket_id: str  # the case: a ticket id, or "<kind>:<case id>"
    target: str
    kind: str
    reason: str


class Recorder:
    def __init__(self, store: EventStore, org: Org, outbox: Outbox | None):
        self.store, self.org, self.outbox = store, org, outbox
        self.last_alarm = float("-inf")  # time.monotonic() of the last alarm raised in this process
        self.relays: list[Callable[[], None]] = []  # woken when an alarm leaves a delivery to start

    @activity.defn(name="record_case")
    def record_case(self, fact: RecordFact) -> Recorded | int:
        """Append one event, exactly once per command id; returns what was recorded.
        (The int: histories recorded before `Recorded` hold a bare version as its answer,
        and the workflow decodes their answers by this annotation.)"""
        for _ in range(3):
            try:
                return self._record_once(fact)
            except RecordConflictError:
                continue  # a concurrent attempt of the same command won the race: look again
            except IllegalStep as e:
                raise ApplicationError(str(e), {"status": e.status, "step": e.step}, type="IllegalStep",
                                       non_retryable=True) from None
        raise ApplicationError(f"version conflict recording {fact.command_id}", type="Conflict")

    def _record_once(self, fact: RecordFact) -> Recorded:
        aggregate = AGGREGATES[fact.kind]
        try:
            case = self.store.aggregate(fact.kind, fact.case_id)
        except AggregateNotFoundError:
            if fact.event_type != aggregate.CREATED:
                raise ApplicationError(f"{fact.kind} {fact.case_id} is not recorded", type="UnknownCase",
                                       non_retryable=True) from None
            case = aggregate.open(fact.case_id, at=fact.at, actor=fact.actor, command_id=fact.command_id,
                                  data=fact.data)
        else:
            if fact.command_id in case.command_ids:  # recorded by an earlier attempt: answer what it recorded
                return self._earlier(fact.kind, fact.case_id, fact.command_id)
            case.record(fact.event_type, at=fact.at, actor=fact.actor, command_id=fact.command_id,
                        data=fact.data, step=fact.step)
        event = case.pending_events[-1]
        self.store.save(case)
        return Recorded(version=event.originator_version, data=event.data, hash=event.hash)

    def _earlier(self, kind: str, case_id: str, command_id: str) -> Recorded:
        """What an earlier attempt of `command_id` recorded (a retry answers it, not its own data)."""
        event = next(e for e in self.store.history(kind, case_id) if e["command_id"] == command_id)
        return Recorded(version=event["version"], data=event["data"], hash=event["hash"])

    @activity.defn(name="raise_alarm")
    def raise_alarm(self, req: RaiseAlarm) -> AlarmRaised:
        """Record an alarm's facts exactly once per command id, in one save; returns them as recorded."""
        self.last_alarm = time.monotonic()
        for _ in range(3):
            try:
                answer = self._raise_once(req)
                self.last_alarm = time.monotonic()
                if req.delivery is not None and answer.alarm is not None:
                    for wake in self.relays:
                        wake()
                return answer
            except RecordConflictError:
                continue  # a concurrent attempt of the same alarm won the race: look again
        raise ApplicationError(f"version conflict raising {req.workflow_id}:{req.key}", type="Conflict")

    def _raise_once(self, req: RaiseAlarm) -> AlarmRaised:
        case = self.store.aggregate(req.kind, req.case_id)
        answer = AlarmRaised()

        def record(event_type: str, key: str, data: dict[str, Any]) -> Recorded:
            command_id = f"{req.workflow_id}:{key}"
            if command_id in case.command_ids:  # recorded by an earlier attempt: answer what it recorded
                return self._earlier(req.kind, req.case_id, command_id)
            case.record(event_type, at=req.at, actor=req.actor, command_id=command_id, data=data)
            pending = case.pending_events[-1]
            return Recorded(version=case.version, data=pending.data, hash=pending.hash)

        if req.breach_key:
            answer.breach = record("SlaBreached", req.breach_key, req.breach_data)
        if req.escalate:
            answer.target = self.escalation_target(req.line)
            answer.alarm = record(req.event, req.key, {**req.data, "to": answer.target.id,
                                                       "to_name": answer.target.name})
        if case.pending_events:
            self.store.save(case)  # the breach and its escalation in one transaction
        if answer.alarm is not None and self.outbox is not None:
            notice, start = f"{req.workflow_id}:{req.key}", None
            if req.delivery is not None:
                request = req.delivery.model_copy(update={"notice": notice, "to": answer.alarm.data["to"],
                                                          "to_name": answer.alarm.data.get("to_name", "")})
                start = (req.task_queue, request.model_dump_json())
            self.outbox.add(notice, req.case_ref, answer.alarm.data["to"], req.event,
                            answer.alarm.data.get("reason", ""), start=start)
        return answer

    @activity.defn(name="record")
    def record(self, cmd: LegacyTicketRecord) -> int:
        """`record_case` under the name and input that ticket histories recorded before the patch use."""
        return self.record_case(RecordFact(kind="ticket", case_id=cmd.ticket_id,
                                           **cmd.model_dump(exclude={"ticket_id"}))).version

    @activity.defn(name="escalation_target")
    def escalation_target(self, req: TargetRequest) -> Target:
        line = Line(responsible=req.responsible, kind=req.kind, department=req.department,
                    about=frozenset(a for a in req.about if a))
        staff = escalation.target(self.org, line, req.level)
        return Target(id=staff.id, name=staff.name)

    @activity.defn(name="org_lookup")
    def org_lookup(self, q: OrgQuery) -> dict[str, Any]:
        """Known staff and departments by id, and the first department of each kind asked."""
        deps = self.org.departments

        def department(d) -> dict[str, Any]:
            head = self.org.get(d.head)
            return {"id": d.id, "name": d.name, "kind": d.kind, "head": d.head,
                    "head_name": head.name if head else None}

        return {
            "staff": {s.id: {"id": s.id, "name": s.name, "role": s.role, "department": s.department,
                             "superior": s.superior} for s in map(self.org.get, q.staff) if s is not None},
            "departments": {d: department(deps[d]) for d in q.departments if d in deps},
            "kinds": {k: department(d) for k in q.kinds
                      for d in [next((d for d in deps.values() if d.kind == k), None)] if d is not None},
        }

    @activity.defn(name="notify")
    def notify(self, n: Notification) -> None:
        if self.outbox is not None:
            self.outbox.add(n.id, n.ticket_id, n.target, n.kind, n.reason)

    def all(self) -> list:
        return [self.record_case, self.raise_alarm, self.record, self.escalation_target, self.org_lookup, self.notify]


RaiseAlarm.model_rebuild()
AlarmRaised.model_rebuild()
