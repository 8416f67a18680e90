"""HTTP routes for fault tickets (报障/维修派工单): `router`, for the app to include.

Thin: authenticate (api.deps), ask `domain.permissions`, forward the report
(update-with-start) or the step (an Update) to the ticket's workflow, and answer with
the Update's own result — the new state, once its event is durable — never a read
model. Reads rebuild the state from the recorded events; the list and a history's
linked cases come from the `ticket_list` read model (eventually consistent)."""
import logging
import uuid
from datetime import datetime, timedelta, timezone
from typing import Annotated, Any, Literal

from eventsourcing.application import AggregateNotFoundError
from fastapi import APIRouter, Path, Query
from fastapi.concurrency import run_in_threadpool
from pydantic import AwareDatetime, BaseModel
from temporalio.client import WithStartWorkflowOperation, WorkflowQueryFailedError
from temporalio.common import WorkflowIDConflictPolicy, WorkflowIDReusePolicy
from temporalio.exceptions import WorkflowAlreadyStartedError
from temporalio.service import RPCError, RPCStatusCode

from activities.store import EventStore, fill_case_ids
from api import errors, lists
from api.deps import (TEMPORAL_ERRORS, WELL_FORMED, CurrentStaff, ReadModelsDep, Services, Svc, from_temporal,
                      idempotent)
from api.errors import ApiError, not_found, require
from api.idempotency import IdempotencyKey
from api.evidence import TicketVerification, examine
from api.models import History, HistoryEvent, TicketCreated, TicketPage
from domain import kinds, permissions
from domain.lifecycle import TicketState
from domain.org import Staff
from domain.permissions import TicketFacts
from domain.steps import STEPS, ReportTicket
from projections import ticket_list
from workflows.messages import CODE, ReportCommand, StartTicket, StepCommand
from workflows.ticket import TicketWorkflow, ticket_workflow_id

log = logging.getLogger("weibao.api")

router = APIRouter(dependencies=WELL_FORMED)

STATUSES = ticket_list.STATUSES
TicketId = Annotated[str, Path(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.\-]*$",
                               description="the ticket id returned by POST /tickets")]

ERRORS = errors.documented(
    (401, "no token, or an unknown or revoked one"), (403, "the role or the ticket does not allow it"),
    (404, "no such ticket"), (409, "not legal in the ticket's current state, or an Idempotency-Key reused"),
    (422, "malformed request; `field` names the culprit"), (503, "Temporal did not answer; retry"))


# --- reading the record ---------------------------------------------------------------------

async def _history(svc: Services, ticket_id: str, staff: Staff) -> tuple[list[dict[str, Any]], int | None]:
    """The ticket's events, after checking the reader may see the ticket."""
    events, damaged = await svc.io(svc.store.read_history, "ticket", ticket_id)
    if not events and damaged is None:
        raise not_found(f"no ticket {ticket_id}")
    require(permissions.may_read_ticket(staff, TicketFacts.of(kinds.replay("ticket", ticket_id, events))))
    return events, damaged


def _current(store: EventStore, ticket_id: str) -> TicketState | None:
    """The ticket's recorded state, from the event store (its cached aggregate, brought
    up to date with the events recorded since), or None if it was never reported."""
    try:
        return store.aggregate("ticket", ticket_id, deepcopy_from_cache=False).state
    except AggregateNotFoundError:
        return None
    except Exception:  # noqa: BLE001 - a stored event that cannot be read or applied
        log.exception("ticket %s: its recorded events cannot be read", ticket_id)
        raise ApiError(409, "record_damaged", f"ticket {ticket_id}: its recorded events cannot be read; "
                                              "GET /tickets/{id}/verify reports on the record") from None


def _undamaged(ticket_id: str, damaged: int | None) -> None:
    if damaged is not None:
        raise ApiError(409, "record_damaged", f"ticket {ticket_id}: the stored event at version {damaged} cannot be "
                                              "read; GET /tickets/{id}/verify reports on the record")


def _utc(value: datetime, name: str) -> datetime:
    try:
        return value.astimezone(timezone.utc)  # an AwareDatetime: a time without a zone is refused
    except (OverflowError, ValueError):
        raise ApiError(422, "invalid", f"{name}: out of range", name) from None


async def _live_state(svc: Services, ticket_id: str) -> TicketState | None:
    """The ticket's state from its workflow (the Query), or None when the workflow is
    not there (never started, or removed after its retention period) or does not answer."""
    try:
        state = await svc.client.get_workflow_handle(ticket_workflow_id(ticket_id)).query(
            TicketWorkflow.current, rpc_timeout=timedelta(seconds=5))
    except RPCError as e:
        if e.status != RPCStatusCode.NOT_FOUND:
            log.warning("ticket %s: query failed (%s); answering from the event store", ticket_id, e)
        return None
    except WorkflowQueryFailedError as e:
        log.warning("ticket %s: query failed (%s); answering from the event store", ticket_id, e)
        return None
    return None if state.status == "new" else state


