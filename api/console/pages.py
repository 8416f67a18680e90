"""The console's pages: server-rendered (Jinja2) with htmx for the parts that change in
place. Every page asks domain.permissions what this person may see and do, masks what
their role may not see (the same `permissions.mask` the API uses), and takes a step
through the same function the API's step route calls (`api.tickets.take_step`), so the
console has no rule of its own."""
from __future__ import annotations

import io
import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Annotated, Any

import jinja2
from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates
from markupsafe import Markup
from pydantic import BaseModel, ValidationError

from api import lists
from api.console import auth, present
from api.console.auth import COOKIE, Session, Sessions
from api.console.history import EventMemo, Kept
from api.deps import ReadModelsDep, Services, Svc
from api.errors import ApiError
from domain import chain, kinds, lifecycle, permissions
from domain.casework import IllegalStep
from domain.chained import case_uuid
from domain.org import Staff
from domain.permissions import TicketFacts
from domain.policy import CST
from domain.steps import STEPS
from projections import case_list, ticket_list

HERE = Path(__file__).parent
_DICT_ATTRIBUTES = frozenset(dir(dict))


class _Environment(jinja2.Environment):
    """Jinja's environment, reading `d.key` of a plain dict (most of what the pages show)
    without first trying and failing an attribute lookup: the same answer as Jinja's own
    getattr, whose failed lookup raises and catches an exception each time."""

    def getattr(self, obj: Any, attribute: str) -> Any:
        if type(obj) is dict and attribute not in _DICT_ATTRIBUTES and attribute in obj:
            return obj[attribute]
        return super().getattr(obj, attribute)


# the templates are the package's files: compiled once per process, not checked for changes
# on every render (each page includes several; a check is a stat() each)
templates = Jinja2Templates(env=_Environment(loader=jinja2.FileSystemLoader(str(HERE / "templates")),
                                             autoescape=jinja2.select_autoescape(), auto_reload=False))
templates.env.globals.update(cst=present.cst, utc=present.utc, GOAL_WORDS=present.GOAL_WORDS,
                             STATUS_WORDS=present.STATUS_WORDS)

router = APIRouter(prefix="/console", include_in_schema=False)

CASE_KINDS = {"complaint": "Complaints", "return": "Returns", "plan": "Plans", "inspection": "Visits"}


# --- the console's own parts, per process ------------------------------------------------------

class Parts:
    """What the console keeps beside the API's services: its sessions and, opened on first
    use, the notification outbox (the delivery attempts a ticket's page shows)."""

    def __init__(self, svc: Services):
        self.sessions = Sessions(svc.tokens.db)
        self.memo = EventMemo(svc.store)  # decoded and rendered events, per stored event (history.py)
        self._dumps = Kept()  # masked dumps, per state object and set of hidden fields
        self._panels = Kept()  # state panels, per masked dump
        self._outbox: Any = None
        self._svc = svc

    def masked_dump(self, staff: Staff, state: Any, kind: str) -> dict[str, Any]:
        """`state` as JSON, masked for `staff`: kept per state object and set of hidden fields.
        A state object is never changed (each event's fold makes a new one), and the event
        store's cached aggregate hands out the same object until the next event, so its
        dump is made once, and used only while that object is still at the same version."""
        hidden = permissions.masked_fields(staff, kind)
        return self._dumps.get((id(state), hidden), state, state.version,
                               lambda: permissions.mask(staff, state.model_dump(mode="json"), kind))

    def state_panel(self, view: dict[str, Any]) -> Markup:
        """`_state.html` of the state now (`state_view`'s `view`, no as-of instant), kept per
        masked dump and the goals' time-left words: all else the panel shows follows from
        the dump (the status, the SLA words, deadlines, people), itself kept per state object
        and hidden fields (`masked_dump`)."""
        dump = view["s"]
        return self._panels.get(id(dump), dump, tuple(g["left"] for g in view["goals"]), lambda: Markup(
            templates.env.get_template("_state.html").render(state=view, as_of=None)))

    def outbox(self) -> Any:
        if self._outbox is None:
            from activities.outbox import Outbox
            self._outbox = Outbox()
            self._svc.closers.append(self._outbox.close)
        return self._outbox


def parts(svc: Services) -> Parts:
    p = svc.__dict__.get("_console_parts")
    if p is None:
        p = svc.__dict__["_console_parts"] = Parts(svc)
    return p


# --- who is asking -------------------------------------------------------------------------------

class SignInRequired(Exception):
    """No live session: the page asks to sign in with a link."""


class Refused(Exception):
    def __init__(self, status: int, title: str, detail: str):
        super().__init__(detail)
        self.status, self.title, self.detail = status, title, detail


class User:
    def __init__(self, staff: Staff, session: Session, sid: str):
        self.staff, self.session, self.sid = staff, session, sid

    @property
    def csrf(self) -> str:
        return self.session.csrf


