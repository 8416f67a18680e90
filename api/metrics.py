"""The API's own metrics and each request's identity in the logs: requests by route,
method and status with their latency (Prometheus, `GET /metrics`), and a request id
(`X-Request-ID`, taken from the caller when it is a sane one, else made here; echoed in
the answer) with the case the request is about on every log line it causes."""
from __future__ import annotations

import re
import time
import uuid
from typing import Any

from fastapi import Request, Response
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, Counter, Histogram, generate_latest

from activities import logs

REQUESTS = Counter("weibao_http_requests", "HTTP requests answered, by route (its template), method and status",
                   ["route", "method", "status"])
LATENCY = Histogram("weibao_http_request_duration_seconds", "Time to answer an HTTP request, by route and method",
                    ["route", "method"],
                    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0))
UNMATCHED = "unmatched"  # a path no route takes: one label, however many such paths are tried
REQUEST_ID = re.compile(r"[A-Za-z0-9._:-]{1,64}")


class Observed:
    """Plain ASGI middleware (cheaper than BaseHTTPMiddleware): times each request, counts
    it by the route that took it, and sets its request id for the logs."""

    def __init__(self, app: Any):
        self.app = app

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        given = next((v for k, v in scope["headers"] if k == b"x-request-id"), b"").decode("latin-1")
        request_id = given if REQUEST_ID.fullmatch(given) else uuid.uuid4().hex
        token = logs.begin(request_id)
        status = 500
        started = time.perf_counter()

        async def answer(message: dict) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message["headers"] = [*message.get("headers", ()), (b"x-request-id", request_id.encode())]
                bind_case_of(scope)  # for the access log, which uvicorn writes as the answer starts
            await send(message)

        try:
            await self.app(scope, receive, answer)
        finally:
            route = getattr(scope.get("route"), "path", None) or UNMATCHED
            method = scope["method"]
            REQUESTS.labels(route, method, str(status)).inc()
            LATENCY.labels(route, method).observe(time.perf_counter() - started)
            logs.end(token)


def bind_case_of(scope: dict) -> None:
    params = scope.get("path_params")
    if params and not logs.current().get("case_id"):
        case = logs.case_of_path(scope.get("path", ""), params)
        if case:
            logs.bind(case_id=case)


async def bind_case(request: Request) -> None:
    """A dependency of every route: the lines a request logs name its case from here on."""
    bind_case_of(request.scope)


async def metrics() -> Response:
    return Response(generate_latest(REGISTRY), media_type=CONTENT_TYPE_LATEST)
