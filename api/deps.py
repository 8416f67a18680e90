"""What every route of the API depends on, in one place: the process's `Services`
(Temporal client, event store, org, tokens, idempotency keys, task queue, read models),
the caller authenticated by bearer token (`CurrentStaff`), the read models
(`ReadModelsDep`), the request's own form (`WELL_FORMED`: known query parameters without
control characters, a JSON body sent as JSON), the answer a Temporal refusal stands for,
and the Idempotency-Key round trip shared by the ticket and case routes.

The route modules (api.tickets, api.cases, api.reports) import this; api.app assembles
them. Nothing here decides who may do what: that is domain.permissions."""
from __future__ import annotations

import email.message
import logging
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Annotated, Any, Awaitable, Callable

from fastapi import Depends, Request, params
from fastapi.concurrency import run_in_threadpool
from fastapi.dependencies.models import Dependant
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from temporalio.client import Client, WorkflowUpdateFailedError, WorkflowUpdateRPCTimeoutOrCancelledError
from temporalio.exceptions import ApplicationError
from temporalio.service import RPCError, RPCStatusCode

from activities import config
from activities.store import EventStore, open_store
from activities.temporal import connect
from api.auth import Tokens
from api.db import Database
from api.errors import ApiError, not_found, unauthorized
from api.idempotency import IdempotencyKeys, KeyReused, fingerprint
from domain.org import Org, Staff
from domain.text import refuse_control
from projections.runner import ReadModels

log = logging.getLogger("weibao.api")

# --- the process's services ---------------------------------------------------------------

async def wall_clock() -> datetime:
    return datetime.now(timezone.utc)



@dataclass
class Services:
    client: Client
    store: EventStore  # the event store of every case kind
    org: Org
    tokens: Tokens
    keys: IdempotencyKeys
    task_queue: str
    # the read models `python -m projections` keeps (GET /tickets, a history's linked
    # cases, the reports): eventually consistent; opened once per process
    read_models: ReadModels | None = None
    closers: list[Callable[[], None]] = field(default_factory=list)
    # SQLite reads are local and short: run them on the event loop rather than pay two
    # thread switches a request; PostgreSQL's go to the thread pool
    inline_io: bool = False
    # what the API checks against today's date before it starts a workflow (tests set the
    # time-skipping server's clock, which the workflows read)
    clock: Callable[[], Awaitable[datetime]] = wall_clock

    async def io(self, fn: Callable[..., Any], *args: Any) -> Any:
        return fn(*args) if self.inline_io else await run_in_threadpool(fn, *args)

    @classmethod
    def build(cls, client: Client, store: EventStore, org: Org, task_queue: str | None = None,
              db: Database | None = None, read_models: ReadModels | None = None) -> "Services":
        """Services over parts the caller owns (`store`, and `db` and `read_models` when
        given); what is opened here is closed by `close`."""
        own_db = db is None
        db = db or Database()
        return cls(client=client, store=store, org=org, tokens=Tokens(db), keys=IdempotencyKeys(db, cases=store),
                   task_queue=task_queue or config.task_queue(), read_models=read_models,
                   closers=[db.close] if own_db else [], inline_io=db.kind == "sqlite")

    @classmethod
    async def from_env(cls) -> "Services":
        """The configured services, opened at the app's start and closed at its end."""
        store, models = open_store(), ReadModels()
        try:
            svc = cls.build(await connect(), store, config.load_org(), read_models=models)
        except BaseException:
            models.close()
            store.close()
            raise
        svc.closers += [models.close, store.close]
        return svc

    def close(self) -> None:
        for close in self.closers:
            close()


async def get_services(request: Request) -> Services:
    return request.app.state.services


Svc = Annotated[Services, Depends(get_services)]


async def get_read_models(svc: Svc) -> ReadModels:
    """The process's read models (tests override this to catch them up first)."""
    if svc.read_models is None:
        raise ApiError(503, "unavailable", "the read models are not open in this process")
    return svc.read_models


ReadModelsDep = Annotated[ReadModels, Depends(get_read_models)]

# --- the request's form ------------------------------------------------------------------------

def _query_names(dependant: Dependant) -> set[str]:
    names = {p.alias for p in dependant.query_params}
    for sub in dependant.dependencies:
        names |= _query_names(sub)
    return names


def declared_query(route: APIRoute) -> set[str]:
    """The query parameters a route takes, its dependencies' included (a walk over a few
    fields: cheaper than a cache, and routes are not hashable)."""
    return _query_names(route.dependant)


def _is_json(content_type: str | None) -> bool:
    if not content_type:
        return False
    message = email.message.Message()
    message["content-type"] = content_type
    subtype = message.get_content_subtype()
    return message.get_content_maintype() == "application" and (subtype == "json" or subtype.endswith("+json"))


