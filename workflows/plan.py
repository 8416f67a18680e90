"""PlanWorkflow: the routine maintenance plan of one contract (§八.7-10), `plan-<contract>`.

It sleeps until the next month after delivery that has visits (domain.maintenance),
starts an InspectionWorkflow for each visit due that month (a phone follow-up every
month, a routine inspection monthly or quarterly, a key-equipment check every 6
months, a full check every 12), records each on the plan, and continues as new: every
run holds one month, so the history stays short however long the contract runs.

Each visit is a workflow of its own, started by the `start_inspection` activity rather
than as a child: it outlives the month's run (continue-as-new closes it) and keeps its
own windows, and nothing ties its completion to a run long closed. Its id is derived
from contract, kind and month and may not be reused, so a visit is started once even
if a month is scheduled again."""
from __future__ import annotations

from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ApplicationError

with workflow.unsafe.imports_passed_through():
    from activities.visits import StartVisit, Visits
    from domain import inspection_rules, maintenance
    from domain.maintenance import STEPS, PlanState, due_at, first_month, inspection_id, kinds_due
    from domain.policy import CST
    from workflows.case_messages import InspectionStart, PlanCommand, PlanStart, StepCommand
    from workflows.casework import SYSTEM, CaseWorkflow, parse, reject_illegal, windows

START = dict(start_to_close_timeout=timedelta(seconds=30),
             retry_policy=RetryPolicy(maximum_interval=timedelta(minutes=1)))


def plan_workflow_id(contract_id: str) -> str:
    return f"plan-{contract_id}"


@workflow.defn(name="MaintenancePlan")
class PlanWorkflow(CaseWorkflow):
    KIND = "plan"
    fold = staticmethod(maintenance.evolve)
    state: PlanState

    @workflow.init
    def __init__(self, start: PlanStart) -> None:
        self._setup(start.state or PlanState(case_id=start.contract_id), start.code)
        self.windows = windows(start.windows, inspection_rules.WINDOWS)

    @workflow.run
    async def run(self, start: PlanStart) -> PlanState:
        if not await self._opened():
            return self.state
        while self.state.status == "active":
            upcoming = self.state.next_due()
            if upcoming is None:
                await self._end_of_contract()
                break
            month, day = upcoming
            wait = due_at(day) - workflow.now()
            if wait > timedelta(0):
                self.changed = False
                try:
                    await workflow.wait_condition(lambda: self.changed, timeout=wait)
                    continue  # the plan changed or ended meanwhile: look again
                except TimeoutError:
                    pass  # the timer fired: the next visit is due
            await self._schedule(month)
            await workflow.wait_condition(workflow.all_handlers_finished)
            workflow.continue_as_new(PlanStart(contract_id=start.contract_id, state=self.state, windows=start.windows,
                                               code=self.code))
        await workflow.wait_condition(workflow.all_handlers_finished)
        return self.state

    @workflow.query
    def current(self) -> PlanState:
        return self.state

    @workflow.update
    async def start(self, cmd: PlanCommand) -> PlanState:
        with self._opening():
            async with self.lock:
                self._reject_if_started()
                p = cmd.plan
                await self._require(staff={"responsible": p.responsible})
                data = p.model_dump(mode="json")
                data["first_month"] = first_month(p.delivery_date, workflow.now().astimezone(CST).date())
                await self._record("PlanStarted", data, cmd.actor, f"start:{workflow.info().run_id}")
            return self.state

    @start.validator
    def _validate_start(self, cmd: PlanCommand) -> None:
        self._reject_if_started()

    def _reject_if_started(self) -> None:
        if self.state.status != "new":
            raise ApplicationError(f"the plan of contract {self.state.case_id} is already started",
                                   {"status": self.state.status, "step": "start"}, type="IllegalStep")

    @workflow.update
    async def step(self, cmd: StepCommand) -> PlanState:
        data = parse(STEPS, cmd.step, cmd.data)
        async with self.lock:
            reject_illegal(maintenance.check, self.state, cmd.step, data)
            await self._require(staff={"responsible": data.get("responsible")})
            await self._record(STEPS[cmd.step][0], data, cmd.actor, f"step:{workflow.current_update_info().id}",
                               cmd.step)
        return self.state

    @step.validator
    def _validate_step(self, cmd: StepCommand) -> None:
        reject_illegal(maintenance.check, self.state, cmd.step, parse(STEPS, cmd.step, cmd.data))

    async def _schedule(self, month: int) -> None:
        """Start this month's visits and record each on the plan."""
        async with self.lock:
            s = self.state
            day = maintenance.add_months(s.delivery_date, month)
            for kind in kinds_due(month, s.routine_every_months):
                iid = inspection_id(s.case_id, kind, month)
                visit = InspectionStart(inspection_id=iid, contract_id=s.case_id, kind=kind, month=month,
                                        due_at=due_at(day), window=self.windows[kind], customer=s.customer,
                                        site=s.site, contact_phone=s.contact_phone, zone=s.zone,
                                        responsible=s.responsible, code=self.code)
                await workflow.execute_activity_method(
                    Visits.start_inspection, StartVisit(task_queue=workflow.info().task_queue, visit=visit), **START)
                await self._record("VisitScheduled", {"kind": kind, "month": month, "due_on": day.isoformat(),
                                                      "inspection_id": iid}, SYSTEM, f"visit:{kind}:{month}")

    async def _end_of_contract(self) -> None:
        async with self.lock:
            if self.state.status == "active":
                end = self.state.end_date.isoformat()
                await self._record("PlanEnded", {"reason": f"the maintenance contract ended on {end}"}, SYSTEM,
                                   f"end:{end}")
