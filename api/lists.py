"""HTTP routes that list cases: `GET /complaints`, `/returns`, `/plans` and `/inspections`,
from the `case_list` read model (eventually consistent, like `GET /tickets`), with
status, customer, department and date-range filters; an engineer lists only the visits
they answer for or went on. Also the ticket query behind `GET /tickets`' filters and the
console's queue (customer, department, severity, dates), over the `ticket_list` read model.

Dates are days in China Standard Time (`from` and `to` both included), as in the reports."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel, Field

from api import errors
from api.deps import CurrentStaff, ReadModelsDep
from api.errors import ApiError, require
from domain import permissions
from domain.org import Org, Staff
from domain.policy import CST
from projections import case_list, ticket_list
from projections.base import ReadModelView

router = APIRouter()

ERRORS = errors.documented((401, "no token, or an unknown or revoked one"), (403, "the role does not allow it"),
                           (422, "a malformed or unknown parameter; `field` names it"))
KNOWN = {"status", "customer", "department", "from", "to", "limit", "offset"}
Text = Annotated[str | None, Query(min_length=1, max_length=200)]
Day = Annotated[str | None, Query(pattern=r"^\d{4}-\d{2}-\d{2}$", description="a day in China Standard Time")]


class CaseSummary(BaseModel):
    kind: str
    case_id: str
    status: str | None = None
    customer: str | None = None
    department: str | None = None
    responsible: str | None = None
    people: list[str] = Field(default_factory=list)
    ticket_id: str | None = None
    opened_at: datetime | None = None
    next_deadline: datetime | None = None
    deadlines: dict[str, datetime] = Field(default_factory=dict)
    met: dict[str, datetime] = Field(default_factory=dict)
    warned: list[str] = Field(default_factory=list)
    breached: list[str] = Field(default_factory=list)
    escalations: list[dict[str, Any]] = Field(default_factory=list)
    escalation_level: int = 0
    version: int = 0


class CasePage(BaseModel):
    items: list[CaseSummary]
    limit: int
    offset: int
    next_offset: int | None = Field(description="offset of the next page, null on the last")


# --- parameters ------------------------------------------------------------------------------

def day_bounds(start: str | None, end: str | None) -> tuple[str | None, str | None]:
    """`from` and `to` days (CST, both included) as ISO text in UTC: start <= t < end."""
    def bound(field: str, value: str | None, extra: int) -> str | None:
        if value is None or value == "":
            return None
        try:
            day = datetime.fromisoformat(value).replace(tzinfo=CST)
        except ValueError:
            raise ApiError(422, "invalid", f"{field}: {value!r} is not a day as YYYY-MM-DD", field) from None
        try:
            day = (day + timedelta(days=extra)).astimezone(timezone.utc)
        except OverflowError:  # a day at the calendar's end: the bound is the end itself
            day = (datetime.min if extra == 0 else datetime.max).replace(tzinfo=timezone.utc)
        return day.isoformat(timespec="microseconds")

    lo, hi = bound("from", start, 0), bound("to", end, 1)
    if lo and hi and lo >= hi:
        raise ApiError(422, "invalid", "to: must not be before from", "to")
    return lo, hi


def unknown(request: Request, known: set[str]) -> None:
    for name in request.query_params:
        if name not in known:
            raise ApiError(422, "invalid", f"{name}: unknown parameter; this list takes {', '.join(sorted(known))}",
                           name)


# --- queries (also the console's) ------------------------------------------------------------

def department_staff(org: Org, department: str) -> list[str]:
    return [s.id for s in org.staff.values() if s.department == department]


def ticket_rows(view: ReadModelView, org: Org | None = None, *, status: str | None = None, assignee: str | None = None,
                breached: bool | None = None, customer: str | None = None, department: str | None = None,
                severity: str | None = None, start: str | None = None, end: str | None = None,
                open_only: bool = False, limit: int = 50, offset: int = 0) -> list[dict[str, Any]]:
    """Tickets of the `ticket_list` read model, newest report first. A ticket's department is
    its assignee's, or before dispatch its supervisor's (domain.permissions.ticket_department)."""
    where, params = [], []
    for column, value in (("status", status), ("assignee", assignee), ("customer", customer),
                          ("severity", severity)):
        if value is not None:
            where.append(f"{column} = ?"), params.append(value)
    if breached is not None:
        where.append("breached = ?"), params.append(1 if breached else 0)
    if open_only:
        where.append("status <> 'closed'")
    if start is not None:
        where.append("reported_at >= ?"), params.append(start)
    if end is not None:
        where.append("reported_at < ?"), params.append(end)
    if department is not None and org is not None:
        ids = department_staff(org, department) or [""]
        marks = ",".join("?" * len(ids))
        where.append(f"(assignee IN ({marks}) OR (assignee IS NULL AND supervisor IN ({marks})))")
        params += ids + ids
    rows = view.select(ticket_list.TICKETS, " AND ".join(where), params, order="reported_at DESC, ticket_id",
                       limit=max(0, min(int(limit), 1000)), offset=max(0, int(offset)))
    out = []
    for r in rows:
        r = dict(r)
        r.pop("originator_id", None)
        r["breached"] = bool(r["breached"])
        out.append(r)
    return out


def case_rows(view: ReadModelView, staff: Staff, kind: str, **filters: Any) -> list[dict[str, Any]]:
    """Cases of `kind` this person may list, held to the person `domain.permissions.may_list_cases`
    names (an engineer: the visits they answer for or went on, the plans they are in charge of)."""
    decision, person = permissions.may_list_cases(staff, kind)
    require(decision)
    if person is not None:
        filters["person"] = person
    return [permissions.mask(staff, r, kind) for r in case_list.list_cases(kind, view=view, **filters)]


# --- routes ----------------------------------------------------------------------------------

def _add_list_route(path: str, kind: str, tag: str) -> None:
    async def route(request: Request, staff: CurrentStaff, models: ReadModelsDep,
                    status: Text = None, customer: Text = None, department: Text = None,
                    from_: Annotated[str | None, Query(alias="from", pattern=r"^\d{4}-\d{2}-\d{2}$",
                                                       description="first day (CST)")] = None,
                    to: Day = None, limit: Annotated[int, Query(ge=1, le=200)] = 50,
                    offset: Annotated[int, Query(ge=0, le=1_000_000)] = 0) -> Any:
        unknown(request, KNOWN)
        start, end = day_bounds(from_, to)
        view = models.view(case_list.CaseList.name)
        rows = await run_in_threadpool(lambda: case_rows(view, staff, kind, status=status, customer=customer,
                                                         department=department, start=start, end=end,
                                                         limit=limit + 1, offset=offset))
        return {"items": rows[:limit], "limit": limit, "offset": offset,
                "next_offset": offset + limit if len(rows) > limit else None}

    route.__doc__ = (f"The {kind}s (the `case_list` read model), newest first; filters by status, customer, "
                     f"handling department and the days (CST) they were opened"
                     + ("; an engineer lists the visits they answer for or went on." if kind == "inspection" else "."))
    router.get(path, response_model=CasePage, responses=ERRORS, tags=[tag], name=f"list_{kind}s")(route)


_add_list_route("/complaints", "complaint", "complaints")
_add_list_route("/returns", "return", "returns")
_add_list_route("/plans", "plan", "maintenance")
_add_list_route("/inspections", "inspection", "maintenance")
