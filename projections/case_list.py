"""Case list (GET /complaints, /returns, /plans, /inspections and the console's queue): one
row per complaint, return/exchange, maintenance plan and visit, with its status, customer,
handling department, responsible person, next deadline and SLA state; and for fault
tickets only their alarms (warned goals, breaches, the escalations and whom they went
to), which the ticket list does not keep.

A case's row is its kind's one fold (`domain.kinds`) applied to the recorded events, so
the list says what the case's own page says. Ticket events other than alarms are not
applied here (the ticket list keeps the rest), so the tickets' volume costs this read
model little. Contacts and confidential notes are in the folded state only, never in a
column a list returns."""
from __future__ import annotations

from datetime import datetime
from functools import cache
from typing import Any, Sequence

from eventsourcing.dispatch import singledispatchmethod
from eventsourcing.persistence import Tracking

from domain import kinds, permissions
from domain.chained import ChainedCase
from domain.ticket import Ticket
from projections.base import Batch, EventKeys, ReadModel, ReadModelView, Table, event_keys, iso, org
from projections.quarantine import Undecodable

CASES = Table(
    "case_list",
    (("originator_id", "TEXT"), ("kind", "TEXT"), ("case_id", "TEXT"), ("status", "TEXT"), ("is_open", "INT"),
     ("customer", "TEXT"), ("department", "TEXT"), ("responsible", "TEXT"), ("people", "JSON"),
     ("ticket_id", "TEXT"), ("opened_at", "TEXT"), ("next_deadline", "TEXT"), ("deadlines", "JSON"),
     ("met", "JSON"), ("warned", "JSON"), ("breached", "JSON"), ("escalations", "JSON"), ("escalation_level", "INT"),
     ("state", "JSON"), ("version", "INT"), ("updated_at", "TEXT")),
    key=("originator_id",),
    indexes=(("kind", "opened_at"), ("kind", "status"), ("kind", "customer"), ("case_id",)),
)

LIST_KINDS = ("complaint", "return", "plan", "inspection")
TICKET_ALARMS = frozenset({Ticket.SlaWarned, Ticket.SlaBreached, Ticket.Escalated})
_KIND_OF = {agg: name for name, agg in kinds.AGGREGATES.items()}


@cache
def _kind_of(cls: type) -> str | None:
    """The case kind of an event class (None for a ticket's event that is not an alarm)."""
    if cls in TICKET_ALARMS:
        return "ticket"
    owner = cls.__qualname__.partition(".")[0]
    for agg, name in _KIND_OF.items():
        if agg.__name__ == owner and name != "ticket":
            return name
    return None


def _people(kind: str, state: Any) -> list[str]:
    """Who a case is "theirs" for an engineer: a visit's responsible engineer and team."""
    if kind == "inspection":
        return sorted({p for p in [state.responsible, *(state.team or [])] if p})
    return [state.responsible] if getattr(state, "responsible", None) else []


def _department(kind: str, state: Any) -> str | None:
    department = permissions.handling_department(kind, state)
    if department is None and kind in ("inspection", "plan"):
        person = org().get(getattr(state, "responsible", None))
        department = person.department if person else None
    return department


def _opened_at(kind: str, state: Any, at: str) -> str:
    for name in ("registered_at", "requested_at", "started_at"):
        value = getattr(state, name, None)
        if value is not None:
            return iso(value)
    if kind == "inspection" and state.due_at is not None:
        return iso(state.due_at)
    return at