async def well_formed(request: Request) -> None:
    """Before anything else of a request is used: each query parameter is one the route
    takes (a misspelt filter must not silently list everything) and holds no control
    character; a JSON body is sent as JSON (a form stays a form). All query problems are
    answered in one 422."""
    route = request.scope.get("route")
    if isinstance(route, APIRoute) and not route.include_in_schema:
        return  # a page for a browser (an acknowledgement link), whose URL a chat app may decorate
    known = declared_query(route) if isinstance(route, APIRoute) else None
    problems: list[dict[str, Any]] = []
    for name, value in request.query_params.multi_items():
        if known is not None and name not in known:
            takes = f"it takes {', '.join(sorted(known))}" if known else "it takes none"
            problems.append({"type": "unknown_parameter", "loc": ("query", name), "input": value,
                             "msg": f"unknown parameter; {takes}"})
            continue
        try:
            refuse_control(value)
        except ValueError as e:
            problems.append({"type": "control_character", "loc": ("query", name), "input": value, "msg": str(e)})
    if problems:
        raise RequestValidationError(problems)
    if isinstance(route, APIRoute) and route.body_field is not None \
            and not isinstance(route.body_field.field_info, params.Form) and await request.body() \
            and not _is_json(request.headers.get("content-type")):
        raise ApiError(415, "unsupported_media_type", "the body must be JSON, sent with "
                                                      "'Content-Type: application/json'", "Content-Type")


WELL_FORMED = [Depends(well_formed)]  # every router's dependencies

# --- the caller ---------------------------------------------------------------------------------

bearer = HTTPBearer(auto_error=False, description="a token printed by `weibao token STAFF_ID`")


async def current_staff(request: Request, svc: Svc,
                        creds: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)]) -> Staff:
    """The caller, by bearer token; 401 without a live token of someone on the staff."""
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

# --- Temporal's answers as HTTP ----------------------------------------------------------------

TEMPORAL_ERRORS = (WorkflowUpdateFailedError, RPCError, WorkflowUpdateRPCTimeoutOrCancelledError)


def _application_error(e: BaseException) -> ApplicationError | None:
    cause: BaseException | None = e
    while cause is not None and not isinstance(cause, ApplicationError):
        cause = getattr(cause, "cause", None) or cause.__cause__
    return cause


def from_temporal(e: Exception, what: str) -> ApiError:
    """A refusal from a case's workflow (or Temporal) as the HTTP answer it stands for;
    `what` names the case ("ticket t-1", "complaint c-2")."""
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
            if app_error.type in ("Conflict", "NoDepartment"):
                return ApiError(409, "conflict", f"{app_error.message}; try again" if app_error.type == "Conflict"
                                else app_error.message)
        return ApiError(503, "unavailable", f"{what}: the step could not be recorded now; try again")
    if isinstance(e, RPCError) and e.status == RPCStatusCode.NOT_FOUND:
        return ApiError(409, "illegal_step", f"{what} is finished: its workflow takes no more steps")
    if isinstance(e, WorkflowUpdateRPCTimeoutOrCancelledError):
        return ApiError(503, "unavailable", f"{what}: no answer in time; retry with the same Idempotency-Key")
    return ApiError(503, "unavailable", f"Temporal is unavailable: {e}")


# --- Idempotency-Key (see api.idempotency) -------------------------------------------------------

async def idempotent(svc: Services, staff: Staff, key: str | None, path: str, body: Any, status: int,
                     run: Callable[[str | None], Awaitable[Any]]) -> JSONResponse:
    """Answer `run(token)` once per Idempotency-Key (token None without a key): a repeat
    gets the first answer; a refusal (an ApiError) releases the key for a corrected
    request. The token is derived from the key, for a workflow id or an Update id."""
    claim = None
    if key is not None:
        try:
            claim = await svc.io(svc.keys.claim, staff.id, key, fingerprint("POST", path, body))
        except KeyReused:
            raise ApiError(409, "idempotency_key_reused", "this Idempotency-Key was already used for a different "
                                                          "request; use a new key", "Idempotency-Key") from None
        if claim.status is not None:
            return JSONResponse(claim.response, status_code=claim.status)
    try:
        answer = await run(claim.token if claim else None)
    except ApiError:
        if claim is not None:
            try:
                await svc.io(svc.keys.release, claim)
            except Exception:  # noqa: BLE001 - the refusal is the answer; the key stays claimed
                log.exception("%s %s: a refused request's Idempotency-Key could not be released", staff.id, path)
        raise
    if claim is not None:
        try:
            await svc.io(svc.keys.complete, claim, status, answer)
        except Exception:  # noqa: BLE001 - the fact is durable: its answer stands
            # a repeat finds the key unfinished and asks again; the derived ids answer it the same
            log.exception("%s %s: the answer could not be kept with its Idempotency-Key", staff.id, path)
    return JSONResponse(answer, status_code=status)
