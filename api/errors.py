"""Every 4xx answer is JSON {"error", "detail", "field"}; refusals are logged."""
from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from starlette.exceptions import HTTPException as StarletteHTTPException

from domain.permissions import Decision

log = logging.getLogger("weibao.api")


class ErrorBody(BaseModel):
    error: str
    detail: str
    field: str | None = None


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


def body(error: str, detail: str, field: str | None = None) -> dict[str, Any]:
    return {"error": error, "detail": detail, "field": field}


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


def _validation_detail(err: dict[str, Any]) -> str:
    field = _field(err.get("loc", ()))
    msg = str(err.get("msg", "invalid"))
    if err.get("type") == "missing" and field == "body":
        return "a JSON body is required"
    if err.get("type") == "json_invalid":
        return f"the body is not valid JSON: {err.get('ctx', {}).get('error', msg)}"
    return f"{field}: {msg}" if field else msg


def install(app: FastAPI) -> None:
    @app.exception_handler(ApiError)
    async def _api_error(request: Request, exc: ApiError) -> JSONResponse:
        if exc.status in (401, 403):
            who = getattr(request.state, "staff_id", None) or "anonymous"
            log.warning("refused %s %s for %s: %s %s", request.method, request.url.path, who, exc.status, exc.detail)
        return JSONResponse(body(exc.error, exc.detail, exc.field), status_code=exc.status, headers=exc.headers)

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = exc.errors()
        first = errors[0] if errors else {}
        field = "body" if first.get("type") == "json_invalid" else _field(first.get("loc", ()))
        return JSONResponse(body("invalid", _validation_detail(first), field),
                            status_code=422)

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.error("%s %s failed", request.method, request.url.path, exc_info=exc)
        return JSONResponse(body("internal", "the server failed to answer; a retry with the same "
                                             "Idempotency-Key is safe"), status_code=500)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        detail = exc.detail if isinstance(exc.detail, str) else str(exc.detail)
        if exc.status_code == 404 and detail == "Not Found":
            detail = f"no such resource: {request.method} {request.url.path}"
        return JSONResponse(body(_STATUS_ERRORS.get(exc.status_code, "error"), detail),
                            status_code=exc.status_code, headers=getattr(exc, "headers", None))
