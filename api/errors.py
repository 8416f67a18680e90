"""Every 4xx answer is JSON {"error", "detail", "field"} (a 422 adds "errors": each
field's problem, the first being `field`); refusals are logged. Anything unexpected is a
500 in the same shape that keeps the connection open (`AnswerUnexpected`)."""
from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from domain.permissions import Decision

log = logging.getLogger("weibao.api")


class FieldError(BaseModel):
    field: str | None
    detail: str


class ErrorBody(BaseModel):
    error: str
    detail: str
    field: str | None = None
    errors: list[FieldError] | None = Field(
        default=None, description="a 422's every problem, each naming its field; the first is `field`")


class ApiError(Exception):
    def __init__(self, status: int, error: str, detail: str, field: str | None = None,
                 headers: dict[str, str] | None = None):
        super().__init__(detail)
        self.status, self.error, self.detail, self.field, self.headers = status, error, detail, field, headers


def unauthorized(detail: str) -> ApiError:
    return ApiError(401, "unauthorized", detail, headers={"WWW-Authenticate": "Bearer"})


def forbidden(detail: str, field: str | None = None) -> ApiError:
    return ApiError(403, "forbidden", detail, field)


def not_found(detail: str, field: str | None = None) -> ApiError:
    return ApiError(404, "not_found", detail, field)


def require(decision: Decision) -> None:
    """Go on if domain.permissions allowed it; else 422 for bad data it names, or 403."""
    if decision:
        return
    if decision.invalid:
        raise ApiError(422, "invalid", f"{decision.field}: {decision.reason}", decision.field)
    raise forbidden(decision.reason, decision.field)


def documented(*answers: tuple[int, str]) -> dict[int | str, dict[str, Any]]:
    """The error answers of a route, for the OpenAPI document: (status, description)..."""
    return {code: {"model": ErrorBody, "description": text} for code, text in answers}


def body(error: str, detail: str, field: str | None = None,
         errors: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    answer = {"error": error, "detail": detail, "field": field}
    if errors is not None:
        answer["errors"] = errors
    return answer


_STATUS_ERRORS = {400: "bad_request", 401: "unauthorized", 403: "forbidden", 404: "not_found",
                  405: "method_not_allowed", 406: "not_acceptable", 409: "conflict", 413: "too_large",
                  415: "unsupported_media_type", 422: "invalid", 429: "too_many_requests"}


def _field(loc: tuple | list) -> str | None:
    parts = [str(p) for p in loc]
    if parts and parts[0] in ("body", "query", "path", "header"):
        kind, parts = parts[0], parts[1:]
        if not parts:
            return kind
    return ".".join(parts) or None


def _validation_field(err: dict[str, Any]) -> str | None:
    return "body" if err.get("type") == "json_invalid" else _field(err.get("loc", ()))


def _validation_detail(err: dict[str, Any]) -> str:
    field = _field(err.get("loc", ()))
    msg = str(err.get("msg", "invalid")).removeprefix("Value error, ")
    if err.get("type") == "missing" and field == "body":
        return "a JSON body is required"
    if err.get("type") == "json_invalid":
        return f"the body is not valid JSON: {err.get('ctx', {}).get('error', msg)}"
    if err.get("type") == "model_attributes_type" and field == "body":
        return "the body must be a JSON object"
    if err.get("type") == "timezone_aware":
        msg = "an instant needs its zone: end it with Z (UTC) or an offset such as +08:00 (China)"
    return f"{field}: {msg}" if field else msg


def _unexpected_answer() -> JSONResponse:
    return JSONResponse(body("internal", "the server failed to answer; a retry with the same "
                                         "Idempotency-Key is safe"), status_code=500)


class AnswerUnexpected:
    """The outermost of the app's middleware: an exception no handler answered is logged
    and answered 500 in the error shape, and goes no further. Raised on, the server would
    drop the connection (uvicorn closes it when the app raises after answering, which is
    what Starlette's own last-resort handler does), and the client's next request on it
    would meet a reset."""

    def __init__(self, app: ASGIApp):
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def sending(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, receive, sending)
        except Exception as exc:  # noqa: BLE001 - the last resort
            log.error("%s %s failed", scope.get("method"), scope.get("path"), exc_info=exc)
            if started:
                raise  # half an answer is out: only closing the connection ends it
            await _unexpected_answer()(scope, receive, send)


def install(app: FastAPI) -> None:
    @app.exception_handler(ApiError)
    async def _api_error(request: Request, exc: ApiError) -> JSONResponse:
        if exc.status in (401, 403):
            who = getattr(request.state, "staff_id", None) or "anonymous"
            log.warning("refused %s %s for %s: %s %s", request.method, request.url.path, who, exc.status, exc.detail)
        each = [{"field": exc.field, "detail": exc.detail}] if exc.status == 422 else None
        return JSONResponse(body(exc.error, exc.detail, exc.field, each), status_code=exc.status,
                            headers=exc.headers)

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        each = [{"field": _validation_field(e), "detail": _validation_detail(e)} for e in exc.errors()]
        first = each[0] if each else {"field": None, "detail": "invalid request"}
        return JSONResponse(body("invalid", first["detail"], first["field"], each), status_code=422)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        detail = exc.detail if isinstance(exc.detail, str) else str(exc.detail)
        if exc.status_code == 404 and detail == "Not Found":
            detail = f"no such resource: {request.method} {request.url.path}"
        return JSONResponse(body(_STATUS_ERRORS.get(exc.status_code, "error"), detail,
                                 "body" if exc.status_code == 413 else None),
                            status_code=exc.status_code, headers=getattr(exc, "headers", None))

    app.add_middleware(AnswerUnexpected)
