"""Log lines of every weibao process: JSON lines (python-json-logger) when stderr is not a
terminal — a container, systemd's journal, a file — and readable text on a terminal
(`WEIBAO_LOG_FORMAT`: auto, json or text). Every line carries the case it is about
(`case_id`, the case's workflow id such as `ticket-T1`) and the HTTP request it serves
(`request_id`, from the `X-Request-ID` header or made by the API) where there is one, and
with tracing on the `trace_id` that joins the API's lines to the worker's.

Everything logs through the standard library (weibao, uvicorn, the Temporal SDK, its Rust
core forwarded), so one handler on the root logger formats every line."""
from __future__ import annotations

import contextvars
import logging
import sys
from typing import Any, TextIO

from pythonjsonlogger.json import JsonFormatter

# The request being served (set by the API's middleware; a dict, so a route's dependency can
# add the case once the path is matched and every later line of the request sees it).
_context: contextvars.ContextVar[dict[str, str] | None] = contextvars.ContextVar("weibao_log_context", default=None)

CASE_PREFIXES = {"tickets": "ticket", "complaints": "complaint", "returns": "return", "inspections": "inspection",
                 "plans": "plan"}


def begin(request_id: str) -> contextvars.Token:
    """The lines logged from here on in this context belong to request `request_id`."""
    return _context.set({"request_id": request_id})


def end(token: contextvars.Token) -> None:
    _context.reset(token)


def bind(**values: str) -> None:
    """Add to the current request's context (the case, once the route is known)."""
    ctx = _context.get()
    if ctx is not None:
        ctx.update(values)


def current() -> dict[str, str]:
    return dict(_context.get() or {})


def case_of_path(path: str, params: dict[str, Any]) -> str | None:
    """The case a request is about, as its workflow id (`ticket-T1`), from its path parameters."""
    if "ticket_id" in params:
        return f"ticket-{params['ticket_id']}"
    if "case_id" in params:
        kind = params.get("kind") or CASE_PREFIXES.get(path.strip("/").split("/", 1)[0])
        return f"{kind}-{params['case_id']}" if kind else str(params["case_id"])
    if "contract_id" in params:
        return f"plan-{params['contract_id']}"
    return None


def _temporal_case(record: logging.LogRecord) -> str | None:
    """The workflow id of the Temporal workflow or activity that logged `record`."""
    for attr in ("temporal_workflow", "temporal_activity"):
        info = getattr(record, attr, None)
        if isinstance(info, dict) and info.get("workflow_id"):
            return info["workflow_id"]
    try:
        from temporalio import activity
        if activity.in_activity():
            return activity.info().workflow_id
    except Exception:  # noqa: BLE001 - a log line never fails for want of its case
        pass
    return None


class ContextFilter(logging.Filter):
    """Puts `request_id`, `case_id` and `trace_id` on each record that has one."""

    def filter(self, record: logging.LogRecord) -> bool:
        ctx = _context.get()
        if ctx:
            for key, value in ctx.items():
                if not hasattr(record, key):
                    setattr(record, key, value)
        if not getattr(record, "case_id", None):
            case = _temporal_case(record)
            if case:
                record.case_id = case
        from activities import telemetry
        if telemetry.tracing_enabled() and not hasattr(record, "trace_id"):
            from opentelemetry import trace
            context = trace.get_current_span().get_span_context()
            if context.is_valid:
                record.trace_id = format(context.trace_id, "032x")
        return True


class TextFormatter(logging.Formatter):
    """Readable lines for a terminal, with the request and case at the end."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(name)s[%(process)d] %(levelname)s %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        tags = [f"{k}={getattr(record, k)}" for k in ("case_id", "request_id") if getattr(record, k, None)]
        return f"{line} [{' '.join(tags)}]" if tags else line


class _Json(JsonFormatter):
    def process_log_record(self, log_data: dict[str, Any]) -> dict[str, Any]:
        log_data.pop("color_message", None)  # uvicorn's copy of the message with terminal colours
        return log_data


def json_formatter() -> logging.Formatter:
    return _Json("{levelname}{name}{process}{message}", style="{", timestamp="time",
                         rename_fields={"levelname": "level", "name": "logger"}, json_ensure_ascii=False)


def wants_json(fmt: str, stream: TextIO) -> bool:
    if fmt == "auto":
        isatty = getattr(stream, "isatty", None)
        return not (isatty and isatty())
    return fmt == "json"


def setup(level: str | None = None, fmt: str | None = None, stream: TextIO | None = None) -> logging.Handler:
    """One handler on the root logger for every line of the process (`WEIBAO_LOG_LEVEL`,
    `WEIBAO_LOG_FORMAT` unless given); returns it."""
    from activities import config

    settings = config.settings()
    stream = stream or sys.stderr
    handler = logging.StreamHandler(stream)
    handler.addFilter(ContextFilter())
    handler.setFormatter(json_formatter() if wants_json(fmt or settings.log_format, stream) else TextFormatter())
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level or settings.log_level)
    return handler
