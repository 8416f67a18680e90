"""The one case machinery every workflow runs on (ticket, complaint, return/exchange,
inspection, plan): steps as Updates refused by validators with one set of error types
(UnknownStep, InvalidStepData, IllegalStep), one lock around record-then-fold, the one
recording activity, and the one alarm loop: it sleeps on one durable timer until the
next alarm of `domain.sla` and wakes when a step lands.

Plain helpers and a mixin without Temporal decorators: each workflow declares its own
run, query and Updates with its own state type. Passed through the sandbox."""
from __future__ import annotations

import asyncio
from contextlib import contextmanager
from datetime import datetime, timedelta
from typing import Any, Callable, ClassVar, Iterator

from pydantic import BaseModel, ValidationError
from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError, ApplicationError

from activities.delivery import DeliveryRequest, DeliveryStarter, StartDelivery
from activities.record import (AlarmRaised, Notification, OrgQuery, RaiseAlarm, Recorded, RecordFact, Recorder, Target,
                               TargetRequest)
from domain import sla
from domain.casework import CaseState, IllegalStep
from workflows import search

SYSTEM = "weibao"  # the actor of facts that timers record
LOCAL = dict(start_to_close_timeout=timedelta(seconds=30),
             retry_policy=RetryPolicy(maximum_interval=timedelta(seconds=10),
                                      non_retryable_error_types=["IllegalStep", "UnknownCase", "UnknownTicket"]))
OPENING_GRACE = timedelta(hours=1)  # a start whose opening Update never comes ends after this
# Histories recorded before warnings and escalations were delivered start no delivery.
PATCH_DELIVERY = "deliver-notifications"
# Runs started before an alarm took one round trip raise theirs in four local activities.
PATCH_ONE_ROUND_TRIP = "alarm-in-one-round-trip"
# Runs started before the relay (activities/relay.py) start each alarm's delivery from its task.
PATCH_DELIVERY_BY_RELAY = "deliveries-by-relay"


class PendingAlarm(BaseModel):
    goal: str
    kind: str  # warning | breach | leadership
    at: datetime
    deadline: datetime


class RecordedVersion(BaseModel):
    version: int
    hash: str | None = None  # None: recorded before `record_case` answered with the hash


class CaseRecord(BaseModel):
    """What a case's workflow says it recorded (the `recorded` query), to check the event
    store against (api.evidence): every version this run recorded, with its hash. Versions
    up to `since` were recorded by earlier runs (a plan continues as new every month)."""

    since: int = 0
    facts: list[RecordedVersion] = []


def bad_field(field: str, message: str) -> ApplicationError:
    return ApplicationError(f"{field}: {message}", {"field": field}, type="InvalidStepData")


def parse(steps: dict[str, tuple], step: str, data: dict) -> dict:
    """A step's data validated by its payload model, JSON-ready; refused naming the field."""
    if step not in steps:
        raise ApplicationError(f"unknown step '{step}'; steps are {', '.join(steps)}", {"field": "step"},
                               type="UnknownStep")
    return parse_model(steps[step][1], data)


def parse_model(model: Any, data: dict, prefix: str = "") -> dict:
    try:
        return model.model_validate(data).model_dump(mode="json")
    except ValidationError as e:
        err = e.errors()[0]
        field = ".".join(str(p) for p in err["loc"]) or None
        msg = err["msg"]
        raise ApplicationError(f"{prefix}{field}: {msg}", {"field": f"{prefix}{field}" if field else None},
                               type="InvalidStepData") from None


def reject_illegal(check: Callable[[Any, str, dict], None], state: CaseState, step: str, data: dict) -> None:
    try:
        check(state, step, data)
    except IllegalStep as e:
        raise ApplicationError(str(e), {"status": e.status, "step": e.step}, type="IllegalStep") from None


def windows(overrides: dict[str, timedelta] | None, table: dict[str, timedelta]) -> dict[str, timedelta]:
    return {**table, **{k: v for k, v in (overrides or {}).items() if k in table}}