# --- report and steps -----------------------------------------------------------------------

def _already_started(e: Exception) -> bool:
    """The workflow id is taken by a closed run (an update-with-start says so as ALREADY_EXISTS)."""
    return isinstance(e, WorkflowAlreadyStartedError) or (
        isinstance(e, RPCError) and e.status == RPCStatusCode.ALREADY_EXISTS)


@router.post("/tickets", status_code=201, response_model=TicketCreated, responses=ERRORS, tags=["tickets"])
async def report_ticket(report: ReportTicket, staff: CurrentStaff, svc: Svc,
                        idempotency_key: IdempotencyKey = None) -> Any:
    """报障: an intake clerk registers a fault; answers once the report is recorded."""
    require(permissions.may_report(staff))

    async def run(token: str | None) -> dict[str, Any]:
        ticket_id = f"k{token[:15]}" if token else uuid.uuid4().hex[:16]
        op = WithStartWorkflowOperation(
            TicketWorkflow.run, StartTicket(ticket_id=ticket_id, code=CODE), id=ticket_workflow_id(ticket_id),
            task_queue=svc.task_queue, id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
            id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE)
        try:
            state = await svc.client.execute_update_with_start_workflow(
                TicketWorkflow.report, ReportCommand(actor=staff.id, report=report),
                start_workflow_operation=op, id="report")
        except (WorkflowAlreadyStartedError, *TEMPORAL_ERRORS) as e:
            if not _already_started(e):
                raise from_temporal(e, f"ticket {ticket_id}") from None
            # the key's ticket exists and its workflow has closed: its record answers
            events, _ = await svc.io(svc.store.read_history, "ticket", ticket_id)
            if not events:
                raise ApiError(409, "idempotency_key_reused", "this Idempotency-Key's ticket was started before and "
                                                              "is closed; use a new key", "Idempotency-Key") from None
            state = kinds.replay("ticket", ticket_id, events)
        return {"ticket_id": ticket_id, "state": state.model_dump(mode="json")}

    return await idempotent(svc, staff, idempotency_key, "/tickets", report.model_dump(mode="json"), 201, run)


async def take_step(svc: Services, staff: Staff, ticket_id: str, step: str, data: dict[str, Any],
                    key: str | None, actor: str | None = None) -> Any:
    """The step, once `staff` may take it; recorded with `actor` when the step is someone
    else's own act taken through this person (the customer's sign-off on their phone)."""
    async def run(token: str | None) -> dict[str, Any]:
        current = await svc.io(_current, svc.store, ticket_id)
        if current is None:
            raise not_found(f"no ticket {ticket_id}")
        require(permissions.may_step_ticket(svc.org, staff, step, TicketFacts.of(current), data))
        handle = svc.client.get_workflow_handle(ticket_workflow_id(ticket_id))
        try:
            state = await handle.execute_update(
                TicketWorkflow.step, StepCommand(step=step, actor=actor or staff.id, data=data),
                id=f"idem-{token}" if token else None)
        except TEMPORAL_ERRORS as e:
            raise from_temporal(e, f"ticket {ticket_id}") from None
        return state.model_dump(mode="json")

    # the key is claimed first: a repeat answers the first answer whatever changed since
    return await idempotent(svc, staff, key, f"/tickets/{ticket_id}/steps/{step}", data, 200, run)


def _add_step_route(step: str, model: type[BaseModel]) -> None:
    async def step_route(ticket_id: TicketId, staff: CurrentStaff, svc: Svc, data: model,  # type: ignore[valid-type]
                         idempotency_key: IdempotencyKey = None) -> Any:
        return await take_step(svc, staff, ticket_id, step, data.model_dump(mode="json"), idempotency_key)

    step_route.__doc__ = (model.__doc__ or step).strip()
    router.post(f"/tickets/{{ticket_id}}/steps/{step}", response_model=TicketState, responses=ERRORS,
                tags=["steps"], name=f"step_{step.replace('-', '_')}", summary=f"step: {step}")(step_route)


for _step_name, (_, _step_model) in STEPS.items():
    _add_step_route(_step_name, _step_model)


# --- reads ------------------------------------------------------------------------------------

