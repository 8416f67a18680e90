"""The scripted month of tickets the read-model tests run over (March 2025, China Standard
Time): its events, appending them to a store, the `month` fixture (the month caught up
on each store) and a snapshot of every read model table."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any

import pytest

from activities.store import open_store
from domain import policy
from domain.policy import CST
from domain.ticket import Ticket
from projections import candidates, departments, escalations, faults, scorecard, sla_compliance, ticket_list
from projections.base import ReadModel
from projections.escalations import EscalationLog
from projections.runner import ReadModels, Runner

STORES = ["sqlite", "postgres"]
MS = timedelta(milliseconds=1)


def cst(month: int, day: int, hour: int, minute: int = 0) -> datetime:
    return datetime(2025, month, day, hour, minute, tzinfo=CST)


def _iso(deadlines: dict) -> dict[str, str]:
    return {goal: at.isoformat() for goal, at in deadlines.items()}


def ticket_events(tid: str, customer: str, severity: str, zone: str, reported: datetime, engineer: str, *,
                  arrive: datetime | None = None, remote: datetime | None = None, resolve: datetime | None = None,
                  satisfaction: int | None = None, ratings: tuple[int, int] | None = None,
                  alarms: tuple[str, ...] = (), symptoms: str = "HIS down in all wards",
                  cause: str = "failed PSU on the DB server", product_model: str = "HIS-Server R740"):
    """One ticket's events as the workflow records them: (at, ticket, event type, actor, data)."""
    deadlines = policy.deadlines(reported, severity, zone)
    (goal, deadline), = deadlines.items()
    window = deadline - reported
    superior = {"E001": "S001", "E002": "S002"}[engineer]
    alert = {"goal": goal, "deadline": deadline.isoformat(), "responsible": engineer}
    out = [
        (reported, tid, "Reported", "C001", {
            "customer": customer, "site": "Kunming", "contact_phone": "0871-6300000", "product_model": product_model,
            "symptoms": symptoms, "channel": "phone", "severity": "general", "zone": "A",
            "deadlines": _iso(policy.deadlines(reported, "general", "A"))}),
        (reported + timedelta(minutes=5), tid, "Triaged", "S001", {
            "severity": severity, "zone": zone, "service_category": "free", "deadlines": _iso(deadlines),
            "previous_deadlines": _iso(policy.deadlines(reported, "general", "A"))}),
        (reported + timedelta(minutes=10), tid, "Dispatched", superior, {"engineer": engineer, "travel_mode": "taxi"}),
    ]
    if "warning" in alarms:
        out.append((reported + window * 0.75, tid, "SlaWarned", "weibao", {
            **alert, "level": 0, "to": engineer, "to_name": engineer, "reason": "75% of the window has passed"}))
    if "breach" in alarms:
        out.append((deadline + MS, tid, "SlaBreached", "weibao", alert))
        out.append((deadline + MS, tid, "Escalated", "weibao", {
            **alert, "level": 1, "to": superior, "to_name": superior, "reason": f"{goal} deadline missed"}))
    if "leadership" in alarms:
        out.append((deadline + window / 2 + MS, tid, "Escalated", "weibao", {
            **alert, "level": 2, "to": "L001", "to_name": "L001", "reason": "still unmet half a window later"}))
    if arrive:
        out.append((arrive, tid, "ArrivedOnSite", engineer, {"staff_id_shown": True}))
    if remote:
        out.append((remote, tid, "RemoteSessionStarted", engineer, {"customer_consent": True, "consent_by": "IT"}))
    if resolve:
        out.append((resolve, tid, "Resolved", engineer, {"cause": cause, "resolution": "replaced the part",
                                                         "parts_used": ["PSU"], "difficult": False, "summary": None}))
    if satisfaction:
        out.append((resolve + timedelta(hours=1), tid, "SignedOff", engineer,
                    {"signature": "Dr. Li", "satisfaction": satisfaction, "opinion": ""}))
    if ratings:
        out.append((resolve + timedelta(hours=2), tid, "Closed", "S001",
                    {"time_rating": ratings[0], "quality_rating": ratings[1], "comment": ""}))
    return out


KUNMING, YUNNAN, DALI = "Kunming First People's Hospital", "Yunnan Cancer Hospital", "Dali Prefecture Hospital"

