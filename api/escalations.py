"""HTTP routes of warnings and escalations as delivered (issue 14; workflows/delivery.py):

- `GET /notifications?status=&target=&from=&to=`: every notification with its attempts
  (sent, failed with the reason, given up); managers, leadership and auditors see all,
  anyone else their own.
- `POST /notifications/{id}/resend`: a manager or leadership sends it once more.
- `POST /escalations/{id}/ack` (bearer token) and the link in the message,
  `GET /ack/{token}` (a page with one button) → `POST /ack/{token}`: the target
  acknowledges; `EscalationAcknowledged` (who, when) is recorded on the case. The link's
  token is signed and expires; it works once. The page asks for a click rather than
  recording on opening because chat apps open links to preview them.

A notification's id is the command id of the fact it announces, e.g.
`ticket-t1:on_site:breach:escalated`. What a notification says comes from the recorded
fact, never from today's rules."""
from __future__ import annotations

import html
import uuid
from datetime import datetime, timedelta, timezone
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Path, Query, Request
from fastapi.responses import HTMLResponse
from eventsourcing.application import AggregateNotFoundError
from pydantic import BaseModel, Field
from temporalio.client import WorkflowUpdateFailedError
from temporalio.common import WorkflowIDReusePolicy
from temporalio.exceptions import WorkflowAlreadyStartedError
from temporalio.service import RPCError, RPCStatusCode

from activities.delivery import Acknowledgement, BadToken, DeliveryRequest, budget, delivery_queue, read_ack_token
from activities.outbox import STATUSES, Outbox
from api.deps import CurrentStaff, Services, Svc
from api.errors import ApiError, documented, not_found, require
from domain import permissions
from domain.kinds import KINDS
from workflows.delivery import DeliveryWorkflow, delivery_workflow_id

router = APIRouter(tags=["notifications"])
ERRORS = documented((401, "no token, or an unknown or revoked one"), (403, "the role does not allow it"),
                    (404, "no such notification"), (409, "already acknowledged"),
                    (410, "the acknowledgement link has expired or the delivery is over"),
                    (422, "malformed request; `field` names the culprit"), (503, "Temporal did not answer"))
