"""HTTP routes for complaints (§九.C), returns/exchanges (§九.D), maintenance plans and
their visits (§八.7-10): `router`, for the app to include.

Thin, like the ticket routes: authenticate (api.deps), ask `domain.permissions`, forward
the registration (update-with-start) or the step (an Update) to the case's workflow,
and answer with the Update's own result. Reads come from the event store (the case's
aggregate, the one fold), so a closed case reads the same as an open one. Every 4xx
is `{"error", "detail", "field"}` (api.errors): 409 a step not legal now, 422 a bad
field, 404 an unknown case or step.

Windows are data (domain.*_rules); WEIBAO_COMPLAINT_WINDOWS, WEIBAO_RETURN_WINDOWS
and WEIBAO_INSPECTION_WINDOWS override them, e.g. "acknowledged=1h,replied=12h"."""
import uuid
from datetime import timedelta
from functools import cache
from typing import Annotated, Any

from eventsourcing.application import AggregateNotFoundError
from fastapi import APIRouter, Path
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel, Field
from temporalio.client import WithStartWorkflowOperation
from temporalio.common import WorkflowIDConflictPolicy

from activities import config
from api import errors
from api.deps import TEMPORAL_ERRORS, WELL_FORMED, CurrentStaff, Services, Svc, from_temporal, idempotent
from api.errors import ApiError, not_found, require
from api.evidence import Evidence, examine
from api.idempotency import IdempotencyKey
from api.models import HistoryEvent
from domain import complaint_rules, inspection_rules, maintenance, permissions, return_rules
from domain.casework import parse_windows
from domain.complaint_rules import ComplaintState, RegisterComplaint
from domain.inspection_rules import InspectionState
from domain.maintenance import PlanState, StartPlan
from domain.org import Staff
from domain.return_rules import RequestReturn, ReturnState
from workflows.case_messages import (CODE, CaseStart, PlanCommand, PlanStart, RegisterCommand, RequestCommand,
                                     StepCommand)
from workflows.complaint import ComplaintWorkflow, complaint_workflow_id
from workflows.inspection import InspectionWorkflow, inspection_workflow_id
from workflows.plan import PlanWorkflow, plan_workflow_id
from workflows.returns import ReturnWorkflow, return_workflow_id

router = APIRouter(dependencies=WELL_FORMED)