async def console_user(request: Request, svc: Svc) -> User:
    sid = request.cookies.get(COOKIE)
    session = await svc.io(parts(svc).sessions.get, sid) if sid else None
    if session is None:
        raise SignInRequired
    staff = svc.org.get(session.staff_id)
    if staff is None:
        raise SignInRequired
    request.state.staff_id = staff.id
    return User(staff, session, sid)


async def form_user(request: Request, user: Annotated[User, Depends(console_user)]) -> User:
    """The user of a form post, once its CSRF token is the session's."""
    form = await request.form()
    sent = form.get(auth.CSRF_FIELD) or request.headers.get(auth.CSRF_HEADER)
    if not auth.csrf_ok(user.session, sent if isinstance(sent, str) else None):
        raise Refused(403, "Refused", "this form has no valid CSRF token (反跨站请求伪造校验失败): reload the page "
                                      "and send it again")
    return user


ConsoleUser = Annotated[User, Depends(console_user)]
FormUser = Annotated[User, Depends(form_user)]


def nav(staff: Staff) -> list[tuple[str, str]]:
    items = [("/console/", "My work" if staff.role == "engineer" else "Queue")]
    for kind, title in CASE_KINDS.items():
        if permissions.may_read_case(staff, kind):
            items.append((f"/console/cases/{kind}", title))
    if permissions.may_read_reports(staff):
        items.append(("/console/reports", "Reports"))
    items.append(("/docs", "API"))
    return items


SECURITY_HEADERS = {
    "Content-Security-Policy": ("default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; "
                                "frame-ancestors 'none'"),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}


def page(request: Request, name: str, user: User | None, status: int = 200, **context: Any) -> HTMLResponse:
    """A page with the console's security headers."""
    base = {"user": user, "staff": user.staff if user else None, "csrf": user.csrf if user else "",
            "nav": nav(user.staff) if user else [], "path": request.url.path}
    return templates.TemplateResponse(request, name, {**base, **context}, status_code=status,
                                      headers=SECURITY_HEADERS)


def refused_page(request: Request, exc: Refused) -> HTMLResponse:
    return page(request, "error.html", None, exc.status, title=exc.title, detail=exc.detail)


def sign_in_page(request: Request, exc: SignInRequired) -> HTMLResponse:
    return page(request, "signin_needed.html", None, 401)


def _require(decision: permissions.Decision) -> None:
    if not decision:
        raise Refused(403, "Not for your role", decision.reason)


# --- sign in and out --------------------------------------------------------------------------

@router.get("/signin/{token}", response_class=HTMLResponse)
async def signin_form(request: Request, token: str, svc: Svc) -> Response:
    try:
        staff_id, nonce = auth.read_login_token(token)
    except auth.BadLink as e:
        raise Refused(400, "Sign-in link not valid", str(e)) from None
    staff = svc.org.get(staff_id)
    if staff is None or await svc.io(parts(svc).sessions.link_used, nonce):
        raise Refused(400, "Sign-in link not valid", "this sign-in link has been used already; ask for a new one "
                                                     "(weibao login-link STAFF_ID)")
    return page(request, "signin.html", None, who=staff, token=token, link_csrf=auth.link_csrf(token))


@router.post("/signin/{token}")
async def signin(request: Request, token: str, svc: Svc) -> Response:
    form = await request.form()
    if not auth.link_csrf_ok(token, form.get(auth.CSRF_FIELD)):  # type: ignore[arg-type]
        raise Refused(403, "Refused", "this form has no valid CSRF token: open the sign-in link again")
    try:
        staff_id, nonce = auth.read_login_token(token)
    except auth.BadLink as e:
        raise Refused(400, "Sign-in link not valid", str(e)) from None
    staff = svc.org.get(staff_id)
    sessions = parts(svc).sessions
    if staff is None or not await svc.io(sessions.use_link, nonce, "signin", staff_id):
        raise Refused(400, "Sign-in link not valid", "this sign-in link has been used already; ask for a new one")
    sid, session = await svc.io(sessions.open, staff.id)
    response = RedirectResponse("/console/", status_code=303)
    response.set_cookie(COOKIE, sid, max_age=int((session.expires_at - datetime.now(timezone.utc)).total_seconds()),
                        httponly=True, samesite="strict", path="/",
                        secure=request.url.scheme == "https" or _public_base(request).startswith("https:"))
    return response


@router.post("/signout")
async def signout(user: FormUser, svc: Svc) -> Response:
    await svc.io(parts(svc).sessions.end, user.sid)
    response = RedirectResponse("/console/signed-out", status_code=303)
    response.delete_cookie(COOKIE, path="/")
    return response


@router.get("/signed-out", response_class=HTMLResponse)
async def signed_out(request: Request) -> Response:
    return page(request, "signed_out.html", None)


# --- the queue ---------------------------------------------------------------------------------

def _filters(request: Request) -> dict[str, str | None]:
    q = request.query_params
    names = ("kind", "status", "customer", "assignee", "department", "severity", "from", "to")
    return {n: (q.get(n) or "").strip() or None for n in names}