NoticeId = Annotated[str, Path(min_length=3, max_length=300, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.:\-]*$")]


def get_outbox(request: Request) -> Outbox:
    """The notification outbox of the configured store, opened once per process."""
    outbox = getattr(request.app.state, "outbox", None)
    if outbox is None:
        outbox = request.app.state.outbox = Outbox()
        request.app.state.services.closers.append(outbox.close)
    return outbox


OutboxDep = Annotated[Outbox, Depends(get_outbox)]


class Attempt(BaseModel):
    channel: str
    round: int
    attempt: int
    status: str
    reason: str | None = None
    at: str


class NotificationView(BaseModel):
    id: str
    case: str = Field(description="the case: a ticket id, or kind:id")
    target: str
    kind: str = Field(description="SlaWarned, Escalated, CustomerEscalated or LeadershipNotified")
    reason: str
    created_at: str
    status: Literal["pending", "sent", "failed", "given_up"]
    attempts: list[Attempt]
    acknowledged_by: str | None = None
    acknowledged_at: datetime | None = None


def _case_of(row: dict[str, Any]) -> tuple[str, str]:
    """(kind, case id) of an outbox row: tickets are named by their id alone."""
    kind, sep, case_id = row["case"].partition(":")
    return (kind, case_id) if sep and kind in KINDS else ("ticket", row["case"])


def _state(svc: Services, row: dict[str, Any]) -> Any:
    """The state of the notification's case (the store's cached aggregate)."""
    kind, case_id = _case_of(row)
    try:
        return svc.store.aggregate(kind, case_id, deepcopy_from_cache=False).state
    except AggregateNotFoundError:
        return KINDS[kind].aggregate.new_state(case_id)


def _recorded(svc: Services, row: dict[str, Any]) -> tuple[dict[str, Any] | None, Any]:
    """The fact the notification announces (its event, found by command id) and the case's state."""
    kind, case_id = _case_of(row)
    events, _ = svc.store.read_history(kind, case_id)
    fact = next((e for e in events if e["command_id"] == row["id"]), None)
    return fact, _state(svc, row)


def _view(svc: Services, row: dict[str, Any]) -> dict[str, Any]:
    state = _state(svc, row)
    notice = state.notices.get(row["id"]) if hasattr(state, "notices") else None
    return {**row, "acknowledged_by": notice.acknowledged_by if notice else None,
            "acknowledged_at": notice.acknowledged_at if notice else None}


def _instant(value: str | None, field: str) -> str | None:
    if value is None:
        return None
    try:
        at = datetime.fromisoformat(value)
    except ValueError:
        raise ApiError(422, "invalid", f"{field}: {value!r} is not an ISO-8601 date or instant", field) from None
    if at.tzinfo is None:
        if "T" in value:
            raise ApiError(422, "invalid", f"{field}: give the instant with its zone, e.g. +08:00", field)
        at = at.replace(tzinfo=timezone(timedelta(hours=8)))  # a date is a China day
    try:
        return at.astimezone(timezone.utc).isoformat()
    except OverflowError:  # beyond the calendar's first or last day: that end itself
        edge = datetime.max if at.year == datetime.max.year else datetime.min
        return edge.replace(tzinfo=timezone.utc).isoformat()


@router.get("/notifications", response_model=list[NotificationView], responses=ERRORS)
async def list_notifications(
        staff: CurrentStaff, svc: Svc, outbox: OutboxDep,
        status: Annotated[Literal["pending", "sent", "failed", "given_up"] | None, Query()] = None,
        target: Annotated[str | None, Query(max_length=64, pattern=r"^[A-Za-z0-9_.\-]+$")] = None,
        start: Annotated[str | None, Query(alias="from", max_length=40)] = None,
        end: Annotated[str | None, Query(alias="to", max_length=40)] = None,
        limit: Annotated[int, Query(ge=1, le=1000)] = 200) -> Any:
    """Warnings and escalations, newest first, each with its delivery attempts."""
    decision, target = permissions.may_list_notifications(staff, target)
    require(decision)
    rows = await svc.io(outbox.list, status, target, _instant(start, "from"), _instant(end, "to"), limit)
    return [await svc.io(_view, svc, r) for r in rows]


async def _notice(svc: Services, outbox: Outbox, notice: str) -> dict[str, Any]:
    row = await svc.io(outbox.notice, notice)
    if row is None:
        raise not_found(f"no notification {notice!r}")
    return row


async def _acknowledge(svc: Services, outbox: Outbox, notice: str, by: str, via: str) -> dict[str, Any]:
    row = await _notice(svc, outbox, notice)
    if row["kind"] == "SlaWarned":
        raise ApiError(409, "not_acknowledgeable", "a warning needs no acknowledgement")
    state = await svc.io(_state, svc, row)
    done = state.notices.get(notice) if hasattr(state, "notices") else None
    if done is not None and done.acknowledged_by:
        raise ApiError(409, "already_acknowledged",
                       f"already acknowledged by {done.acknowledged_by} at {done.acknowledged_at.isoformat()}")
    handle = svc.client.get_workflow_handle(delivery_workflow_id(notice))
    try:
        ack = await handle.execute_update(DeliveryWorkflow.acknowledge, Acknowledgement(by=by, via=via))
    except WorkflowUpdateFailedError as e:
        kind = getattr(e.cause, "type", None)
        if kind == "AlreadyAcknowledged":
            raise ApiError(409, "already_acknowledged", e.cause.message) from None
        raise ApiError(503, "unavailable", "the acknowledgement could not be recorded now; try again") from None
    except RPCError as e:
        if e.status == RPCStatusCode.NOT_FOUND:
            raise ApiError(410, "expired", "this escalation's delivery is over; it can no longer be acknowledged "
                                           "here (a manager may re-send it)") from None
        raise ApiError(503, "unavailable", f"Temporal is unavailable: {e}") from None
    return {"id": notice, "acknowledged_by": ack.by, "acknowledged_at": ack.at.isoformat() if ack.at else None,
            "via": ack.via}


class AckAnswer(BaseModel):
    id: str
    acknowledged_by: str
    acknowledged_at: str | None
    via: str


@router.post("/escalations/{notice}/ack", response_model=AckAnswer, responses=ERRORS)
async def acknowledge(notice: NoticeId, staff: CurrentStaff, svc: Svc, outbox: OutboxDep) -> Any:
    """The target acknowledges an escalation (with a bearer token)."""
    row = await _notice(svc, outbox, notice)
    require(permissions.may_acknowledge(staff, row["target"]))
    return await _acknowledge(svc, outbox, notice, staff.id, "api")


@router.post("/notifications/{notice}/resend", responses=ERRORS, status_code=202)
async def resend(notice: NoticeId, staff: CurrentStaff, svc: Svc, outbox: OutboxDep) -> Any:
    """Send a notification once more to the same target (a given-up one, typically)."""
    require(permissions.may_resend(staff))
    row = await _notice(svc, outbox, notice)
    handle = svc.client.get_workflow_handle(delivery_workflow_id(notice))
    try:  # still running (waiting for its acknowledgement): one more round there
        outcome = await handle.execute_update(DeliveryWorkflow.resend, staff.id)
        return {"id": notice, "outcome": outcome}
    except RPCError as e:
        if e.status != RPCStatusCode.NOT_FOUND:
            raise ApiError(503, "unavailable", f"Temporal is unavailable: {e}") from None
    request = await svc.io(_request_from_record, svc, outbox, row)
    try:
        await svc.client.start_workflow(DeliveryWorkflow.run, request, id=delivery_workflow_id(notice),
                                        task_queue=delivery_queue(svc.task_queue),
                                        id_reuse_policy=WorkflowIDReusePolicy.ALLOW_DUPLICATE)
    except WorkflowAlreadyStartedError:
        raise ApiError(409, "conflict", "a re-send of this notification is already running") from None
    return {"id": notice, "outcome": "started", "round": request.first_round}


def _request_from_record(svc: Services, outbox: Outbox, row: dict[str, Any]) -> DeliveryRequest:
    """The delivery of a notification as its fact recorded it, in rounds after those on record."""
    kind, case_id = _case_of(row)
    fact, state = _recorded(svc, row)
    data = fact["data"] if fact else {}
    rounds = [a["round"] for a in outbox.attempts(row["id"])]
    return DeliveryRequest(
        notice=row["id"], kind=kind, case_id=case_id, event=row["kind"], to=row["target"],
        to_name=data.get("to_name") or "", level=int(data.get("level", 0 if row["kind"] == "SlaWarned" else 1)),
        goal=data.get("goal"), deadline=data.get("deadline"), responsible=data.get("responsible"),
        reason=row["reason"], customer=getattr(state, "customer", None), site=getattr(state, "site", None),
        raised_at=fact["at"] if fact else datetime.now(timezone.utc), first_round=max(rounds, default=0) + 1,
        first_send_in_task=True)


# --- the link in the message ----------------------------------------------------------------------

def _page(title: str, text: str, status: int = 200, form: str = "") -> HTMLResponse:
    return HTMLResponse(
        f"<!doctype html><html lang='zh-CN'><head><meta charset='utf-8'><meta name='viewport' "
        f"content='width=device-width, initial-scale=1'><title>{html.escape(title)}</title></head>"
        f"<body style='font-family: sans-serif; max-width: 36rem; margin: 2rem auto; padding: 0 1rem'>"
        f"<h1>{html.escape(title)}</h1><p>{html.escape(text)}</p>{form}</body></html>", status_code=status)


def _token(token: str) -> tuple[str, str]:
    try:
        return read_ack_token(token, budget()["ack_horizon"])
    except BadToken as e:
        raise ApiError(410 if "expired" in str(e) else 403, "bad_link", str(e)) from None


Token = Annotated[str, Path(min_length=10, max_length=400, pattern=r"^[A-Za-z0-9_.\-]+$")]


@router.get("/ack/{token}", response_class=HTMLResponse, include_in_schema=False)
async def ack_page(token: Token, svc: Svc, outbox: OutboxDep) -> Any:
    try:
        notice, target = _token(token)
        row = await _notice(svc, outbox, notice)
    except ApiError as e:
        return _page("确认上报 / Acknowledge", e.detail, e.status)
    person = svc.org.get(target)
    text = (f"{row['reason']} — 请 {person.name if person else target} 确认已知悉。"
            f" / Please confirm you have seen it.")
    form = (f"<form method='post' action='/ack/{html.escape(token)}'>"
            f"<button type='submit' style='font-size: 1.2rem; padding: .6rem 1.2rem'>确认 / Acknowledge</button>"
            f"</form>")
    return _page("确认上报 / Acknowledge this escalation", text, form=form)


@router.post("/ack/{token}", response_class=HTMLResponse, include_in_schema=False)
async def ack_by_link(token: Token, svc: Svc, outbox: OutboxDep) -> Any:
    try:
        notice, target = _token(token)
        answer = await _acknowledge(svc, outbox, notice, target, "link")
    except ApiError as e:
        return _page("未能确认 / Not acknowledged", e.detail, e.status)
    return _page("已确认 / Acknowledged", f"{answer['acknowledged_by']} — {answer['acknowledged_at']} (UTC)")
