"""Read-only reports over the read models (考核, §九.A.2, §十一): for managers, company
leadership and auditors. JSON by default, `?format=csv` for a spreadsheet. Every row
carries `events`: the ticket ids and versions it was computed from, which
GET /tickets/{id}/history shows. Read models are eventually consistent: `position` says
up to which event of the store the answer is computed.

    GET /reports/engineers?month=YYYY-MM
    GET /reports/departments?month=YYYY-MM
    GET /reports/sla?month=YYYY-MM[&customer=...]
    GET /reports/escalations?from=YYYY-MM-DD&to=YYYY-MM-DD   (days in China Standard Time, both included)
    GET /reports/candidates?month=YYYY-MM
    GET /knowledge?q=words                                     (the fault register / problem library)
"""
from __future__ import annotations

import csv
import io
import json
import re
from datetime import datetime, timedelta, timezone
from typing import Annotated, Any, Callable

from fastapi import APIRouter, Depends, Query
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse, Response

from api.deps import WELL_FORMED, CurrentStaff, ReadModelsDep
from api.errors import ApiError, require
from domain import permissions
from domain.org import Staff
from domain.policy import CST
from projections import candidates, departments, escalations, faults, scorecard, sla_compliance
from projections.base import ReadModelView
from projections.runner import UPSTREAM

router = APIRouter(tags=["reports"], dependencies=WELL_FORMED)  # unknown parameters: 422


async def reports_reader(staff: CurrentStaff) -> Staff:
    """The caller of a report, authenticated by bearer token: a manager, company
    leadership or an auditor (domain.permissions.may_read_reports)."""
    require(permissions.may_read_reports(staff))
    return staff


Reader = Annotated[Staff, Depends(reports_reader)]
Models = ReadModelsDep
RESPONSES: dict[int | str, dict[str, Any]] = {
    401: {"description": "no token, or an unknown or revoked one"},
    403: {"description": "only managers, leadership and auditors read reports"},
    422: {"description": 'a malformed parameter: {"error", "detail", "field"}'},
}


# --- parameters ------------------------------------------------------------------------

def invalid(field: str, detail: str) -> ApiError:
    return ApiError(422, "invalid", f"{field}: {detail}", field)


def _month(value: str | None) -> str:
    if value is None:
        raise invalid("month", "required, as YYYY-MM (China Standard Time)")
    if not re.fullmatch(r"\d{4}-(0[1-9]|1[0-2])", value):
        raise invalid("month", f"{value!r} is not a month as YYYY-MM")
    return value


def _format(value: str | None) -> str:
    value = value or "json"
    if value not in ("json", "csv"):
        raise invalid("format", f"{value!r} is not one of json, csv")
    return value


def _instant(field: str, value: str | None, end_of_day: bool) -> str | None:
    """A bound of the escalation log as ISO text in UTC. A date is a day in China
    Standard Time (`to` includes it); a time must carry its zone. A bound beyond the
    calendar's ends is the end itself, so the whole calendar is a valid range."""
    if value is None:
        return None
    try:
        at = datetime.fromisoformat(value)
    except ValueError:
        raise invalid(field, f"{value!r} is not a date (YYYY-MM-DD) or an ISO-8601 time") from None
    if re.fullmatch(r"\d{4}-\d{2}-\d{2}", value):
        at = at.replace(tzinfo=CST)
        if end_of_day:
            try:
                at += timedelta(days=1)
            except OverflowError:
                return _edge(at)
    elif at.tzinfo is None:
        raise invalid(field, f"{value!r} has no zone: end it with Z (UTC) or an offset such as +08:00 (China)")
    try:
        return at.astimezone(timezone.utc).isoformat(timespec="microseconds")
    except OverflowError:
        return _edge(at)


def _edge(at: datetime) -> str:
    """The first or the last representable instant, whichever `at` is beyond."""
    edge = datetime.max if at.year == datetime.max.year else datetime.min
    return edge.replace(tzinfo=timezone.utc).isoformat(timespec="microseconds")


def _text(field: str, value: str | None, longest: int = 200) -> str | None:
    if value is not None and (not value.strip() or len(value) > longest):
        raise invalid(field, f"must be 1 to {longest} characters")
    return value.strip() if value is not None else None


def _int(field: str, value: str | None, default: int, low: int, high: int) -> int:
    if value is None:
        return default
    try:
        n = int(value)
    except ValueError:
        raise invalid(field, f"{value!r} is not a whole number") from None
    if not low <= n <= high:
        raise invalid(field, f"must be between {low} and {high}")
    return n


# --- answers ---------------------------------------------------------------------------

def _refs_text(refs: list[dict[str, Any]]) -> str:
    """'T1@2,3; complaint:c1@4': a ticket by its id, another case kind's as kind:id."""
    def case(r: dict[str, Any]) -> str:
        key = next(k for k in r if k.endswith("_id"))  # ticket_id, complaint_id, return_id, inspection_id
        return r[key] if key == "ticket_id" else f"{key[:-3]}:{r[key]}"
    return "; ".join(f"{case(r)}@{','.join(str(v) for v in r['versions'])}" for r in refs)