def queue_items(svc: Services, models: Any, staff: Staff, f: dict[str, str | None],
                now: datetime) -> list[dict[str, Any]]:
    """Open tickets and cases this person may see, the next deadline first."""
    org = svc.org
    start, end = lists.day_bounds(f["from"], f["to"])
    items: list[dict[str, Any]] = []
    kind = f["kind"]
    if kind in (None, "ticket"):
        decision, assignee = permissions.may_list_tickets(staff, f["assignee"])
        if decision:
            rows = lists.ticket_rows(models.view(ticket_list.TicketList.name), org, status=f["status"],
                                     assignee=assignee, customer=f["customer"], department=f["department"],
                                     severity=f["severity"], start=start, end=end, open_only=True, limit=500)
            alarms = case_list.ticket_alarms([str(_ticket_uuid(r["ticket_id"])) for r in rows],
                                             view=models.view(case_list.CaseList.name))
            for r in rows:
                a = alarms.get(str(_ticket_uuid(r["ticket_id"]))) or {}
                items.append(_item(org, "ticket", r["ticket_id"], r["status"], r.get("customer"),
                                   permissions.ticket_department(org, TicketFacts(r.get("assignee"), r.get("supervisor"))),
                                   r.get("assignee") or r.get("supervisor"), r.get("severity"), r.get("reported_at"),
                                   r.get("deadlines") or {}, r.get("met") or {}, a, now))
    if f["severity"] is None and (f["assignee"] is None or staff.role == "engineer"):
        for k in case_list.LIST_KINDS:
            if kind not in (None, k) or not permissions.may_read_case(staff, k):
                continue
            if staff.role == "engineer" and k != "inspection":
                continue
            rows = lists.case_rows(models.view(case_list.CaseList.name), staff, k, status=f["status"],
                                   customer=f["customer"], department=f["department"], start=start, end=end,
                                   open_only=True, limit=500)
            for r in rows:
                items.append(_item(org, k, r["case_id"], r["status"], r.get("customer"), r.get("department"),
                                   r.get("responsible"), None, r.get("opened_at"), r.get("deadlines") or {},
                                   r.get("met") or {}, r, now))
    items.sort(key=lambda i: (i["next_deadline"] is None, i["next_deadline"] or now, i["id"]))
    return items


def _ticket_uuid(ticket_id: str) -> Any:
    return case_uuid("ticket", ticket_id)


def _item(org: Any, kind: str, case_id: str, status: str, customer: str | None, department: str | None,
          responsible: str | None, severity: str | None, opened_at: Any, deadlines: dict, met: dict,
          alarms: dict, now: datetime) -> dict[str, Any]:
    nd = present.next_deadline(deadlines, met)
    sla = present.sla_state(org, met=met, windows=deadlines, warned=alarms.get("warned") or [],
                            breached=alarms.get("breached") or [], escalations=alarms.get("escalations") or [])
    link = f"/console/tickets/{case_id}" if kind == "ticket" else f"/console/cases/{kind}/{case_id}"
    return {"kind": kind, "id": case_id, "link": link, "status": status, "customer": customer or "",
            "department": present.dept_name(org, department), "responsible": present.who(org, responsible),
            "severity": severity or "", "opened_at": opened_at, "next_deadline": nd,
            "time_left": present.time_left(nd, now) if nd else "", "overdue": bool(nd and nd < now), "sla": sla}


@router.get("/", response_class=HTMLResponse)
async def queue(request: Request, user: ConsoleUser, svc: Svc, models: ReadModelsDep) -> Response:
    f = _filters(request)
    now = datetime.now(timezone.utc)
    try:
        items = await svc.io(queue_items, svc, models, user.staff, f, now)
    except ApiError as e:
        raise Refused(e.status, "Bad filter", e.detail) from None
    departments = sorted(svc.org.departments.values(), key=lambda d: d.name)
    context = dict(items=items, f=f, now=now, departments=departments, statuses=ticket_list.STATUSES,
                   engineer=user.staff.role == "engineer", kinds=["ticket", *case_list.LIST_KINDS])
    if request.headers.get("HX-Request") and request.headers.get("HX-Target") == "queue-rows":
        return page(request, "_queue_rows.html", user, **context)
    return page(request, "queue.html", user, **context)


# --- a ticket -----------------------------------------------------------------------------------

async def _ticket_events(svc: Services, staff: Staff, ticket_id: str) -> tuple[list[dict], int | None, Any]:
    events, damaged = await svc.io(parts(svc).memo.read_history, "ticket", ticket_id)
    if not events:
        raise Refused(404, "No such ticket", f"no ticket {ticket_id}")
    state = await svc.io(_folded, svc, ticket_id, events)
    _require(permissions.may_read_ticket(staff, TicketFacts.of(state)))
    return events, damaged, state