@router.get("/tickets/{ticket_id}", response_model=TicketState, responses=ERRORS, tags=["tickets"])
async def get_ticket(
    ticket_id: TicketId, staff: CurrentStaff, svc: Svc,
    as_of: Annotated[AwareDatetime | None, Query(
        description="ISO-8601 business time with its zone (Z or +08:00); the state as it stood then")] = None,
    version: Annotated[int | None, Query(ge=1, le=1_000_000, description="the state after this version")] = None,
) -> Any:
    """The ticket now (status, assignee, deadlines, breaches, escalations), or, with
    `as_of` or `version`, as it stood then, rebuilt from its recorded events."""
    if as_of is not None and version is not None:
        raise ApiError(422, "invalid", "version: give either as_of or version, not both", "version")
    if as_of is None and version is None:
        state = await _live_state(svc, ticket_id)
        if state is None:  # the workflow is gone (retention) or does not answer: the record does
            events, damaged = await _history(svc, ticket_id, staff)
            _undamaged(ticket_id, damaged)
            state = kinds.replay("ticket", ticket_id, events)
        require(permissions.may_read_ticket(staff, TicketFacts.of(state)))
    else:
        events, damaged = await _history(svc, ticket_id, staff)
        _undamaged(ticket_id, damaged)
        if version is not None and version > events[-1]["version"]:
            raise not_found(f"ticket {ticket_id} has {events[-1]['version']} versions", "version")
        if as_of is not None:
            as_of = _utc(as_of, "as_of")
            if as_of < events[0]["at"]:
                raise not_found(f"ticket {ticket_id} was reported at {events[0]['at'].isoformat()}, after as_of",
                                "as_of")
        state = kinds.replay("ticket", ticket_id, events, version=version, as_of=as_of)
    return permissions.mask(staff, state.model_dump(mode="json"))


@router.get("/tickets/{ticket_id}/history", response_model=History, responses=ERRORS, tags=["tickets"])
async def get_history(ticket_id: TicketId, staff: CurrentStaff, svc: Svc, models: ReadModelsDep) -> Any:
    """The recorded domain events in order, with business time `at` and recording time."""
    events, damaged = await _history(svc, ticket_id, staff)
    _undamaged(ticket_id, damaged)
    links = await run_in_threadpool(ticket_list.linked_cases, ticket_id,
                                    view=models.view(ticket_list.TicketList.name))
    linked = await svc.io(fill_case_ids, svc.store, links)
    found = await _evidence(svc, ticket_id, events, damaged)
    return {"ticket_id": ticket_id, "intact": found.intact, "evidence": found, "events": [
        HistoryEvent(**{**e, "data": permissions.mask(staff, e["data"])}) for e in events],
        "linked_cases": linked}


@router.get("/tickets/{ticket_id}/verify", response_model=TicketVerification, responses=ERRORS, tags=["tickets"])
async def verify(ticket_id: TicketId, staff: CurrentStaff, svc: Svc) -> Any:
    """Tamper evidence: recompute the ticket's hash chain and compare the stored events with
    the ones its workflow recorded (api.evidence); answers intact, or each version found
    wrong: not matching, missing, never recorded by the workflow, or with another hash."""
    events, damaged = await _history(svc, ticket_id, staff)
    found = await _evidence(svc, ticket_id, events, damaged)
    return TicketVerification(ticket_id=ticket_id, **found.model_dump())


async def _evidence(svc: Services, ticket_id: str, events: list[dict[str, Any]], damaged: int | None) -> Any:
    return await examine(svc.client, lambda: svc.io(svc.store.read_history, "ticket", ticket_id), "ticket", ticket_id,
                         events, damaged)


@router.get("/tickets", response_model=TicketPage, responses=ERRORS, tags=["tickets"])
async def list_tickets(
    staff: CurrentStaff, models: ReadModelsDep,
    status: Literal[STATUSES] | None = None,  # type: ignore[valid-type]
    assignee: Annotated[str | None, Query(min_length=1, max_length=64)] = None,
    breached: bool | None = None,
    customer: Annotated[str | None, Query(min_length=1, max_length=200)] = None,
    from_: Annotated[str | None, Query(alias="from", pattern=r"^\d{4}-\d{2}-\d{2}$",
                                       description="reported on or after this day (CST)")] = None,
    to: Annotated[str | None, Query(pattern=r"^\d{4}-\d{2}-\d{2}$",
                                    description="reported on or before this day (CST)")] = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    offset: Annotated[int, Query(ge=0, le=1_000_000)] = 0,
) -> Any:
    """The ticket list (the `ticket_list` read model), newest report first; engineers see their own."""
    decision, assignee = permissions.may_list_tickets(staff, assignee)
    require(decision)
    start, end = lists.day_bounds(from_, to)
    rows = await run_in_threadpool(lambda: lists.ticket_rows(
        models.view(ticket_list.TicketList.name), status=status, assignee=assignee,
        breached=breached, customer=customer, start=start, end=end, limit=limit + 1, offset=offset))
    return {"items": rows[:limit], "limit": limit, "offset": offset,
            "next_offset": offset + limit if len(rows) > limit else None}