class CaseList(ReadModel):
    name = "case_list"
    title = "Case list (complaints, returns, plans, visits; ticket alarms)"
    version = 1
    tickets = CASES

    def process_batch(self, items: Sequence[tuple[Any, Tracking]], expected: int | None,
                      keys: EventKeys | None = None) -> None:
        """Only the events this read model uses (every case kind's but the tickets' steps, and
        any that cannot be decoded, to be quarantined): the batch's last event always, so
        the position moves to the end of the batch."""
        if not items:
            return
        wanted = [x for x in items if _kind_of(type(x[0])) is not None or isinstance(x[0], Undecodable)]
        if not wanted or wanted[-1] is not items[-1]:
            wanted.append(items[-1])
        super().process_batch(wanted, expected, event_keys(wanted))

    @singledispatchmethod
    def apply(self, event: Any, batch: Batch) -> None:
        kind = _kind_of(type(event))
        if kind == "ticket":
            self._ticket_alarm(event, batch)
        elif kind is not None:
            self._fold(kind, event, batch)

    def _ticket_alarm(self, e: Any, batch: Batch) -> None:
        row = batch.ticket(e)
        if row is None:
            row = batch.new_ticket(e, kind="ticket", warned=[], breached=[], escalations=[], escalation_level=0)
        name = type(e).__name__
        goal = e.data.get("goal")
        if name == "SlaWarned" and goal not in row["warned"]:
            row["warned"].append(goal)
        elif name == "SlaBreached" and goal not in row["breached"]:
            row["breached"].append(goal)
        elif name == "Escalated":
            level = int(e.data.get("level", 1))
            row["escalations"].append({"goal": goal, "level": level, "to": e.data.get("to"),
                                       "to_name": e.data.get("to_name"), "at": batch.at(e)})
            row["escalation_level"] = max(row["escalation_level"] or 0, level)
        row["version"], row["updated_at"] = e.originator_version, batch.at(e)

    def _fold(self, kind: str, e: Any, batch: Batch) -> None:
        aggregate: type[ChainedCase] = kinds.AGGREGATES[kind]
        row = batch.ticket(e)
        if row is None:
            if e.originator_version != 1:
                return  # its opening was never seen
            state = aggregate.new_state(e.data.get(aggregate.ID_FIELD, ""))
            row = batch.new_ticket(e, kind=kind)
        else:
            state = aggregate.new_state("").model_validate(row["state"])
        state = aggregate.fold(state, type(e).__name__, e.data, e.at, e.actor)
        at = batch.at(e)
        deadlines = {g: iso(w.deadline) for g, w in state.windows.items()}
        met = {g: iso(v) for g, v in state.met.items()}
        unmet = [d for g, d in deadlines.items() if g not in met]
        open_ = state.is_open
        row.update(
            case_id=state.case_id, status=state.status, is_open=1 if open_ else 0,
            customer=getattr(state, "customer", None) or None, department=_department(kind, state),
            responsible=state.holder, people=_people(kind, state),
            ticket_id=getattr(state, "ticket_id", None), opened_at=row.get("opened_at") or _opened_at(kind, state, at),
            next_deadline=min(unmet) if unmet and open_ else None, deadlines=deadlines, met=met,
            warned=sorted({a.goal for a in state.warnings}), breached=sorted({a.goal for a in state.breaches}),
            escalations=[{"goal": a.goal, "level": a.level, "to": a.to, "to_name": a.to_name, "at": iso(a.at)}
                         for a in state.escalations],
            escalation_level=max([a.level or 0 for a in state.escalations], default=0),
            state=state.model_dump(mode="json"), version=e.originator_version, updated_at=at)


SUMMARY = ("kind", "case_id", "status", "customer", "department", "responsible", "people", "ticket_id", "opened_at",
           "next_deadline", "deadlines", "met", "warned", "breached", "escalations", "escalation_level", "version",
           "updated_at")


def _summary(row: dict[str, Any]) -> dict[str, Any]:
    return {k: row[k] for k in SUMMARY}


def list_cases(kind: str, *, view: ReadModelView, status: str | None = None, customer: str | None = None,
               department: str | None = None, person: str | None = None, start: str | None = None,
               end: str | None = None, open_only: bool = False, limit: int = 50,
               offset: int = 0) -> list[dict[str, Any]]:
    """Cases of `kind`, newest first: `start` <= opened_at < `end` (ISO UTC text); `person`
    keeps the cases whose responsible or team includes them. No contact is returned."""
    where, params = ["kind = ?"], [kind]
    for column, value in (("status", status), ("customer", customer), ("department", department)):
        if value is not None:
            where.append(f"{column} = ?"), params.append(value)
    if open_only:
        where.append("is_open = 1")
    if start is not None:
        where.append("opened_at >= ?"), params.append(start)
    if end is not None:
        where.append("opened_at < ?"), params.append(end)
    if person is not None:  # the JSON text holds the ids quoted
        where.append("(responsible = ? OR people LIKE ?)"), params.extend([person, f'%"{person}"%'])
    rows = view.select(CASES, " AND ".join(where), params, order="opened_at DESC, case_id",
                       limit=max(0, min(int(limit), 1000)), offset=max(0, int(offset)))
    return [_summary(r) for r in rows]


def ticket_alarms(originator_ids: list[str], *, view: ReadModelView) -> dict[str, dict[str, Any]]:
    """The alarms of the given tickets (by aggregate id): warned, breached, escalations."""
    out: dict[str, dict[str, Any]] = {}
    for i in range(0, len(originator_ids), 500):
        chunk = originator_ids[i:i + 500]
        if not chunk:
            continue
        rows = view.select(CASES, f"kind = 'ticket' AND originator_id IN ({','.join('?' * len(chunk))})", chunk)
        out.update({r["originator_id"]: r for r in rows})
    return out


def get_case_row(kind: str, case_id: str, *, view: ReadModelView) -> dict[str, Any] | None:
    rows = view.select(CASES, "kind = ? AND case_id = ?", [kind, case_id])
    return _summary(rows[0]) if rows else None


def _sortable(value: str | None) -> str:
    return value or "9999"


def open_cases(*, view: ReadModelView, kinds_: Sequence[str] = LIST_KINDS, limit: int = 500) -> list[dict[str, Any]]:
    """Open cases of the given kinds, the next deadline first (none last)."""
    marks = ",".join("?" * len(kinds_))
    rows = view.select(CASES, f"kind IN ({marks}) AND is_open = 1", list(kinds_),
                       order="CASE WHEN next_deadline IS NULL THEN 1 ELSE 0 END, next_deadline, case_id", limit=limit)
    return [_summary(r) for r in rows]


def now_iso() -> str:
    return iso(datetime.now().astimezone())
