"""InspectionWorkflow: one visit of a maintenance plan (§八.7-10), started by the plan
when it falls due: a phone follow-up, a routine inspection, a key-equipment check or a
full check.

Its window (domain.inspection_rules.WINDOWS) runs from the day it falls due; the
engineer in charge (else the project department's head, §八: 由项目实施部门负责日常实施)
is warned at 75 %, an overdue visit escalates to their direct superior, and leadership
is told half a window later. A finding marked `open_ticket` opens a fault ticket
through the `open_fault_ticket` activity (see activities/visits.py for why an activity)."""
from __future__ import annotations

from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy

with workflow.unsafe.imports_passed_through():
    from activities.visits import OpenFaultTicket, Visits
    from domain import inspection_rules
    from domain.casework import open_window
    from domain.inspection_rules import GOAL, STEPS, InspectionState, with_recommendations
    from workflows.case_messages import InspectionStart, StepCommand
    from workflows.casework import SYSTEM, CaseWorkflow, parse, reject_illegal

OPEN_TICKET = dict(start_to_close_timeout=timedelta(seconds=60),
                   retry_policy=RetryPolicy(maximum_interval=timedelta(seconds=30)))


def inspection_workflow_id(inspection_id: str) -> str:
    return f"inspection-{inspection_id}"


@workflow.defn(name="Inspection")
class InspectionWorkflow(CaseWorkflow):
    KIND = "inspection"
    fold = staticmethod(inspection_rules.evolve)
    state: InspectionState

    @workflow.init
    def __init__(self, start: InspectionStart) -> None:
        self._setup(InspectionState(case_id=start.inspection_id), start.code)

    @workflow.run
    async def run(self, start: InspectionStart) -> InspectionState:
        async with self.lock:
            responsible, department = start.responsible, None
            if responsible is None:
                project = (await self._lookup(kinds=["project"]))["kinds"].get("project") or {}
                responsible, department = project.get("head"), project.get("id")
            data = start.model_dump(mode="json", exclude={"inspection_id", "window"})
            data.update(responsible=responsible,
                        window=open_window(GOAL, start.due_at, start.window, responsible, department))
            await self._record("Scheduled", data, SYSTEM, "scheduled")
        await self._watch(lambda: not self.state.is_open)
        await workflow.wait_condition(workflow.all_handlers_finished)
        return self.state

    @workflow.query
    def current(self) -> InspectionState:
        return self.state

    @workflow.update
    async def step(self, cmd: StepCommand) -> InspectionState:
        data = parse(STEPS, cmd.step, cmd.data)
        async with self.lock:
            reject_illegal(inspection_rules.check, self.state, cmd.step, data)
            key = f"step:{workflow.current_update_info().id}"
            if cmd.step == "assign":
                await self._require(staff={"engineer": data["engineer"]})
            elif cmd.step == "inspect":
                await self._require(staff={f"team.{i}": p for i, p in enumerate(data["team"])})
                data = with_recommendations(data)
            await self._record(STEPS[cmd.step][0], data, cmd.actor, key, cmd.step)
            if cmd.step == "inspect":
                for i, finding in enumerate(data["findings"]):
                    if finding["open_ticket"]:
                        await self._open_ticket(i, finding, cmd.actor)
        return self.state

    @step.validator
    def _validate_step(self, cmd: StepCommand) -> None:
        reject_illegal(inspection_rules.check, self.state, cmd.step, parse(STEPS, cmd.step, cmd.data))

    async def _open_ticket(self, i: int, finding: dict, actor: str) -> None:
        """报障 for a finding, recorded on the inspection with the ticket's id."""
        s = self.state
        ticket_id = f"{s.case_id}-f{i + 1}"
        report = {"customer": s.customer, "site": s.site, "contact_phone": s.contact_phone or "0",
                  "product_model": finding["device"], "symptoms": finding["symptoms"], "channel": "visit",
                  "severity": finding["severity"], "zone": s.zone}
        await workflow.execute_activity_method(
            Visits.open_fault_ticket, OpenFaultTicket(ticket_id=ticket_id, task_queue=workflow.info().task_queue,
                                                      actor=actor, report=report), **OPEN_TICKET)
        await self._record("FaultTicketOpened", {"finding": i, "device": finding["device"], "ticket_id": ticket_id,
                                                 "inspection_id": s.case_id}, actor, f"ticket:{i}")