# The month. Hours are from the report; deadlines from the window table.
MONTH = sorted([
    # T1 critical A (on site 4 h): arrives at 2 h, resolved at 5 h.
    *ticket_events("T1", KUNMING, "critical", "A", cst(3, 3, 9), "E001", arrive=cst(3, 3, 11), resolve=cst(3, 3, 14),
                   satisfaction=5, ratings=(5, 4)),
    # T2 major A (resolved 6 h): arrives at 2 h, resolved at 5 h.
    *ticket_events("T2", KUNMING, "major", "A", cst(3, 5, 10), "E001", arrive=cst(3, 5, 12), resolve=cst(3, 5, 15),
                   satisfaction=4, ratings=(4, 5)),
    # T3 general A (resolved by 3/12 00:00): arrives at 25 h, resolved at 50 h: warned, breached, escalated.
    *ticket_events("T3", YUNNAN, "general", "A", cst(3, 10, 8), "E001", arrive=cst(3, 11, 9),
                   resolve=cst(3, 12, 10), satisfaction=2, ratings=(2, 3), alarms=("warning", "breach"),
                   symptoms="护士站打印机卡纸 nurse station printer jams", cause="worn pickup roller 搓纸轮磨损",
                   product_model="Printer LX-310"),
    # T4 critical B (on site 48 h): arrives at 70 h, resolved at 75 h: warned, breached, escalated.
    *ticket_events("T4", DALI, "critical", "B", cst(3, 20, 12), "E002", arrive=cst(3, 23, 10),
                   resolve=cst(3, 23, 15), satisfaction=3, ratings=(2, 4), alarms=("warning", "breach")),
    # T5 general A reported 3/31 20:00, resolved 4/1 01:00 CST (still 3/31 in UTC): an April ticket.
    *ticket_events("T5", YUNNAN, "general", "A", cst(3, 31, 20), "E002", arrive=cst(3, 31, 23),
                   resolve=cst(4, 1, 1), satisfaction=5, ratings=(5, 5)),
    # T6 major A, resolved remotely at 3 h: no arrival.
    *ticket_events("T6", DALI, "major", "A", cst(3, 25, 9), "E002", remote=cst(3, 25, 10), resolve=cst(3, 25, 12),
                   satisfaction=5, ratings=(5, 5)),
    # T7 general A, dispatched, never resolved, no alarm recorded: open.
    *ticket_events("T7", KUNMING, "general", "A", cst(3, 28, 9), "E001"),
    # T8 general B (on site 48 h): arrives at 73 h, resolved at 75 h; leadership told at 72 h.
    *ticket_events("T8", DALI, "general", "B", cst(3, 15, 9), "E002", arrive=cst(3, 18, 10),
                   resolve=cst(3, 18, 12), satisfaction=1, ratings=(1, 2),
                   alarms=("warning", "breach", "leadership")),
], key=lambda e: (e[0], e[1]))


def append(app, events) -> None:
    """Append scripted events in business-time order, each with its own save."""
    for at, tid, kind, actor, data in events:
        if kind == "Reported":
            t = Ticket.open(tid, at=at, actor=actor, command_id=f"ticket-{tid}:report", data=data)
        else:
            t = app.aggregate("ticket", tid)
            t.record(kind, at=at, actor=actor, command_id=f"ticket-{tid}:{t.version + 1}", data=data)
        app.save(t)


def version_of(app, tid: str, kind: str, nth: int = 0) -> int:
    return [e["version"] for e in app.history("ticket", tid) if e["type"] == kind][nth]


@pytest.fixture(params=STORES)
def month(request, use_store):
    """The scripted month in a fresh store of each kind, caught up: (app, models)."""
    use_store(request.param)
    app = open_store()
    append(app, MONTH)
    models = ReadModels()
    runner = Runner(app, models, batch_size=7, workers=2)  # many small batches
    assert runner.catch_up() == len(MONTH)
    runner.close()
    yield app, models
    models.close()


def view(models: ReadModels, model: type[ReadModel]):
    return models.view(model.name)


def by(rows: list[dict], key: str) -> dict[Any, dict]:
    return {r[key]: r for r in rows}


# ------------------------------------------------------------------ figures by hand


def snapshot(models: ReadModels) -> dict[str, list[dict]]:
    """Every read model table, rows sorted, without anything that depends on batching."""
    out = {}
    for name, p in models.projections.items():
        for table in p.tables():
            key = ", ".join(table.key)
            out[table.name] = p.view.query(f"SELECT * FROM {table.name} ORDER BY {key}")
    return out