CaseId = Annotated[str, Path(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.\-]*$")]

ERRORS = errors.documented(
    (401, "no token, or an unknown or revoked one"), (403, "the role does not allow it"),
    (404, "no such case"), (409, "not legal in the case's current state, or an Idempotency-Key reused"),
    (422, "malformed request; `field` names the culprit"), (503, "Temporal did not answer; retry"))


# --- answers -----------------------------------------------------------------------------

class ComplaintCreated(BaseModel):
    complaint_id: str
    state: ComplaintState


class ReturnCreated(BaseModel):
    return_id: str
    state: ReturnState


class CaseHistory(BaseModel):
    kind: str
    case_id: str
    intact: bool = Field(description="every event's hash and link match (domain.chain) and, where the case's "
                                     "workflow could be asked, the stored events are the ones it recorded")
    evidence: Evidence = Field(description="what was checked and what was found (api.evidence)")
    events: list[HistoryEvent]


# --- configuration -------------------------------------------------------------------------

@cache
def _windows(var: str, text: str, table: tuple[tuple[str, timedelta], ...]) -> dict[str, timedelta] | None:
    if not text:
        return None
    try:
        return parse_windows(text, dict(table))
    except ValueError as e:
        raise ValueError(f"{var}: {e}") from None


def configured_windows(var: str, table: dict[str, timedelta]) -> dict[str, timedelta] | None:
    """The window overrides of environment variable `var` (None: the table as it is)."""
    return _windows(var, config.env(var, ""), tuple(table.items()))


# --- helpers ---------------------------------------------------------------------------------

async def _state(svc: Services, kind: str, case_id: str) -> Any:
    try:
        case = await run_in_threadpool(svc.store.aggregate, kind, case_id)
    except AggregateNotFoundError:
        raise not_found(f"no {kind} {case_id}") from None
    return case.state


async def _start(svc: Services, what: str, op: WithStartWorkflowOperation, update: Any, arg: Any,
                 update_id: str) -> Any:
    try:
        return await svc.client.execute_update_with_start_workflow(update, arg, start_workflow_operation=op,
                                                                   id=update_id)
    except TEMPORAL_ERRORS as e:
        raise from_temporal(e, what) from None


async def _step(svc: Services, what: str, workflow_id: str, update: Any, cmd: StepCommand, token: str | None) -> Any:
    handle = svc.client.get_workflow_handle(workflow_id)
    try:
        return await handle.execute_update(update, cmd, id=f"idem-{token}" if token else None)
    except TEMPORAL_ERRORS as e:
        raise from_temporal(e, what) from None


async def _visit_facts(svc: Services, kind: str, case_id: str) -> permissions.VisitFacts | None:
    """Whose a plan or visit is, for the rules that depend on it (None for other kinds)."""
    if kind not in ("plan", "inspection"):
        return None
    return permissions.VisitFacts.of(svc.org, await _state(svc, kind, case_id))


async def _history(svc: Services, staff: Staff, kind: str, case_id: str) -> dict[str, Any]:
    require(permissions.may_read_case(staff, kind, await _visit_facts(svc, kind, case_id)))
    events, damaged = await run_in_threadpool(svc.store.read_history, kind, case_id)
    if not events and damaged is None:
        raise not_found(f"no {kind} {case_id}")
    found = await examine(svc.client, lambda: run_in_threadpool(svc.store.read_history, kind, case_id), kind,
                          case_id, events, damaged)
    return CaseHistory(kind=kind, case_id=case_id, intact=found.intact, evidence=found, events=[
        HistoryEvent(**{**e, "data": permissions.mask(staff, e["data"], kind)}) for e in events]).model_dump(mode="json")


def _answer(staff: Staff, state: BaseModel, kind: str | None = None) -> dict[str, Any]:
    return permissions.mask(staff, state.model_dump(mode="json"), kind)


# --- complaints (§九.C) -----------------------------------------------------------------------

@router.post("/complaints", status_code=201, response_model=ComplaintCreated, responses=ERRORS, tags=["complaints"])
async def register_complaint(body: RegisterComplaint, staff: CurrentStaff, svc: Svc,
                             idempotency_key: IdempotencyKey = None) -> Any:
    """登记: an intake clerk registers a complaint or opinion; routed by its category."""
    require(permissions.may_register(staff, "complaint"))
    # what the workflow would refuse starts no workflow: a refused request leaves nothing behind
    if body.about_person and svc.org.get(body.about_person) is None:
        raise ApiError(422, "invalid", f"about_person: {body.about_person!r} is not on the staff", "about_person")
    if body.about_department and body.about_department not in svc.org.departments:
        raise ApiError(422, "invalid", f"about_department: {body.about_department!r} is not a department",
                       "about_department")

    async def run(token: str | None) -> dict[str, Any]:
        cid = f"c{token[:15]}" if token else f"c{uuid.uuid4().hex[:15]}"
        op = WithStartWorkflowOperation(
            ComplaintWorkflow.run,
            CaseStart(case_id=cid, windows=configured_windows("WEIBAO_COMPLAINT_WINDOWS", complaint_rules.WINDOWS),
                      code=CODE),
            id=complaint_workflow_id(cid), task_queue=svc.task_queue,
            id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING)
        state = await _start(svc, f"complaint {cid}", op, ComplaintWorkflow.register,
                             RegisterCommand(actor=staff.id, complaint=body), "register")
        return {"complaint_id": cid, "state": _answer(staff, state)}

    return await idempotent(svc, staff, idempotency_key, "/complaints", body.model_dump(mode="json"), 201, run)


@router.get("/complaints/{case_id}", response_model=ComplaintState, responses=ERRORS, tags=["complaints"])
async def get_complaint(case_id: CaseId, staff: CurrentStaff, svc: Svc) -> Any:
    """The complaint now: routing, windows, acknowledgement, escalations, reply, outcome."""
    require(permissions.may_read_case(staff, "complaint"))
    return _answer(staff, await _state(svc, "complaint", case_id))


@router.get("/complaints/{case_id}/history", response_model=CaseHistory, responses=ERRORS, tags=["complaints"])
async def complaint_history(case_id: CaseId, staff: CurrentStaff, svc: Svc) -> Any:
    """The recorded events in order, business time `at`, actor, hash chain."""
    return await _history(svc, staff, "complaint", case_id)


def _complaint_step(step: str, model: type[BaseModel]) -> None:
    async def route(case_id: CaseId, body: model, staff: CurrentStaff, svc: Svc,  # type: ignore[valid-type]
                    idempotency_key: IdempotencyKey = None) -> Any:
        state = await _state(svc, "complaint", case_id)
        require(permissions.may_step_case(staff, "complaint", step, permissions.handling_department("complaint", state),
                                          permissions.case_about("complaint", state)))
        data = body.model_dump(mode="json")

        async def run(token: str | None) -> dict[str, Any]:
            state = await _step(svc, f"complaint {case_id}", complaint_workflow_id(case_id), ComplaintWorkflow.step,
                                StepCommand(step=step, actor=staff.id, data=data), token)
            return _answer(staff, state)

        return await idempotent(svc, staff, idempotency_key, f"/complaints/{case_id}/steps/{step}", data, 200, run)

    route.__doc__ = (model.__doc__ or step).strip()
    router.post(f"/complaints/{{case_id}}/steps/{step}", response_model=ComplaintState, responses=ERRORS,
                tags=["complaints"], name=f"complaint_{step}", summary=f"complaint step: {step}")(route)


for _name, (_, _model) in complaint_rules.STEPS.items():
    _complaint_step(_name, _model)


# --- returns and exchanges (§九.D) ----------------------------------------------------------

@router.post("/returns", status_code=201, response_model=ReturnCreated, responses=ERRORS, tags=["returns"])
async def request_return(body: RequestReturn, staff: CurrentStaff, svc: Svc,
                         idempotency_key: IdempotencyKey = None) -> Any:
    """退换货申请: answers with the eligibility decision (return, exchange, repair or refused)."""
    require(permissions.may_register(staff, "return"))

    async def run(token: str | None) -> dict[str, Any]:
        # what the pure rule refuses starts no workflow: a refused request leaves nothing behind
        try:
            return_rules.decide(body.delivery_date, return_rules.requested_on(await svc.clock()), body.defect_kind,
                                body.wanted, body.warranty_until)
        except ValueError as e:
            raise ApiError(422, "invalid", f"delivery_date: {e}", "delivery_date") from None
        rid = f"r{token[:15]}" if token else f"r{uuid.uuid4().hex[:15]}"
        handoffs = {g: w for g, (_, w) in return_rules.HANDOFFS.items()}
        op = WithStartWorkflowOperation(
            ReturnWorkflow.run, CaseStart(case_id=rid, windows=configured_windows("WEIBAO_RETURN_WINDOWS", handoffs),
                                      code=CODE),
            id=return_workflow_id(rid), task_queue=svc.task_queue,
            id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING)
        state = await _start(svc, f"return {rid}", op, ReturnWorkflow.request,
                             RequestCommand(actor=staff.id, request=body), "request")
        return {"return_id": rid, "state": _answer(staff, state)}

    return await idempotent(svc, staff, idempotency_key, "/returns", body.model_dump(mode="json"), 201, run)


@router.get("/returns/{case_id}", response_model=ReturnState, responses=ERRORS, tags=["returns"])
async def get_return(case_id: CaseId, staff: CurrentStaff, svc: Svc) -> Any:
    """The return/exchange now: decision, open hand-off and its window, root cause."""
    require(permissions.may_read_case(staff, "return"))
    return _answer(staff, await _state(svc, "return", case_id))


@router.get("/returns/{case_id}/history", response_model=CaseHistory, responses=ERRORS, tags=["returns"])
async def return_history(case_id: CaseId, staff: CurrentStaff, svc: Svc) -> Any:
    return await _history(svc, staff, "return", case_id)


def _return_step(step: str, model: type[BaseModel]) -> None:
    async def route(case_id: CaseId, body: model, staff: CurrentStaff, svc: Svc,  # type: ignore[valid-type]
                    idempotency_key: IdempotencyKey = None) -> Any:
        state: ReturnState = await _state(svc, "return", case_id)
        require(permissions.may_step_case(staff, "return", step, permissions.handling_department("return", state)))
        data = body.model_dump(mode="json")

        async def run(token: str | None) -> dict[str, Any]:
            state = await _step(svc, f"return {case_id}", return_workflow_id(case_id), ReturnWorkflow.step,
                                StepCommand(step=step, actor=staff.id, data=data), token)
            return _answer(staff, state)

        return await idempotent(svc, staff, idempotency_key, f"/returns/{case_id}/steps/{step}", data, 200, run)

    route.__doc__ = (model.__doc__ or step).strip()
    router.post(f"/returns/{{case_id}}/steps/{step}", response_model=ReturnState, responses=ERRORS,
                tags=["returns"], name=f"return_{step}", summary=f"return step: {step}")(route)


for _name, (_, _model, _) in return_rules.STEPS.items():
    _return_step(_name, _model)


# --- maintenance plans (§八.7-10) -------------------------------------------------------------

@router.post("/contracts/{contract_id}/plan", status_code=201, response_model=PlanState, responses=ERRORS,
             tags=["maintenance"])
async def start_plan(contract_id: CaseId, body: StartPlan, staff: CurrentStaff, svc: Svc,
                     idempotency_key: IdempotencyKey = None) -> Any:
    """Start the contract's plan from its delivery date: monthly follow-ups, monthly or
    quarterly inspections, key equipment every 6 months, a full check every 12."""
    require(permissions.may_plan(svc.org, staff, body.responsible))

    async def run(token: str | None) -> dict[str, Any]:
        op = WithStartWorkflowOperation(
            PlanWorkflow.run,
            PlanStart(contract_id=contract_id,
                      windows=configured_windows("WEIBAO_INSPECTION_WINDOWS", inspection_rules.WINDOWS), code=CODE),
            id=plan_workflow_id(contract_id), task_queue=svc.task_queue,
            id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING)
        # a fresh Update id: a second start of a running plan is refused, not deduplicated
        state = await _start(svc, f"the plan of contract {contract_id}", op, PlanWorkflow.start,
                             PlanCommand(actor=staff.id, plan=body), f"start-{token or uuid.uuid4().hex}")
        return _answer(staff, state)

    return await idempotent(svc, staff, idempotency_key, f"/contracts/{contract_id}/plan",
                             body.model_dump(mode="json"), 201, run)


@router.get("/contracts/{contract_id}/plan", response_model=PlanState, responses=ERRORS, tags=["maintenance"])
async def get_plan(contract_id: CaseId, staff: CurrentStaff, svc: Svc) -> Any:
    """The plan: settings, the next month due, visits so far per kind, the latest visits."""
    state = await _state(svc, "plan", contract_id)
    require(permissions.may_read_case(staff, "plan", permissions.VisitFacts.of(svc.org, state)))
    return _answer(staff, state, "plan")


@router.get("/contracts/{contract_id}/plan/history", response_model=CaseHistory, responses=ERRORS, tags=["maintenance"])
async def plan_history(contract_id: CaseId, staff: CurrentStaff, svc: Svc) -> Any:
    return await _history(svc, staff, "plan", contract_id)


def _plan_step(step: str, model: type[BaseModel]) -> None:
    async def route(contract_id: CaseId, body: model, staff: CurrentStaff, svc: Svc,  # type: ignore[valid-type]
                    idempotency_key: IdempotencyKey = None) -> Any:
        state: PlanState = await _state(svc, "plan", contract_id)
        data = body.model_dump(mode="json")
        require(permissions.may_plan(svc.org, staff, state.responsible, data.get("responsible")))

        async def run(token: str | None) -> dict[str, Any]:
            state = await _step(svc, f"the plan of contract {contract_id}", plan_workflow_id(contract_id),
                                PlanWorkflow.step, StepCommand(step=step, actor=staff.id, data=data), token)
            return _answer(staff, state)

        return await idempotent(svc, staff, idempotency_key, f"/contracts/{contract_id}/plan/steps/{step}", data, 200,
                                 run)

    route.__doc__ = (model.__doc__ or step).strip()
    router.post(f"/contracts/{{contract_id}}/plan/steps/{step}", response_model=PlanState, responses=ERRORS,
                tags=["maintenance"], name=f"plan_{step}", summary=f"plan step: {step}")(route)


for _name, (_, _model) in maintenance.STEPS.items():
    _plan_step(_name, _model)


# --- inspections and follow-ups ------------------------------------------------------------------

@router.get("/inspections/{case_id}", response_model=InspectionState, responses=ERRORS, tags=["maintenance"])
async def get_inspection(case_id: CaseId, staff: CurrentStaff, svc: Svc) -> Any:
    """A visit: kind, due day and window, team, customer staff and training, findings,
    replacement recommendations, tickets opened."""
    state = await _state(svc, "inspection", case_id)
    require(permissions.may_read_case(staff, "inspection", permissions.VisitFacts.of(svc.org, state)))
    return _answer(staff, state, "inspection")


@router.get("/inspections/{case_id}/history", response_model=CaseHistory, responses=ERRORS, tags=["maintenance"])
async def inspection_history(case_id: CaseId, staff: CurrentStaff, svc: Svc) -> Any:
    return await _history(svc, staff, "inspection", case_id)


def _inspection_step(step: str, model: type[BaseModel]) -> None:
    async def route(case_id: CaseId, body: model, staff: CurrentStaff, svc: Svc,  # type: ignore[valid-type]
                    idempotency_key: IdempotencyKey = None) -> Any:
        state: InspectionState = await _state(svc, "inspection", case_id)
        data = body.model_dump(mode="json")
        require(permissions.may_visit_step(svc.org, staff, step, permissions.VisitFacts.of(svc.org, state), data))

        async def run(token: str | None) -> dict[str, Any]:
            state = await _step(svc, f"inspection {case_id}", inspection_workflow_id(case_id),
                                InspectionWorkflow.step, StepCommand(step=step, actor=staff.id, data=data), token)
            return _answer(staff, state)

        return await idempotent(svc, staff, idempotency_key, f"/inspections/{case_id}/steps/{step}", data, 200, run)

    route.__doc__ = (model.__doc__ or step).strip()
    router.post(f"/inspections/{{case_id}}/steps/{step}", response_model=InspectionState, responses=ERRORS,
                tags=["maintenance"], name=f"inspection_{step}", summary=f"inspection step: {step}")(route)


for _name, (_, _model) in inspection_rules.STEPS.items():
    _inspection_step(_name, _model)
