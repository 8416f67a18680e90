"""Starting and driving complaints, returns, plans and inspections in tests, the way
the API does (update-with-start, then step Updates), with every started workflow
handed to conftest.STARTED so teardown terminates it."""
from __future__ import annotations

import asyncio
import uuid
from datetime import timedelta
from typing import Any, Callable

from temporalio.client import Client, WithStartWorkflowOperation, WorkflowHandle
from temporalio.common import WorkflowIDConflictPolicy

from domain.complaint_rules import RegisterComplaint
from domain.maintenance import StartPlan
from domain.return_rules import RequestReturn
from tests.conftest import STARTED, settle
from workflows.case_messages import (CODE, CaseStart, InspectionStart, PlanCommand, PlanStart, RegisterCommand,
                                     RequestCommand, StepCommand)
from workflows.complaint import ComplaintWorkflow, complaint_workflow_id
from workflows.inspection import InspectionWorkflow, inspection_workflow_id
from workflows.plan import PlanWorkflow, plan_workflow_id
from workflows.returns import ReturnWorkflow, return_workflow_id

COMPLAINT = dict(customer="Kunming First People's Hospital", contact="0871-6300000", channel="phone",
                 category="service_attitude", description="the engineer was rude and left before the fix")
RETURN = dict(customer="Kunming First People's Hospital", contact="0871-6300000", product="HIS terminal T20",
              serial_no="T20-0001", defect="screen flickers and goes dark", defect_kind="quality")
INSPECTED = dict(defect_confirmed=True, root_cause="cold solder joint on the backlight driver",
                 responsible_department="rnd", responsible_person="M003")  # a return's inspection step
PLAN = dict(customer="Kunming First People's Hospital", site="157 Jinbi Rd, Kunming", contact_phone="0871-6300000")


def new_id(prefix: str) -> str:
    return f"{prefix}{uuid.uuid4().hex[:10]}"


async def register_complaint(client: Client, task_queue: str, actor: str = "C001",
                             windows: dict[str, timedelta] | None = None, **fields: Any):
    cid = new_id("c")
    op = WithStartWorkflowOperation(ComplaintWorkflow.run, CaseStart(case_id=cid, windows=windows, code=CODE),
                                    id=complaint_workflow_id(cid), task_queue=task_queue,
                                    id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING)
    try:
        state = await client.execute_update_with_start_workflow(
            ComplaintWorkflow.register,
            RegisterCommand(actor=actor, complaint=RegisterComplaint(**{**COMPLAINT, **fields})),
            start_workflow_operation=op, id="register")
    finally:
        STARTED.append(client.get_workflow_handle(complaint_workflow_id(cid)))
    return await op.workflow_handle(), state


async def request_return(client: Client, task_queue: str, actor: str = "C001",
                         windows: dict[str, timedelta] | None = None, **fields: Any):
    rid = new_id("r")
    op = WithStartWorkflowOperation(ReturnWorkflow.run, CaseStart(case_id=rid, windows=windows, code=CODE),
                                    id=return_workflow_id(rid), task_queue=task_queue,
                                    id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING)
    try:
        state = await client.execute_update_with_start_workflow(
            ReturnWorkflow.request, RequestCommand(actor=actor, request=RequestReturn(**{**RETURN, **fields})),
            start_workflow_operation=op, id="request")
    finally:
        STARTED.append(client.get_workflow_handle(return_workflow_id(rid)))
    return await op.workflow_handle(), state


async def start_plan(client: Client, task_queue: str, contract_id: str | None = None, actor: str = "S002",
                     **fields: Any):
    contract_id = contract_id or new_id("k")
    op = WithStartWorkflowOperation(PlanWorkflow.run, PlanStart(contract_id=contract_id, code=CODE),
                                    id=plan_workflow_id(contract_id), task_queue=task_queue,
                                    id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING)
    try:
        state = await client.execute_update_with_start_workflow(
            PlanWorkflow.start, PlanCommand(actor=actor, plan=StartPlan(**{**PLAN, **fields})),
            start_workflow_operation=op, id=new_id("start-"))  # a second start is refused, not deduplicated
    finally:
        STARTED.append(client.get_workflow_handle(plan_workflow_id(contract_id)))  # the latest run
    return client.get_workflow_handle_for(PlanWorkflow.run, plan_workflow_id(contract_id)), state


async def start_inspection(client: Client, task_queue: str, due_at, kind: str = "routine",
                           window: timedelta = timedelta(days=14), responsible: str | None = "E002"):
    """A visit started the way the plan starts one, without waiting for its month."""
    iid = new_id("i")
    handle = await client.start_workflow(
        InspectionWorkflow.run, InspectionStart(inspection_id=iid, contract_id="k-test", kind=kind, month=1,
                                                due_at=due_at, window=window, **PLAN, responsible=responsible,
                                                code=CODE),
        id=inspection_workflow_id(iid), task_queue=task_queue)
    STARTED.append(handle)
    return handle, await settle(handle, lambda s: s.status != "new", workflow=InspectionWorkflow)


async def step(handle: WorkflowHandle, workflow_class: Any, name: str, actor: str, **data: Any):
    return await handle.execute_update(workflow_class.step, StepCommand(step=name, actor=actor, data=data))


OPENING_EVENTS = {  # the topic that opens each case -> its workflow id
    "domain.complaint:Complaint.Registered": complaint_workflow_id,
    "domain.returns:ReturnCase.Requested": return_workflow_id,
    "domain.plan:MaintenancePlan.PlanStarted": plan_workflow_id,
    "domain.inspection:Inspection.Scheduled": inspection_workflow_id,
}


async def end_case_workflows(client: Client, store: Any) -> None:
    """Terminate the workflow of every case recorded in `store` (for tests that start
    cases through the API): their timers must not outlive the test's worker."""
    start, ids = 1, []
    while True:
        notes = store.recorder.select_notifications(start=start, limit=500, topics=tuple(OPENING_EVENTS))
        if not notes:
            break
        for n in notes:
            ids.append(OPENING_EVENTS[n.topic](store.mapper.to_domain_event(n).data["case_id"]))
        start = notes[-1].id + 1
    for workflow_id in ids:
        try:
            await client.get_workflow_handle(workflow_id).terminate("test over")
        except Exception:
            pass  # already closed


def linked_cases(store: Any, ticket_id: str) -> list[dict[str, Any]]:
    """What a ticket's history view lists as linked cases, with the ticket_list read
    model caught up first (the projection runner is not running in these tests)."""
    from activities.store import fill_case_ids
    from projections import ticket_list
    from projections.runner import ReadModels, Runner

    models = ReadModels()
    runner = Runner(store, models, names=[ticket_list.TicketList.name])
    try:
        runner.catch_up()
        return fill_case_ids(store, ticket_list.linked_cases(ticket_id, view=models.view(ticket_list.TicketList.name)))
    finally:
        runner.close()
        models.close()