def _folded(svc: Services, ticket_id: str, events: list[dict[str, Any]]) -> Any:
    """The state after `events`: the event store's cached aggregate (the same fold, kept up to
    date by the repository) when it stands at the same version, else the fold over them."""
    last = events[-1]["version"]
    if last != len(events):
        return kinds.replay("ticket", ticket_id, events)
    cache = svc.store.repository.cache
    if cache is not None:  # the cached aggregate as it is, when it stands where the read did: no second query
        try:
            state = cache.get(case_uuid("ticket", ticket_id)).state
        except KeyError:
            state = None
        if state is not None and state.version == last:
            return state
    try:  # the repository brings it up to date (one query for the newer events) or loads it
        state = svc.store.aggregate("ticket", ticket_id, deepcopy_from_cache=False).state
    except Exception:  # noqa: BLE001 - a record the aggregate cannot load still replays what was read
        state = None
    if state is not None and state.version == last:
        return state
    return kinds.replay("ticket", ticket_id, events)


class Timeline(list):
    """A timeline's items, and `html`: their `<li>`s joined, for `_timeline.html`."""

    @property
    def html(self) -> Markup:
        return Markup("".join(item["html"] for item in self))


def timeline(svc: Services, staff: Staff, kind: str, events: list[dict[str, Any]],
             attempts: bool = True) -> Timeline:
    """Each event in words with its rendered `<li>` (`_event.html`), masked for this
    person, with the delivery attempts of a notification (all read in one query). What
    follows from a stored event and the set of fields masked for this person is kept
    once per stored event (history.EventMemo)."""
    org, memo, out = svc.org, parts(svc).memo, Timeline()
    hidden = permissions.masked_fields(staff, kind)
    tried = _attempts(svc, events) if attempts else {}
    plain: tuple = (hidden, ())
    for e, entry in zip(events, memo.entries(events)):
        notice = e["data"].get("notice") if e["type"] in ("NotificationSent", "NotificationGivenUp") else None
        shown = tried.get(notice, []) if notice else []
        key = (hidden, tuple(tuple(a.values()) for a in shown)) if shown else plain
        item = memo.view(entry, key) if entry is not None else None
        if item is None:
            item = _timeline_item(org, staff, kind, e, shown)
            if entry is not None:
                memo.keep(entry, key, item)
        out.append(item)
    return out


def _timeline_item(org: Any, staff: Staff, kind: str, e: dict[str, Any],
                   attempts: list[dict[str, Any]]) -> dict[str, Any]:
    data = permissions.mask(staff, e["data"], kind)
    sentence, fields = present.describe(org, kind, e["type"], data)
    item = {"version": e["version"], "type": e["type"], "at": e["at"], "actor": e["actor"],
            "at_cst": present.cst(e["at"], True), "at_utc": present.utc(e["at"]),
            "recorded_cst": present.cst(e["recorded_at"], True), "recorded_utc": present.utc(e["recorded_at"]),
            "actor_words": present.who(org, e["actor"]), "sentence": sentence, "fields": fields,
            "mark": present.MARKS.get(e["type"], ""), "recorded_at": e["recorded_at"], "attempts": attempts}
    item["html"] = _event_macro()(item)
    return item


def _event_macro() -> Any:
    """`_event.html`'s macro: one event's `<li>` (a macro call costs less than a render)."""
    return templates.env.get_template("_event.html").module.event  # type: ignore[attr-defined]


