"""The HTTP API: authenticates, asks `domain.permissions`, forwards reports and steps
to the ticket workflows as Temporal Updates, and reads. No business rule lives here:
the workflow's validators decide what is legal, and a step answers with the Update's
own result (never a read model).

    python -m api        # serves on WEIBAO_API_HOST:WEIBAO_API_PORT (127.0.0.1:8000)
"""
import logging
import uuid
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Annotated, Any, Callable, Literal

from eventsourcing.application import AggregateNotFoundError
from fastapi import Depends, FastAPI, Path, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel
from temporalio.client import (Client, WithStartWorkflowOperation, WorkflowQueryFailedError,
                               WorkflowUpdateFailedError, WorkflowUpdateRPCTimeoutOrCancelledError)
from temporalio.common import WorkflowIDConflictPolicy, WorkflowIDReusePolicy
from temporalio.exceptions import ApplicationError, WorkflowAlreadyStartedError
from temporalio.service import RPCError, RPCStatusCode

from activities import config
from activities.store import fill_case_ids
from activities.store import EventStore, open_store
from activities.temporal import connect
from api import errors
from api.auth import Tokens
from api.db import Database
from api.errors import ApiError, not_found, require, unauthorized
from api.idempotency import Claim, IdempotencyKey, IdempotencyKeys, KeyReused, fingerprint
from api.models import (History, HistoryEvent, TicketCreated, TicketPage, Verification,
                        replay)
from domain import chain, permissions
from domain.lifecycle import TicketState
from domain.org import Org, Staff
from domain.permissions import TicketFacts
from domain.steps import STEPS, ReportTicket
from projections import ticket_list
from workflows.messages import ReportCommand, StartTicket, StepCommand
from workflows.ticket import TicketWorkflow, ticket_workflow_id

log = logging.getLogger("weibao.api")

STATUSES = ticket_list.STATUSES


@dataclass
class Services:
    client: Client
    store: EventStore  # the event store of every case kind
    org: Org
    tokens: Tokens
    keys: IdempotencyKeys
    task_queue: str
    # GET /tickets and a history's linked cases read the `ticket_list` read model that
    # `python -m projections` keeps (eventually consistent); tests catch it up first
    list_tickets: Callable[..., list[dict[str, Any]]] = ticket_list.list_tickets
    linked_cases: Callable[[str], list[dict[str, Any]]] = ticket_list.linked_cases
    closers: list[Callable[[], None]] = field(default_factory=list)
    # SQLite reads are local and short: run them on the event loop rather than pay two
    # thread switches a request; PostgreSQL's go to the thread pool
    inline_io: bool = False

    async def io(self, fn: Callable[..., Any], *args: Any) -> Any:
        return fn(*args) if self.inline_io else await run_in_threadpool(fn, *args)

    @classmethod
    def build(cls, client: Client, store: EventStore, org: Org, task_queue: str | None = None,
              db: Database | None = None) -> "Services":
        own_db = db is None
        db = db or Database()
        return cls(client=client, store=store, org=org, tokens=Tokens(db), keys=IdempotencyKeys(db),
                   task_queue=task_queue or config.task_queue(),
                   closers=[db.close] if own_db else [], inline_io=db.kind == "sqlite")

    @classmethod
    async def from_env(cls) -> "Services":
        store = open_store()
        svc = cls.build(await connect(), store, config.load_org())
        svc.closers.append(store.close)
        return svc

    def close(self) -> None:
        for close in self.closers:
            close()


# --- dependencies -------------------------------------------------------------------

bearer = HTTPBearer(auto_error=False, description="a token printed by `weibao token STAFF_ID`")


async def get_services(request: Request) -> Services:
    return request.app.state.services


Svc = Annotated[Services, Depends(get_services)]


async def current_staff(request: Request, svc: Svc,
                        creds: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)]) -> Staff:
    if creds is None:
        raise unauthorized("no bearer token: send 'Authorization: Bearer <token>' (issued by `weibao token STAFF_ID`)")
    staff_id = await svc.io(svc.tokens.staff_of, creds.credentials)
    if staff_id is None:
        raise unauthorized("unknown or revoked token")
    staff = svc.org.get(staff_id)
    if staff is None:
        raise unauthorized(f"{staff_id} is no longer on the staff of the org file")
    request.state.staff_id = staff.id
    return staff