def _cell(key: str, value: Any) -> Any:
    if key == "events" and isinstance(value, list):
        return _refs_text(value)
    if isinstance(value, (list, dict)):
        return json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    return value


def to_csv(rows: list[dict[str, Any]]) -> str:
    """Rows as CSV; nested figures as compact JSON, event references as
    'ticket@v1,v2; ...'. A BOM lets spreadsheet programs read the Chinese text."""
    out = io.StringIO()
    columns: list[str] = []
    for row in rows:
        columns += [k for k in row if k not in columns]
    writer = csv.DictWriter(out, fieldnames=columns, extrasaction="ignore")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: _cell(k, v) for k, v in row.items()})
    return "\ufeff" + out.getvalue()


async def answer(name: str, fmt: str, view: ReadModelView, query: Callable[[], list[dict[str, Any]]],
                 **params: Any) -> Response:
    rows = await run_in_threadpool(query)
    if fmt == "csv":
        stem = "-".join([name, *(str(v) for v in params.values() if v)])
        return Response(to_csv(rows), media_type="text/csv; charset=utf-8",
                        headers={"Content-Disposition": f'attachment; filename="{stem}.csv"'})
    position = await run_in_threadpool(view.max_tracking_id, UPSTREAM)
    return JSONResponse({"report": name, **params, "position": position or 0, "count": len(rows), "rows": rows})


# --- routes ----------------------------------------------------------------------------

@router.get("/reports/engineers", responses=RESPONSES)
async def engineer_report(staff: Reader, models: Models, month: str | None = None,
                          format: str | None = None) -> Response:
    """Engineer scorecard per engineer for a month: tickets handled, on-time shares,
    median and p90 hours to arrive and resolve, breaches, escalations caused,
    satisfaction and the supervisor's ratings."""
    m, fmt = _month(month), _format(format)
    view = models.view(scorecard.EngineerScorecard.name)
    return await answer("engineers", fmt, view, lambda: scorecard.engineer_scorecard(view, m), month=m)


@router.get("/reports/departments", responses=RESPONSES)
async def department_report(staff: Reader, models: Models, month: str | None = None,
                            format: str | None = None) -> Response:
    """Breaches and escalations attributed to each department in a month, with the people involved."""
    m, fmt = _month(month), _format(format)
    view = models.view(departments.DepartmentAccountability.name)
    return await answer("departments", fmt, view, lambda: departments.department_accountability(view, m), month=m)


@router.get("/reports/sla", responses=RESPONSES)
async def sla_report(staff: Reader, models: Models, month: str | None = None,
                     customer: str | None = None, format: str | None = None) -> Response:
    """SLA compliance per customer for tickets reported in a month: by severity, zone
    and window, met, missed and open."""
    m, fmt, cust = _month(month), _format(format), _text("customer", customer)
    view = models.view(sla_compliance.SlaCompliance.name)
    return await answer("sla", fmt, view, lambda: sla_compliance.sla_compliance(view, m, cust), month=m,
                        customer=cust)


@router.get("/reports/escalations", responses=RESPONSES)
async def escalation_report(staff: Reader, models: Models,
                            from_: Annotated[str | None, Query(alias="from")] = None, to: str | None = None,
                            format: str | None = None) -> Response:
    """Every warning and escalation from `from` to `to` (dates in China Standard Time,
    both days included; or ISO-8601 times, `to` excluded)."""
    fmt = _format(format)
    start, end = _instant("from", from_, end_of_day=False), _instant("to", to, end_of_day=True)
    if start and end and start >= end:
        raise invalid("to", "must be after from")
    view = models.view(escalations.EscalationLog.name)
    return await answer("escalations", fmt, view, lambda: escalations.escalation_log(view, start, end),
                        **{"from": from_, "to": to})


@router.get("/reports/candidates", responses=RESPONSES)
async def candidate_report(staff: Reader, models: Models, month: str | None = None,
                           format: str | None = None) -> Response:
    """Reward and penalty candidates for a month (§十一), each with the rule, its
    figures and the events that are its evidence."""
    m, fmt = _month(month), _format(format)
    view = models.view(candidates.Candidates.name)
    return await answer("candidates", fmt, view, lambda: candidates.candidates(view, m), month=m)


@router.get("/knowledge", responses=RESPONSES)
async def knowledge(staff: Reader, models: Models, q: str | None = None,
                    product_model: str | None = None, limit: str | None = None, offset: str | None = None,
                    format: str | None = None) -> Response:
    """The fault register and problem library (《故障处理情况登记表》): faults whose
    symptoms, cause, resolution, model or summary contain every word of `q`, newest first."""
    fmt = _format(format)
    words, model = _text("q", q), _text("product_model", product_model)
    n, skip = _int("limit", limit, 50, 1, 500), _int("offset", offset, 0, 0, 1_000_000)
    view = models.view(faults.FaultRegister.name)
    return await answer("knowledge", fmt, view, lambda: faults.search_faults(view, words, model, n, skip),
                        q=words)
