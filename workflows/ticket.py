"""TicketWorkflow: one fault ticket (报障/维修派工单) from report to close.

Steps arrive as Updates with validators, so an illegal step is refused with its
reason and records nothing. Each recorded step answers after one local activity
has appended it to the event store. The SLA windows are durable timers: the loop
in `run` sleeps until the next alarm of `domain.sla` (75 % warning, breach and
escalation to the direct superior, leadership half a window later), and wakes
early when a step changes the ticket, so a met goal or a re-triage simply
changes which alarm comes next."""
from __future__ import annotations

import asyncio
from datetime import timedelta
from pydantic import ValidationError
from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ApplicationError

with workflow.unsafe.imports_passed_through():
    from domain import lifecycle, policy, sla
    from domain.lifecycle import IllegalStep, TicketState
    from domain.steps import STEPS, parse_step
    from workflows.messages import ReportCommand, StartTicket, StepCommand

SYSTEM = "weibao"  # the actor of facts that the timers record
LOCAL = dict(start_to_close_timeout=timedelta(seconds=30),
             retry_policy=RetryPolicy(maximum_interval=timedelta(seconds=10),
                                      non_retryable_error_types=["IllegalStep", "UnknownTicket"]))


def ticket_workflow_id(ticket_id: str) -> str:
    return f"ticket-{ticket_id}"


def _reject_bad_data(step: str, data: dict) -> dict:
    try:
        return parse_step(step, data)
    except KeyError:
        raise ApplicationError(f"unknown step '{step}'; steps are {', '.join(STEPS)}",
                               {"field": "step"}, type="UnknownStep") from None
    except ValidationError as e:
        err = e.errors()[0]
        field = ".".join(str(p) for p in err["loc"]) or None
        raise ApplicationError(f"{field}: {err['msg']}", {"field": field}, type="InvalidStepData") from None


def _reject_illegal(state: TicketState, step: str, data: dict) -> None:
    try:
        lifecycle.check(state, step, data)
    except IllegalStep as e:
        raise ApplicationError(str(e), {"status": e.status, "step": e.step}, type="IllegalStep") from None


@workflow.defn(name="Ticket")
class TicketWorkflow:
    @workflow.init
    def __init__(self, start: StartTicket) -> None:
        self.state = TicketState(ticket_id=start.ticket_id)
        self.lock = asyncio.Lock()
        self.changed = False

    @workflow.run
    async def run(self, start: StartTicket) -> TicketState:
        await workflow.wait_condition(lambda: self.state.status != "new")
        while self.state.status != "closed":
            self.changed = False
            ready, next_at = sla.due(self.state, workflow.now())
            for alarm in ready:
                await self._raise(alarm)
            if ready:
                continue
            timeout = None if next_at is None else next_at - workflow.now()
            try:
                await workflow.wait_condition(lambda: self.changed, timeout=timeout)
            except asyncio.TimeoutError:
                pass  # the timer fired: the next alarm is due
        await workflow.wait_condition(workflow.all_handlers_finished)
        return self.state

    @workflow.query
    def current(self) -> TicketState:
        return self.state

    # 报障: the report itself is an Update (sent with the start), so the fact is
    # durable before the caller gets the ticket back.
    @workflow.update
    async def report(self, cmd: ReportCommand) -> TicketState:
        async with self.lock:
            self._reject_if_reported()
            data = cmd.report.model_dump(mode="json")
            data["deadlines"] = _iso(policy.deadlines(workflow.now(), cmd.report.severity, cmd.report.zone))
            await self._record("Reported", data, cmd.actor, "report")
        return self.state

    @report.validator
    def _validate_report(self, cmd: ReportCommand) -> None:
        self._reject_if_reported()

    def _reject_if_reported(self) -> None:
        if self.state.status != "new":
            raise ApplicationError(f"ticket {self.state.ticket_id} is already reported",
                                   {"status": self.state.status, "step": "report"}, type="IllegalStep")

    @workflow.update
    async def step(self, cmd: StepCommand) -> TicketState:
        data = _reject_bad_data(cmd.step, cmd.data)
        async with self.lock:
            _reject_illegal(self.state, cmd.step, data)  # another step may have landed meanwhile
            if cmd.step == "triage":
                data["previous_deadlines"] = _iso(self.state.deadlines)
                data["deadlines"] = _iso(policy.deadlines(self.state.reported_at, data["severity"], data["zone"]))
            update_id = workflow.current_update_info().id
            await self._record(lifecycle.event_type_for(cmd.step), data, cmd.actor, f"step:{update_id}", cmd.step)
        return self.state

    @step.validator
    def _validate_step(self, cmd: StepCommand) -> None:
        _reject_illegal(self.state, cmd.step, _reject_bad_data(cmd.step, cmd.data))

    async def _raise(self, alarm: sla.Alarm) -> None:
        """Record a warning, or a breach with its escalation, and notify the target."""
        async with self.lock:
            if alarm not in sla.due(self.state, workflow.now())[0]:
                return  # a step landed while we waited for the lock
            responsible = self.state.responsible
            base = {"goal": alarm.goal, "deadline": alarm.deadline.isoformat(), "responsible": responsible}
            if alarm.kind == "breach":
                await self._record("SlaBreached", base, SYSTEM, f"{alarm.key}")
            level = sla.LEVEL[alarm.kind]
            target = await workflow.execute_local_activity(
                "escalation_target", {"responsible": responsible, "level": level}, result_type=dict, **LOCAL)
            event, key, reason = sla.message(alarm)
            data = {**base, "level": level, "to": target["id"], "to_name": target["name"], "reason": reason}
            await self._record(event, data, SYSTEM, key)
            await workflow.execute_local_activity(
                "notify", {"id": f"{workflow.info().workflow_id}:{key}", "ticket_id": self.state.ticket_id,
                           "target": target["id"], "kind": event, "reason": reason}, **LOCAL)

    async def _record(self, event_type: str, data: dict, actor: str, key: str, step: str | None = None) -> None:
        at = workflow.now()
        await workflow.execute_local_activity(
            "record",
            {"ticket_id": self.state.ticket_id, "command_id": f"{workflow.info().workflow_id}:{key}",
             "event_type": event_type, "step": step, "at": at, "actor": actor, "data": data},
            result_type=int, **LOCAL)
        self.state = lifecycle.evolve(self.state, event_type, data, at, actor)
        self.changed = True


def _iso(deadlines: dict) -> dict[str, str]:
    return {k: v.isoformat() for k, v in deadlines.items()}
