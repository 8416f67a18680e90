"""ReturnWorkflow: one return or exchange request (§九.D) from the request to the
customer's confirmation.

- The request (an Update sent with the start) is decided at once by the eligibility
  rule (domain.return_rules.ELIGIBILITY): a return, an exchange, a repair under warranty
  (the answer says to open a fault ticket) or a refusal with the reason. Only a return
  or exchange goes on.
- Hand-offs (domain.return_rules.HANDOFFS): the project department approves; the
  technical department inspects and records the root cause with the responsible
  department and person; finance refunds, or the project department ships the exchange
  unit; the customer confirms. Each hand-off's window starts when it does; its head
  (or the person assigned) is warned at 75 %, the breach escalates to their direct
  superior, and leadership is told half a window later."""
from __future__ import annotations

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from domain import return_rules
    from domain.return_rules import FLOWS, HANDOFFS, STEPS, ReturnState, decide, request_data, requested_on
    from workflows.case_messages import CaseStart, RequestCommand, StepCommand
    from workflows.casework import CaseWorkflow, bad_field, parse, reject_illegal, windows

from temporalio.exceptions import ApplicationError


def return_workflow_id(return_id: str) -> str:
    return f"return-{return_id}"


@workflow.defn(name="ReturnExchange")
class ReturnWorkflow(CaseWorkflow):
    KIND = "return"
    fold = staticmethod(return_rules.evolve)
    state: ReturnState

    @workflow.init
    def __init__(self, start: CaseStart) -> None:
        self._setup(ReturnState(case_id=start.case_id), start.code)
        self.windows = windows(start.windows, {g: w for g, (_, w) in HANDOFFS.items()})

    @workflow.run
    async def run(self, start: CaseStart) -> ReturnState:
        if not await self._opened():
            return self.state
        await self._watch(lambda: not self.state.is_open)
        await workflow.wait_condition(workflow.all_handlers_finished)
        return self.state

    @workflow.query
    def current(self) -> ReturnState:
        return self.state

    @workflow.update
    async def request(self, cmd: RequestCommand) -> ReturnState:
        with self._opening():
            async with self.lock:
                self._reject_if_requested()
                r = cmd.request
                try:
                    decision = decide(r.delivery_date, requested_on(workflow.now()), r.defect_kind, r.wanted,
                                      r.warranty_until)
                except ValueError as e:
                    raise bad_field("delivery_date", str(e)) from None
                routes: dict[str, dict] = {}
                if decision.outcome in FLOWS:
                    flow = FLOWS[decision.outcome]
                    org = await self._lookup(kinds=sorted({HANDOFFS[g][0] for g in flow}))
                    for goal in flow:
                        dep = org["kinds"].get(HANDOFFS[goal][0]) or {}
                        routes[goal] = {"department": dep.get("id"), "responsible": dep.get("head")}
                data = request_data(r.model_dump(mode="json"), decision, routes, self.windows)
                await self._record("Requested", data, cmd.actor, "request")
            return self.state

    @request.validator
    def _validate_request(self, cmd: RequestCommand) -> None:
        self._reject_if_requested()

    def _reject_if_requested(self) -> None:
        if self.state.status != "new":
            raise ApplicationError(f"return {self.state.case_id} is already requested",
                                   {"status": self.state.status, "step": "request"}, type="IllegalStep")

    @workflow.update
    async def step(self, cmd: StepCommand) -> ReturnState:
        data = parse({k: v[:2] for k, v in STEPS.items()}, cmd.step, cmd.data)
        async with self.lock:
            reject_illegal(return_rules.check, self.state, cmd.step, data)
            if cmd.step == "assign":
                await self._require(staff={"person": data["person"]})
            elif cmd.step == "inspect":  # the cause is attributed (§九.D.4)
                await self._require(staff={"responsible_person": data.get("responsible_person")},
                                    departments={"responsible_department": data.get("responsible_department")})
            key = f"step:{workflow.current_update_info().id}"
            await self._record(STEPS[cmd.step][0], data, cmd.actor, key, cmd.step)
        return self.state

    @step.validator
    def _validate_step(self, cmd: StepCommand) -> None:
        data = parse({k: v[:2] for k, v in STEPS.items()}, cmd.step, cmd.data)
        reject_illegal(return_rules.check, self.state, cmd.step, data)