CurrentStaff = Annotated[Staff, Depends(current_staff)]
TicketId = Annotated[str, Path(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.\-]*$",
                               description="the ticket id returned by POST /tickets")]

ERRORS = errors.documented(
    (401, "no token, or an unknown or revoked one"), (403, "the role or the ticket does not allow it"),
    (404, "no such ticket"), (409, "not legal in the ticket's current state, or an Idempotency-Key reused"),
    (422, "malformed request; `field` names the culprit"), (503, "Temporal did not answer; retry"))


# --- helpers ------------------------------------------------------------------------

def _facts(state: TicketState) -> TicketFacts:
    return TicketFacts(assignee=state.assignee, supervisor=state.supervisor)




async def _claim(svc: Services, staff: Staff, key: str | None, path: str, body: Any) -> Claim | None:
    if key is None:
        return None
    try:
        return await svc.io(svc.keys.claim, staff.id, key, fingerprint("POST", path, body))
    except KeyReused:
        raise ApiError(409, "idempotency_key_reused",
                       "this Idempotency-Key was already used for a different request; use a new key",
                       "Idempotency-Key") from None


def _application_error(e: BaseException) -> ApplicationError | None:
    cause: BaseException | None = e
    while cause is not None and not isinstance(cause, ApplicationError):
        cause = getattr(cause, "cause", None) or cause.__cause__
    return cause


def _from_temporal(e: Exception, ticket_id: str) -> ApiError:
    """A refusal from the workflow (or Temporal) as the HTTP answer it stands for."""
    if isinstance(e, WorkflowUpdateFailedError):
        app_error = _application_error(e)
        if app_error is not None:
            details = app_error.details[0] if app_error.details and isinstance(app_error.details[0], dict) else {}
            if app_error.type == "IllegalStep":
                return ApiError(409, "illegal_step", app_error.message)
            if app_error.type == "InvalidStepData":
                return ApiError(422, "invalid", app_error.message, details.get("field"))
            if app_error.type == "UnknownStep":
                return not_found(app_error.message, "step")
            if app_error.type == "Conflict":
                return ApiError(409, "conflict", f"{app_error.message}; try again")
        return ApiError(503, "unavailable", f"the step on ticket {ticket_id} could not be recorded now; try again")
    if isinstance(e, RPCError) and e.status == RPCStatusCode.NOT_FOUND:
        return ApiError(409, "illegal_step", f"ticket {ticket_id} is closed: its workflow takes no more steps")
    if isinstance(e, WorkflowUpdateRPCTimeoutOrCancelledError):
        return ApiError(503, "unavailable", f"ticket {ticket_id}: no answer in time; retry with the same Idempotency-Key")
    return ApiError(503, "unavailable", f"Temporal is unavailable: {e}")


async def _history(svc: Services, ticket_id: str, staff: Staff) -> tuple[list[dict[str, Any]], int | None]:
    """The ticket's events, after checking the reader may see the ticket."""
    events, damaged = await svc.io(svc.store.read_history, "ticket", ticket_id)
    if not events and damaged is None:
        raise not_found(f"no ticket {ticket_id}")
    require(permissions.may_read(staff, _facts(replay(ticket_id, events))))
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
        return (value if value.tzinfo else value.replace(tzinfo=timezone.utc)).astimezone(timezone.utc)
    except (OverflowError, ValueError):
        raise ApiError(422, "invalid", f"{name}: out of range", name) from None


# --- the app --------------------------------------------------------------------------

