"""TicketWorkflow: one fault ticket (报障/维修派工单) from report to close, on the one
case machinery (`workflows.casework`).

Steps arrive as Updates with validators, so an illegal step is refused with its
reason and records nothing. Each recorded step answers after one local activity
has appended it to the event store. The SLA windows are durable timers: the one
alarm loop sleeps until the next alarm of `domain.sla` (75 % warning, breach and
escalation to the direct superior, leadership half a window later), and wakes
early when a step changes the ticket, so a met goal or a re-triage simply
changes which alarm comes next. The windows are decided from the window table when
the report or a triage is recorded, and travel in that event."""
from __future__ import annotations

from pydantic import ValidationError
from temporalio import workflow
from temporalio.exceptions import ApplicationError

with workflow.unsafe.imports_passed_through():
    from activities.record import LegacyTicketRecord, Recorded, RecordFact, Recorder
    from domain import lifecycle, sla
    from domain.lifecycle import IllegalStep, TicketState
    from domain.steps import STEPS, parse_step
    from workflows.casework import LOCAL, CaseWorkflow
    from workflows.messages import ReportCommand, StartTicket, StepCommand

# Histories recorded before tickets became a case kind append through the activity named
# "record" with a ticket-shaped input; new runs append through `record_case`.
PATCH_ONE_RECORD = "ticket-records-through-record-case"


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
class TicketWorkflow(CaseWorkflow):
    KIND = "ticket"
    fold = staticmethod(lifecycle.evolve)
    state: TicketState

    @workflow.init
    def __init__(self, start: StartTicket) -> None:
        self._setup(TicketState(case_id=start.ticket_id), start.code)

    @workflow.run
    async def run(self, start: StartTicket) -> TicketState:
        await workflow.wait_condition(lambda: self.state.status != "new")
        await self._watch(lambda: self.state.status == "closed")
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
            windows = self._decide_windows(workflow.now(), cmd.report.severity, cmd.report.zone)
            data["deadlines"] = {goal: w["deadline"] for goal, w in windows.items()}
            data["windows"] = windows
            await self._record("Reported", data, cmd.actor, "report")
        return self.state

    @report.validator
    def _validate_report(self, cmd: ReportCommand) -> None:
        self._reject_if_reported()

    def _reject_if_reported(self) -> None:
        if self.state.status != "new":
            raise ApplicationError(f"ticket {self.state.case_id} is already reported",
                                   {"status": self.state.status, "step": "report"}, type="IllegalStep")

    @workflow.update
    async def step(self, cmd: StepCommand) -> TicketState:
        data = _reject_bad_data(cmd.step, cmd.data)
        async with self.lock:
            _reject_illegal(self.state, cmd.step, data)  # another step may have landed meanwhile
            if cmd.step == "triage":  # re-triage recomputes the windows from the original report
                windows = self._decide_windows(self.state.reported_at, data["severity"], data["zone"])
                data["previous_deadlines"] = {goal: d.isoformat() for goal, d in self.state.deadlines.items()}
                data["deadlines"] = {goal: w["deadline"] for goal, w in windows.items()}
                data["windows"] = windows
            update_id = workflow.current_update_info().id
            await self._record(lifecycle.event_type_for(cmd.step), data, cmd.actor, f"step:{update_id}", cmd.step)
        return self.state

    @step.validator
    def _validate_step(self, cmd: StepCommand) -> None:
        _reject_illegal(self.state, cmd.step, _reject_bad_data(cmd.step, cmd.data))

    def _decide_windows(self, reported_at, severity: str, zone: str) -> dict:
        """The windows from the table, consulted once as the fact is first recorded. The
        workflow folds the record's answer, so a later table does not change them on replay;
        a history recorded before the answer carried them replays with the first table."""
        if self._patched(PATCH_ONE_RECORD):
            return lifecycle.windows_data(reported_at, severity, zone)
        return lifecycle.first_windows_data(reported_at, severity, zone)

    def _responsible(self, alarm: sla.Alarm) -> str | None:
        """Who answers for the ticket when the alarm goes off: the assignee, else the supervisor."""
        return self.state.responsible

    def _case_ref(self) -> str:
        return self.state.case_id

    async def _append(self, fact: RecordFact) -> int | Recorded:
        if self._patched(PATCH_ONE_RECORD):
            return await super()._append(fact)
        legacy = LegacyTicketRecord(ticket_id=fact.case_id, **fact.model_dump(exclude={"kind", "case_id"}))
        return await workflow.execute_local_activity_method(Recorder.record, legacy, **LOCAL)