class CaseWorkflow:
    """The mixin: `KIND` names the aggregate that `record_case` appends to (domain.kinds),
    `fold` is the kind's pure fold."""

    KIND: ClassVar[str]
    fold: ClassVar[Callable[..., CaseState]]
    state: CaseState

    def _setup(self, state: CaseState, code: int) -> None:
        self.state = state
        self.code = code  # the workflow code that started the run (workflows/messages.CODE)
        self.record_log = CaseRecord(since=state.version)  # see `recorded`
        self.lock = asyncio.Lock()
        self.changed = False
        self.refused = False  # the opening Update was refused: the run ends at once
        self.indexed: dict = {}  # the search attributes as last upserted by this run

    def _patched(self, patch_id: str) -> bool:
        """`workflow.patched(patch_id)` for a run started before workflows/messages.CODE;
        True without a marker for one started by it, since every patch so far came before.
        Replaying, such a run still asks: a worker deployed before CODE (a rolling deploy,
        the new API first) reads no `code` and may have recorded the run's first tasks
        with their markers, which the replay must then meet; asked in a replay, `patched`
        records nothing, and finds nothing in a history without them."""
        if self.code < 1:
            return workflow.patched(patch_id)
        if workflow.unsafe.is_replaying():
            workflow.patched(patch_id)
        return True

    async def _opened(self) -> bool:
        """Wait for the opening Update (sent with the start); False when it was refused,
        or never came, so that no refused start lingers with a timer."""
        try:
            await workflow.wait_condition(lambda: self.state.status != "new" or self.refused, timeout=OPENING_GRACE)
        except asyncio.TimeoutError:
            pass  # no opening Update came within the grace: the caller ends the run
        return self.state.status != "new"

    @contextmanager
    def _opening(self) -> Iterator[None]:
        """Around the opening Update's handler: a refusal before anything is recorded ends the run."""
        try:
            yield
        except BaseException:
            if self.state.status == "new":
                self.refused = True
            raise

    async def _watch(self, done: Callable[[], bool]) -> None:
        """Raise each alarm when due until `done()`; a step wakes the loop early."""
        while not done():
            self.changed = False
            ready, next_at = sla.due(self.state, workflow.now())
            for alarm in ready:
                await self._raise(alarm)
            if ready:
                continue
            timeout = None if next_at is None else next_at - workflow.now()
            try:
                await workflow.wait_condition(lambda: self.changed or done(), timeout=timeout)
            except asyncio.TimeoutError:
                pass  # the timer fired: the next alarm is due

    @workflow.query
    def pending_alarms(self) -> list[PendingAlarm]:
        """The alarms still to come, in time order: every alarm due before the first of them
        has been raised (what a caller waits for before saying "not yet")."""
        return [PendingAlarm(goal=a.goal, kind=a.kind, at=a.at, deadline=a.deadline) for a in sla.pending(self.state)]

    def _responsible(self, alarm: sla.Alarm) -> str | None:
        """Who answers for the missed window: by default the one the window recorded."""
        return self.state.windows[alarm.goal].responsible

    def _line(self, alarm: sla.Alarm | None, level: int) -> TargetRequest:
        """What `escalation_target` is asked at `level` (domain.escalation): by default the
        window's responsible person, the window's department handling the case."""
        window = self.state.windows.get(alarm.goal) if alarm else None
        return TargetRequest(responsible=self._responsible(alarm) if alarm else None, level=level, kind=self.KIND,
                             department=window.department if window else None)

    async def _raise(self, alarm: sla.Alarm) -> None:
        """Record a warning, or a breach with its escalation, and notify the target."""
        async with self.lock:
            if alarm not in sla.due(self.state, workflow.now())[0]:
                return  # a step landed while we waited for the lock
            window = self.state.windows[alarm.goal]
            base = {"goal": alarm.goal, "deadline": alarm.deadline.isoformat(), "responsible": self._responsible(alarm),
                    "department": window.department, "due": alarm.at.isoformat()}  # when this alarm fell due
            level = sla.LEVEL[alarm.kind]
            if self._patched(PATCH_ONE_ROUND_TRIP):
                return await self._raise_at_once(alarm, base, level)
            if alarm.kind == "breach":
                already = self.state.requested_level >= 1
                await self._record("SlaBreached", {**base, **({"already_with_level": self.state.requested_level}
                                                              if already else {})}, SYSTEM, alarm.key)
                if already:
                    return  # the customer has already taken it to the superior (or higher)
            target = await self._target(self._line(alarm, level))
            event, key, reason = sla.message(alarm)
            data = {**base, "level": level, "to": target["id"], "to_name": target["name"], "reason": reason}
            await self._record(event, data, SYSTEM, key)
            await self._notify(key, target, event, reason, level=level, goal=alarm.goal, deadline=alarm.deadline,
                               responsible=base["responsible"])

    async def _raise_at_once(self, alarm: sla.Alarm, base: dict, level: int) -> None:
        """The alarm in one round trip (`raise_alarm`): breach, target, warning or escalation,
        outbox and the delivery to start in one local activity; the delivery relay
        (activities/relay.py) starts it. Runs from before the relay start it here."""
        already = alarm.kind == "breach" and self.state.requested_level >= 1
        event, key, reason = sla.message(alarm)
        at = workflow.now()
        by_relay = self._patched(PATCH_DELIVERY_BY_RELAY)
        delivery = self._request(key, {"id": "", "name": ""}, event, reason, level=level, goal=alarm.goal,
                                 deadline=alarm.deadline, responsible=base["responsible"]) if by_relay else None
        raised: AlarmRaised = await workflow.execute_local_activity_method(Recorder.raise_alarm, RaiseAlarm(
            kind=self.KIND, case_id=self.state.case_id, workflow_id=workflow.info().workflow_id, at=at, actor=SYSTEM,
            breach_key=alarm.key if alarm.kind == "breach" else None,
            breach_data={**base, **({"already_with_level": self.state.requested_level} if already else {})},
            escalate=not already, line=self._line(alarm, level), event=event, key=key,
            data={**base, "level": level, "reason": reason}, case_ref=self._case_ref(), delivery=delivery,
            task_queue=workflow.info().task_queue), **LOCAL)
        for event_type, recorded in (("SlaBreached", raised.breach), (event, raised.alarm)):
            if recorded is not None:
                self.record_log.facts.append(RecordedVersion(version=recorded.version, hash=recorded.hash))
                self.state = type(self).fold(self.state, event_type, recorded.data, at, SYSTEM)
        self.changed = True
        self._index()
        if not by_relay and raised.alarm is not None and raised.target is not None:
            await self._deliver(key, raised.target.model_dump(), event, reason, level=level, goal=alarm.goal,
                                deadline=alarm.deadline, responsible=base["responsible"])

    async def _record(self, event_type: str, data: dict, actor: str, key: str, step: str | None = None) -> None:
        at = workflow.now()
        fact = RecordFact(kind=self.KIND, case_id=self.state.case_id, command_id=f"{workflow.info().workflow_id}:{key}",
                          event_type=event_type, step=step, at=at, actor=actor, data=data)
        try:
            recorded = await self._append(fact)
        except ActivityError as e:
            if isinstance(e.cause, ApplicationError) and e.cause.type == "IllegalStep":
                raise ApplicationError(e.cause.message, *e.cause.details, type="IllegalStep") from None
            raise
        # Fold what was recorded: on replay the activity's answer comes from the history, so
        # windows decided by a rule since changed stay as they were. (Histories recorded
        # before the answer carried the data hold a bare version: fold what was sent.)
        if isinstance(recorded, Recorded):
            data = recorded.data
            self.record_log.facts.append(RecordedVersion(version=recorded.version, hash=recorded.hash))
        else:
            self.record_log.facts.append(RecordedVersion(version=recorded))
        self.state = type(self).fold(self.state, event_type, data, at, actor)
        self.changed = True
        self._index()

    def _index(self) -> None:
        """Upsert the search attributes that the last recorded fact changed (workflows/search.py).
        A run whose earlier facts were recorded before the attributes existed starts with its
        next fact: one patch per version until the first upsert, none after it (each patch
        also lands in the run's TemporalChangeVersion attribute)."""
        now = search.values(self.KIND, self.state)
        updates = search.changes(now, self.indexed)
        if not updates or not self.indexed and not self._patched(f"{search.PATCH}:{self.state.version}"):
            return
        workflow.upsert_search_attributes(updates)
        self.indexed = now

    @workflow.query
    def recorded(self) -> CaseRecord:
        """The versions (and hashes) this workflow recorded: an event in the store that it
        never recorded, or one it recorded that the store lacks, is evidence of tampering."""
        return self.record_log

    async def _append(self, fact: RecordFact) -> int | Recorded:
        return await workflow.execute_local_activity_method(Recorder.record_case, fact, **LOCAL)

    async def _lookup(self, staff: list[str | None] = (), departments: list[str | None] = (),
                      kinds: list[str] = ()) -> dict[str, Any]:
        """Staff, departments and a department per kind from the org file (unknown ids are left out)."""
        return await workflow.execute_local_activity_method(
            Recorder.org_lookup, OrgQuery(staff=[s for s in staff if s], departments=[d for d in departments if d],
                                          kinds=list(kinds)), **LOCAL)

    async def _require(self, staff: dict[str, str | None] | None = None,
                       departments: dict[str, str | None] | None = None) -> dict[str, Any]:
        """The org entries for the ids given per field; refuses, naming the field, an id
        the org file does not know."""
        staff = {f: v for f, v in (staff or {}).items() if v}
        departments = {f: v for f, v in (departments or {}).items() if v}
        if not staff and not departments:
            return {"staff": {}, "departments": {}, "kinds": {}}
        org = await self._lookup(staff=list(staff.values()), departments=list(departments.values()))
        for field, v in staff.items():
            if v not in org["staff"]:
                raise bad_field(field, f"{v!r} is not on the staff")
        for field, v in departments.items():
            if v not in org["departments"]:
                raise bad_field(field, f"{v!r} is not a department")
        return org

    async def _target(self, line: TargetRequest) -> dict[str, str]:
        target: Target = await workflow.execute_local_activity_method(Recorder.escalation_target, line, **LOCAL)
        return target.model_dump()

    def _case_ref(self) -> str:
        """How the outbox names the case."""
        return f"{self.KIND}:{self.state.case_id}"

    async def _notify(self, key: str, target: dict[str, str], event: str, reason: str, *, level: int,
                      goal: str | None = None, deadline: datetime | None = None,
                      responsible: str | None = None) -> None:
        """Write the notification to the outbox and start its delivery (workflows/delivery.py),
        which then runs on its own: nothing here waits for a channel."""
        notice = f"{workflow.info().workflow_id}:{key}"
        await workflow.execute_local_activity_method(
            Recorder.notify, Notification(id=notice, ticket_id=self._case_ref(), target=target["id"], kind=event,
                                          reason=reason), **LOCAL)
        if not self._patched(f"{PATCH_DELIVERY}:{key}"):
            return  # a notification recorded before delivery existed (one patch per notification,
            # so a case open across the deploy delivers those that come after it)
        await self._deliver(key, target, event, reason, level=level, goal=goal, deadline=deadline,
                            responsible=responsible)

    def _request(self, key: str, target: dict[str, str], event: str, reason: str, *, level: int,
                 goal: str | None = None, deadline: datetime | None = None,
                 responsible: str | None = None) -> DeliveryRequest:
        """What the notification's delivery needs to know (its target may be filled in later,
        by `raise_alarm`, which resolves it)."""
        s = self.state
        return DeliveryRequest(
            notice=f"{workflow.info().workflow_id}:{key}", kind=self.KIND, case_id=s.case_id, event=event,
            to=target["id"], to_name=target.get("name", ""), level=level, goal=goal, deadline=deadline,
            responsible=responsible, reason=reason, customer=getattr(s, "customer", None),
            site=getattr(s, "site", None), raised_at=workflow.now())

    async def _deliver(self, key: str, target: dict[str, str], event: str, reason: str, *, level: int,
                       goal: str | None = None, deadline: datetime | None = None,
                       responsible: str | None = None) -> None:
        """Start the notification's delivery (workflows/delivery.py), which runs on its own."""
        request = self._request(key, target, event, reason, level=level, goal=goal, deadline=deadline,
                                responsible=responsible)
        await workflow.execute_local_activity_method(
            DeliveryStarter.start_delivery, StartDelivery(task_queue=workflow.info().task_queue, request=request),
            **LOCAL)