def create_app(services: Services | None = None) -> FastAPI:
    """The API; without `services` it connects from the environment on startup."""

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        own = app.state.services is None
        if own:
            app.state.services = await Services.from_env()
            log.info("API on Temporal %s, task queue %s, event store %s", config.temporal_address(),
                     app.state.services.task_queue, config.store_kind())
        try:
            yield
        finally:
            if own:
                app.state.services.close()

    app = FastAPI(title="weibao", version="0.1.0", lifespan=lifespan,
                  generate_unique_id_function=lambda route: route.name,
                  description="Fault tickets (报障/维修派工单) for engineers, supervisors, clerks, managers and "
                              "auditors. Authenticate with `Authorization: Bearer <token>`; every 4xx answer is "
                              '`{"error", "detail", "field"}`.')
    app.state.services = services
    errors.install(app)
    from api import cases, reports  # they reach back to current_staff at request time

    app.include_router(cases.router)
    app.include_router(reports.router)

    @app.post("/tickets", status_code=201, response_model=TicketCreated, responses=ERRORS, tags=["tickets"])
    async def report_ticket(report: ReportTicket, staff: CurrentStaff, svc: Svc,
                            idempotency_key: IdempotencyKey = None) -> Any:
        """报障: an intake clerk registers a fault; answers once the report is recorded."""
        require(permissions.may_report(staff))
        claim = await _claim(svc, staff, idempotency_key, "/tickets", report.model_dump(mode="json"))
        if claim is not None and claim.status is not None:
            return JSONResponse(claim.response, status_code=claim.status)
        ticket_id = f"k{claim.token[:15]}" if claim else uuid.uuid4().hex[:16]
        op = WithStartWorkflowOperation(
            TicketWorkflow.run, StartTicket(ticket_id=ticket_id), id=ticket_workflow_id(ticket_id),
            task_queue=svc.task_queue, id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
            id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE)
        try:
            state = await svc.client.execute_update_with_start_workflow(
                TicketWorkflow.report, ReportCommand(actor=staff.id, report=report),
                start_workflow_operation=op, id="report")
        except WorkflowAlreadyStartedError:  # the key's ticket exists and its workflow has closed
            events, _ = await svc.io(svc.store.read_history, "ticket", ticket_id)
            state = replay(ticket_id, events)
        except (WorkflowUpdateFailedError, RPCError, WorkflowUpdateRPCTimeoutOrCancelledError) as e:
            if claim is not None:
                await svc.io(svc.keys.release, claim)
            raise _from_temporal(e, ticket_id) from None
        answer = {"ticket_id": ticket_id, "state": state.model_dump(mode="json")}
        if claim is not None:
            await svc.io(svc.keys.complete, claim, 201, answer)
        return JSONResponse(answer, status_code=201)

    async def take_step(svc: Services, staff: Staff, ticket_id: str, step: str, data: dict[str, Any],
                        key: str | None) -> Any:
        claim = await _claim(svc, staff, key, f"/tickets/{ticket_id}/steps/{step}", data)
        if claim is not None and claim.status is not None:
            return JSONResponse(claim.response, status_code=claim.status)
        try:
            current = await svc.io(_current, svc.store, ticket_id)
            if current is None:
                raise not_found(f"no ticket {ticket_id}")
            require(permissions.may_step(svc.org, staff, step, _facts(current), data))
            handle = svc.client.get_workflow_handle(ticket_workflow_id(ticket_id))
            try:
                state = await handle.execute_update(
                    TicketWorkflow.step, StepCommand(step=step, actor=staff.id, data=data),
                    id=f"idem-{claim.token}" if claim else None)
            except (WorkflowUpdateFailedError, RPCError, WorkflowUpdateRPCTimeoutOrCancelledError) as e:
                raise _from_temporal(e, ticket_id) from None
        except ApiError:
            if claim is not None:
                await svc.io(svc.keys.release, claim)
            raise
        answer = state.model_dump(mode="json")
        if claim is not None:
            await svc.io(svc.keys.complete, claim, 200, answer)
        return JSONResponse(answer)

    def add_step_route(step: str, model: type[BaseModel]) -> None:
        async def step_route(ticket_id: TicketId, staff: CurrentStaff, svc: Svc, data: model,  # type: ignore[valid-type]
                             idempotency_key: IdempotencyKey = None) -> Any:
            return await take_step(svc, staff, ticket_id, step, data.model_dump(mode="json"), idempotency_key)

        step_route.__doc__ = (model.__doc__ or step).strip()
        app.post(f"/tickets/{{ticket_id}}/steps/{step}", response_model=TicketState, responses=ERRORS,
                 tags=["steps"], name=f"step_{step.replace('-', '_')}", summary=f"step: {step}")(step_route)

    for step_name, (_, step_model) in STEPS.items():
        add_step_route(step_name, step_model)

    @app.get("/tickets/{ticket_id}", response_model=TicketState, responses=ERRORS, tags=["tickets"])
    async def get_ticket(
        ticket_id: TicketId, staff: CurrentStaff, svc: Svc,
        as_of: Annotated[datetime | None, Query(description="ISO-8601 business time; the state as it stood then")] = None,
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
                state = replay(ticket_id, events)
            require(permissions.may_read(staff, _facts(state)))
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
            state = replay(ticket_id, events, version=version, as_of=as_of)
        return permissions.mask(staff, state.model_dump(mode="json"))

    @app.get("/tickets/{ticket_id}/history", response_model=History, responses=ERRORS, tags=["tickets"])
    async def get_history(ticket_id: TicketId, staff: CurrentStaff, svc: Svc) -> Any:
        """The recorded domain events in order, with business time `at` and recording time."""
        events, damaged = await _history(svc, ticket_id, staff)
        _undamaged(ticket_id, damaged)
        linked = await svc.io(fill_case_ids, svc.store, await run_in_threadpool(svc.linked_cases, ticket_id))
        return {"ticket_id": ticket_id, "events": [
            HistoryEvent(**{**e, "data": permissions.mask(staff, e["data"])}) for e in events],
            "linked_cases": linked}

    @app.get("/tickets/{ticket_id}/verify", response_model=Verification, responses=ERRORS, tags=["tickets"])
    async def verify(ticket_id: TicketId, staff: CurrentStaff, svc: Svc) -> Any:
        """Tamper evidence: recompute the per-ticket hash chain; answers intact, or the
        first version that does not match (and notices events missing at the end)."""
        events, damaged = await _history(svc, ticket_id, staff)
        bad = chain.verify(events)
        if damaged is not None and (bad is None or damaged < bad):
            bad = damaged
        stored = len(events) + (0 if damaged is None else 1)
        if bad is None:
            expected = await _recorded_versions(svc, ticket_id)
            if expected is not None and expected > stored:
                bad = stored + 1
                return Verification(ticket_id=ticket_id, intact=False, versions=stored, first_bad_version=bad,
                                    detail=f"the workflow recorded {expected} events; versions {bad}..{expected} "
                                           "are missing from the store")
        return Verification(
            ticket_id=ticket_id, intact=bad is None, versions=stored, first_bad_version=bad,
            detail="intact: every event's hash and link match" if bad is None else
            f"version {bad} does not match its recorded hash or its predecessor's")

    @app.get("/tickets", response_model=TicketPage, responses=ERRORS, tags=["tickets"])
    async def list_tickets(
        staff: CurrentStaff, svc: Svc,
        status: Literal[STATUSES] | None = None,  # type: ignore[valid-type]
        assignee: Annotated[str | None, Query(min_length=1, max_length=64)] = None,
        breached: bool | None = None,
        limit: Annotated[int, Query(ge=1, le=200)] = 50,
        offset: Annotated[int, Query(ge=0, le=1_000_000)] = 0,
    ) -> Any:
        """EventStore, newest report first; engineers see their own."""
        decision, assignee = permissions.list_filter(staff, assignee)
        require(decision)
        rows = await run_in_threadpool(svc.list_tickets, status, assignee, breached, limit + 1, offset)
        return {"items": rows[:limit], "limit": limit, "offset": offset,
                "next_offset": offset + limit if len(rows) > limit else None}

    return app


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


async def _recorded_versions(svc: Services, ticket_id: str) -> int | None:
    """How many events the ticket's workflow says it recorded (None if it cannot say now)."""
    try:
        state = await svc.client.get_workflow_handle(ticket_workflow_id(ticket_id)).query(
            TicketWorkflow.current, rpc_timeout=timedelta(seconds=2))
    except Exception:  # noqa: BLE001 - the chain check stands on its own
        return None
    return state.version