def _attempts(svc: Services, events: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    """The delivery attempts of the notifications among `events`, by notice, in one query."""
    notices = sorted({e["data"]["notice"] for e in events
                      if e["type"] in ("NotificationSent", "NotificationGivenUp") and e["data"].get("notice")})
    if not notices:
        return {}
    try:
        return parts(svc).outbox()._attempts_of(notices)
    except Exception:  # noqa: BLE001 - the attempts are a detail; the events stand on their own
        return {}


def state_view(svc: Services, staff: Staff, state: Any, now: datetime, kind: str = "ticket") -> dict[str, Any]:
    """What the state panel shows: the masked state and its SLA words."""
    s = parts(svc).masked_dump(staff, state, kind)  # shared by requests: read, never changed
    deadlines = {g: w["deadline"] for g, w in s.get("windows", {}).items()}
    met = s.get("met", {})
    sla = present.sla_state(svc.org, met=met, windows=deadlines if state.is_open else {},
                            warned=[a["goal"] for a in s.get("warnings", [])],
                            breached=[a["goal"] for a in s.get("breaches", [])],
                            escalations=s.get("escalations", []))
    goals = []
    for g, d in deadlines.items():
        breached = any(a["goal"] == g for a in s.get("breaches", []))
        goals.append({"goal": present.GOAL_WORDS.get(g, g), "deadline": d, "met": met.get(g), "breached": breached,
                      "left": present.time_left(d, now) if g not in met and state.is_open else ""})
    return {"s": s, "sla": sla, "goals": goals,
            "people": {k: present.who(svc.org, s.get(k)) for k in ("assignee", "supervisor", "received_by")}}


def step_choices(svc: Services, staff: Staff, state: Any) -> list[dict[str, Any]]:
    """The ticket steps this person may take: those legal now as forms, the others with
    the reason they are not (domain.lifecycle.check). Nothing for a reader who changes nothing."""
    org, out = svc.org, []
    facts = TicketFacts.of(state)
    engineers = [s for s in org.staff.values() if s.role in permissions.DISPATCHABLE_ROLES
                 and s.department == staff.department]
    for step, (_, model) in STEPS.items():
        probe = {"engineer": engineers[0].id} if step == "dispatch" and engineers else {}
        if not permissions.may_step_ticket(org, staff, step, facts, probe):
            continue
        prefill: dict[str, Any] = {}
        if step == "return-equipment":
            prefill["receipt_no"] = state.equipment_receipt or ""
        if step == "retrieve-backup":
            prefill["unit"] = state.backup_unit or ""
        if step == "triage":
            prefill.update(severity=state.severity, zone=state.zone)
        if step == "arrive":
            prefill["staff_id_shown"] = True
        try:
            lifecycle.check(state, step, prefill)
            reason = None
        except IllegalStep as e:
            reason = e.reason
        choices = {"engineer": [(s.id, f"{s.name} · {s.id}") for s in engineers]} if step == "dispatch" else None
        out.append({"step": step, "title": (model.__doc__ or step).strip().split("\n")[0], "reason": reason,
                    "fields": present.form_fields(model, org, prefill, choices), "idem": uuid.uuid4().hex})
    return out


async def ticket_context(request: Request, user: User, svc: Services, models: Any, ticket_id: str) -> dict[str, Any]:
    events, damaged, state = await _ticket_events(svc, user.staff, ticket_id)
    now = datetime.now(timezone.utc)
    first, last = events[0]["at"], max(events[-1]["at"], now if state.is_open else events[-1]["at"])
    links = await svc.io(lambda: ticket_list.linked_cases(ticket_id, view=models.view(ticket_list.TicketList.name)))
    steps = step_choices(svc, user.staff, state)
    sign = None
    if state.status == "resolved" and any(s["step"] == "sign-off" and s["reason"] is None for s in steps):
        token = auth.sign_token(ticket_id, user.staff.id)
        url = f"{_public_base(request)}/console/sign/{token}"
        sign = {"url": url, "qr": _qr_svg(url)}
    panel = parts(svc).state_panel(state_view(svc, user.staff, state, now))
    return dict(ticket_id=ticket_id, timeline=timeline(svc, user.staff, "ticket", events), damaged=damaged,
                state_panel=panel, steps=steps, links=links, sign=sign,
                slider={"min": int(first.timestamp()), "max": int(last.timestamp()) + 1,
                        "marks": [int(e["at"].timestamp()) for e in events]},
                as_of=None, now=now, printable=False)


def _public_base(request: Request) -> str:
    from activities import config
    try:
        return config.public_url()
    except Exception:  # noqa: BLE001
        return str(request.base_url).rstrip("/")


def _qr_svg(url: str) -> str:
    import qrcode
    from qrcode.image.svg import SvgPathImage

    img = qrcode.make(url, image_factory=SvgPathImage, box_size=8, border=2)
    return img.to_string(encoding="unicode")


@router.get("/tickets/{ticket_id}", response_class=HTMLResponse)
async def ticket_page(request: Request, ticket_id: str, user: ConsoleUser, svc: Svc,
                      models: ReadModelsDep) -> Response:
    context = await ticket_context(request, user, svc, models, ticket_id)
    flash = request.query_params.get("done")
    return page(request, "ticket.html", user, flash=f"Recorded: {flash}" if flash in STEPS else None, **context)


@router.get("/tickets/{ticket_id}/record", response_class=HTMLResponse)
async def dispute_record(request: Request, ticket_id: str, user: ConsoleUser, svc: Svc) -> Response:
    """The printable dispute record: the whole history with the chain check, for a manager to hand over."""
    events, damaged, state = await _ticket_events(svc, user.staff, ticket_id)
    now = datetime.now(timezone.utc)
    bad = chain.verify(events)
    if damaged is not None and (bad is None or damaged < bad):
        bad = damaged
    return page(request, "record.html", user, ticket_id=ticket_id, timeline=timeline(svc, user.staff, "ticket", events),
                state=state_view(svc, user.staff, state, now), bad=bad, now=now, versions=len(events))


@router.get("/tickets/{ticket_id}/state", response_class=HTMLResponse)
async def ticket_state(request: Request, ticket_id: str, user: ConsoleUser, svc: Svc) -> Response:
    """The state panel as of an instant (the slider): the one fold over the events up to it."""
    raw = request.query_params.get("as_of_ts") or request.query_params.get("as_of")
    events, damaged, current = await _ticket_events(svc, user.staff, ticket_id)
    try:
        as_of = (datetime.fromtimestamp(int(raw), timezone.utc) if raw and raw.isdigit()
                 else present.as_datetime(raw) if raw else None)
    except (ValueError, OverflowError):
        raise Refused(422, "Bad instant", f"as_of: {raw!r} is not an instant") from None
    state = kinds.replay("ticket", ticket_id, events, as_of=as_of) if as_of else current
    if state.status == "new":
        state = kinds.replay("ticket", ticket_id, events[:1])
    shown = sum(1 for e in events if as_of is None or e["at"] <= as_of)
    return page(request, "_state.html", user, state=state_view(svc, user.staff, state, as_of or
                                                               datetime.now(timezone.utc)),
                as_of=as_of, shown=shown, total=len(events), ticket_id=ticket_id)


@router.get("/tickets/{ticket_id}/verify", response_class=HTMLResponse)
async def ticket_verify(request: Request, ticket_id: str, user: ConsoleUser, svc: Svc) -> Response:
    """The verification badge: GET /tickets/{id}/verify's own answer."""
    from api.tickets import verify
    try:
        result = await verify(ticket_id, user.staff, svc)
    except ApiError as e:
        raise Refused(e.status, "Cannot verify", e.detail) from None
    return page(request, "_verify.html", user, v=result)


@router.post("/tickets/{ticket_id}/steps/{step}", response_class=HTMLResponse)
async def take_ticket_step(request: Request, ticket_id: str, step: str, user: FormUser, svc: Svc,
                           models: ReadModelsDep) -> Response:
    from api.tickets import take_step
    if step not in STEPS:
        raise Refused(404, "No such step", f"no step {step!r}; steps are {', '.join(STEPS)}")
    model = STEPS[step][1]
    form = await request.form()
    data = present.form_data(model, form)
    if step == "sign-off":  # typed in by staff for a customer without a phone: the record says so
        data["entered_by"] = user.staff.id
    error = None
    try:
        payload = model.model_validate(data).model_dump(mode="json")
        idem = form.get("idem")
        await take_step(svc, user.staff, ticket_id, step, payload, str(idem) if idem else None)
    except ValidationError as e:
        err = e.errors()[0]
        error = f"{'.'.join(str(p) for p in err['loc']) or step}: {err['msg']}"
        status = 422
    except ApiError as e:
        error, status = e.detail, e.status
    if error is None:
        return RedirectResponse(f"/console/tickets/{ticket_id}?done={step}", status_code=303)
    context = await ticket_context(request, user, svc, models, ticket_id)
    return page(request, "ticket.html", user, status, error=f"{step} refused: {error}", **context)


# --- the customer's sign-off ------------------------------------------------------------------

def _resolution(events: list[dict[str, Any]]) -> dict[str, Any]:
    return next((e["data"] for e in reversed(events) if e["type"] == "Resolved"), {})


async def _sign_context(svc: Services, token: str) -> dict[str, Any]:
    try:
        ticket_id, issued_by, nonce = auth.read_sign_token(token)
    except auth.BadLink as e:
        raise Refused(400, "Link not valid", str(e)) from None
    if await svc.io(parts(svc).sessions.link_used, nonce):
        raise Refused(400, "Link used", "this sign-off link has been used already; thank you")
    events, _ = await svc.io(svc.store.read_history, "ticket", ticket_id)
    if not events:
        raise Refused(404, "No such ticket", f"no ticket {ticket_id}")
    state = kinds.replay("ticket", ticket_id, events)
    fix = _resolution(events)
    return dict(ticket_id=ticket_id, issued_by=issued_by, nonce=nonce, token=token, st=state,
                engineer=present.who(svc.org, state.assignee), fix=fix, link_csrf=auth.link_csrf(token))


@router.get("/sign/{token}", response_class=HTMLResponse)
async def sign_form(request: Request, token: str, svc: Svc) -> Response:
    """The customer's own page: what was done, and their signature and rating (客户签字)."""
    context = await _sign_context(svc, token)
    return page(request, "sign.html", None, **context)


@router.post("/sign/{token}", response_class=HTMLResponse)
async def sign(request: Request, token: str, svc: Svc) -> Response:
    from api.tickets import take_step
    form = await request.form()
    if not auth.link_csrf_ok(token, form.get(auth.CSRF_FIELD)):  # type: ignore[arg-type]
        raise Refused(403, "Refused", "this form has no valid CSRF token: open the link again")
    context = await _sign_context(svc, token)
    engineer = svc.org.get(context["issued_by"])
    if engineer is None:
        raise Refused(400, "Link not valid", "the link's issuer is no longer on the staff")
    model = STEPS["sign-off"][1]
    rating = str(form.get("satisfaction") or "")
    data = {"signature": str(form.get("signature") or "").strip(),
            "satisfaction": int(rating) if rating.isdigit() else rating,
            "opinion": str(form.get("opinion") or "")}
    try:
        payload = model.model_validate(data).model_dump(mode="json")
    except ValidationError as e:
        err = e.errors()[0]
        return page(request, "sign.html", None, 422, error=f"{'.'.join(map(str, err['loc']))}: {err['msg']}",
                    **context)
    sessions, nonce = parts(svc).sessions, context["nonce"]
    if not await svc.io(sessions.use_link, nonce, "signoff", context["ticket_id"]):
        raise Refused(400, "Link used", "this sign-off link has been used already; thank you")
    try:
        await take_step(svc, engineer, context["ticket_id"], "sign-off", payload, f"signoff-{nonce}",
                        actor=f"customer:{payload['signature']}")
    except ApiError as e:
        await svc.io(sessions.release_link, nonce)
        return page(request, "sign.html", None, e.status, error=e.detail, **context)
    return page(request, "signed.html", None, ticket_id=context["ticket_id"], signature=payload["signature"])


# --- complaints, returns, plans and visits ---------------------------------------------------------

@router.get("/cases/{kind}", response_class=HTMLResponse)
async def case_list_page(request: Request, kind: str, user: ConsoleUser, svc: Svc,
                         models: ReadModelsDep) -> Response:
    if kind not in CASE_KINDS:
        raise Refused(404, "No such list", f"no list of {kind!r}")
    _require(permissions.may_read_case(user.staff, kind))
    f = _filters(request)
    try:
        start, end = lists.day_bounds(f["from"], f["to"])
    except ApiError as e:
        raise Refused(422, "Bad filter", e.detail) from None
    rows = await svc.io(lambda: lists.case_rows(models.view(case_list.CaseList.name), user.staff, kind,
                                                status=f["status"], customer=f["customer"],
                                                department=f["department"], start=start, end=end, limit=200))
    now = datetime.now(timezone.utc)
    items = [_item(svc.org, kind, r["case_id"], r["status"], r.get("customer"), r.get("department"),
                   r.get("responsible"), None, r.get("opened_at"), r.get("deadlines") or {}, r.get("met") or {},
                   r, now) for r in rows]
    departments = sorted(svc.org.departments.values(), key=lambda d: d.name)
    return page(request, "cases.html", user, kind=kind, title=CASE_KINDS[kind], items=items, f=f,
                departments=departments)


def _visit_facts(svc: Services, kind: str, state: Any) -> Any:
    return permissions.VisitFacts.of(svc.org, state) if kind in ("plan", "inspection") else None


def may_step_case(svc: Services, staff: Staff, kind: str, step: str, state: Any,
                  data: dict[str, Any] | None = None) -> permissions.Decision:
    """Whether this person may take a case's step: the decision the API's step route of that
    kind asks domain.permissions for (api/cases.py)."""
    if kind in ("complaint", "return"):
        return permissions.may_step_case(staff, kind, step, permissions.handling_department(kind, state),
                                         permissions.case_about(kind, state))
    if kind == "inspection":
        return permissions.may_visit_step(svc.org, staff, step, permissions.VisitFacts.of(svc.org, state), data)
    return permissions.may_plan(svc.org, staff, state.responsible, (data or {}).get("responsible"))


def case_step_choices(svc: Services, staff: Staff, kind: str, state: Any) -> list[dict[str, Any]]:
    """The steps of a complaint, return, plan or visit this person may take: forms for those
    legal now, the reason for the others (the kind's own step check)."""
    spec = kinds.KINDS[kind]
    out = []
    for step, entry in spec.steps.items():
        model = entry[1]
        if not may_step_case(svc, staff, kind, step, state):
            continue
        if any(_is_model_list(info.annotation) for info in model.model_fields.values()):
            continue  # a form of nested records (an inspection's findings) is the API's
        try:
            spec.aggregate.check(state, step, {})
            reason = None
        except IllegalStep as e:
            reason = e.reason
        except Exception:  # noqa: BLE001 - a check that needs the step's data decides when it is sent
            reason = None
        out.append({"step": step, "title": (model.__doc__ or step).strip().split("\n")[0], "reason": reason,
                    "fields": present.form_fields(model, svc.org), "idem": uuid.uuid4().hex})
    return out


def _is_model_list(annotation: Any) -> bool:
    import typing
    args = typing.get_args(annotation)
    return typing.get_origin(annotation) is list and bool(args) and isinstance(args[0], type) \
        and issubclass(args[0], BaseModel)


async def _case(svc: Services, staff: Staff, kind: str, case_id: str) -> tuple[list[dict], int | None, Any]:
    if kind not in CASE_KINDS:
        raise Refused(404, "No such case kind", f"no case kind {kind!r}")
    _require(permissions.may_read_case(staff, kind))
    events, damaged = await svc.io(parts(svc).memo.read_history, kind, case_id)
    if not events:
        raise Refused(404, "No such case", f"no {kind} {case_id}")
    state = kinds.replay(kind, case_id, events)
    _require(permissions.may_read_case(staff, kind, _visit_facts(svc, kind, state)))
    return events, damaged, state


async def case_context(user: User, svc: Services, kind: str, case_id: str) -> dict[str, Any]:
    events, damaged, state = await _case(svc, user.staff, kind, case_id)
    now = datetime.now(timezone.utc)
    s = permissions.mask(user.staff, state.model_dump(mode="json"), kind)
    simple = {k: v for k, v in s.items() if not isinstance(v, (dict, list)) and v not in (None, "")}
    return dict(kind=kind, title=CASE_KINDS[kind][:-1], case_id=case_id,
                timeline=timeline(svc, user.staff, kind, events), state=state_view(svc, user.staff, state, now, kind),
                simple=simple, intact=chain.verify(events) is None and damaged is None,
                steps=case_step_choices(svc, user.staff, kind, state))


@router.get("/cases/{kind}/{case_id}", response_class=HTMLResponse)
async def case_page(request: Request, kind: str, case_id: str, user: ConsoleUser, svc: Svc) -> Response:
    flash = request.query_params.get("done")
    context = await case_context(user, svc, kind, case_id)
    return page(request, "case.html", user, flash=f"Recorded: {flash}" if flash else None, **context)


@router.post("/cases/{kind}/{case_id}/steps/{step}", response_class=HTMLResponse)
async def take_case_step(request: Request, kind: str, case_id: str, step: str, user: FormUser,
                         svc: Svc) -> Response:
    """A complaint's, return's, plan's or visit's step, as the API's step route of that kind
    takes it: the same permission, the same Update, the same Idempotency-Key round trip."""
    from api import cases
    from api.deps import idempotent
    from workflows.case_messages import StepCommand

    events, damaged, state = await _case(svc, user.staff, kind, case_id)
    spec = kinds.KINDS[kind]
    if step not in spec.steps:
        raise Refused(404, "No such step", f"no {kind} step {step!r}; steps are {', '.join(spec.steps)}")
    model = spec.steps[step][1]
    form = await request.form()
    error, status = None, 200
    try:
        data = model.model_validate(present.form_data(model, form)).model_dump(mode="json")
        decision = may_step_case(svc, user.staff, kind, step, state, data)
        if not decision:
            raise ApiError(403, "forbidden", decision.reason, decision.field)
        workflow, workflow_id = CASE_WORKFLOWS[kind]
        path = (f"/contracts/{case_id}/plan/steps/{step}" if kind == "plan" else f"/{kind}s/{case_id}/steps/{step}")

        async def run(token: str | None) -> dict[str, Any]:
            answer = await cases._step(svc, f"{kind} {case_id}", workflow_id(case_id), workflow.step,
                                       StepCommand(step=step, actor=user.staff.id, data=data), token)
            return permissions.mask(user.staff, answer.model_dump(mode="json"), kind)

        idem = form.get("idem")
        await idempotent(svc, user.staff, str(idem) if idem else None, path, data, 200, run)
    except ValidationError as e:
        err = e.errors()[0]
        error, status = f"{'.'.join(str(p) for p in err['loc']) or step}: {err['msg']}", 422
    except ApiError as e:
        error, status = e.detail, e.status
    if error is None:
        return RedirectResponse(f"/console/cases/{kind}/{case_id}?done={step}", status_code=303)
    context = await case_context(user, svc, kind, case_id)
    return page(request, "case.html", user, status, error=f"{step} refused: {error}", **context)


def _case_workflows() -> dict[str, tuple[Any, Any]]:
    from workflows.complaint import ComplaintWorkflow, complaint_workflow_id
    from workflows.inspection import InspectionWorkflow, inspection_workflow_id
    from workflows.plan import PlanWorkflow, plan_workflow_id
    from workflows.returns import ReturnWorkflow, return_workflow_id
    return {"complaint": (ComplaintWorkflow, complaint_workflow_id), "return": (ReturnWorkflow, return_workflow_id),
            "inspection": (InspectionWorkflow, inspection_workflow_id), "plan": (PlanWorkflow, plan_workflow_id)}


CASE_WORKFLOWS = _case_workflows()


# --- reports ----------------------------------------------------------------------------------------

def _this_month() -> str:
    now = datetime.now(CST)
    return f"{now.year:04d}-{now.month:02d}"


@router.get("/reports", response_class=HTMLResponse)
async def reports_page(request: Request, user: ConsoleUser, svc: Svc, models: ReadModelsDep) -> Response:
    from api.console import reports
    _require(permissions.may_read_reports(user.staff))
    month = request.query_params.get("month") or _this_month()
    if not reports.valid_month(month):
        raise Refused(422, "Bad month", f"month: {month!r} is not a month as YYYY-MM")
    sections = await svc.io(reports.sections, models, svc.org, month)
    return page(request, "reports.html", user, month=month, sections=sections)


@router.get("/reports/{name}.{ext}")
async def report_download(request: Request, name: str, ext: str, user: ConsoleUser, svc: Svc,
                          models: ReadModelsDep) -> Response:
    from api.console import reports
    _require(permissions.may_read_reports(user.staff))
    month = request.query_params.get("month") or _this_month()
    if not reports.valid_month(month) or name not in reports.REPORTS or ext not in ("csv", "xlsx"):
        raise Refused(404, "No such report", f"no report {name}.{ext} for {month!r}")
    rows = await svc.io(reports.rows, models, name, month)
    filename = f"{name}-{month}.{ext}"
    headers = {"Content-Disposition": f'attachment; filename="{filename}"'}
    if ext == "csv":
        from api.reports import to_csv
        return Response(to_csv(rows), media_type="text/csv; charset=utf-8", headers=headers)
    return Response(reports.to_xlsx(name, rows), headers=headers,
                    media_type="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet")
