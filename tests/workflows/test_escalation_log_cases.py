"""Issue 12: the escalation log, the candidates report and department accountability
count the warnings and escalations of every case kind. Complaints, a return and a
ticket are driven through their real workflows on the time-skipping server past their
windows — warning, breach with the level-1 escalation, leadership — and the read
models are caught up by the runner, on SQLite and PostgreSQL."""
from __future__ import annotations

import csv
import io
from datetime import datetime, timedelta
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from activities import config
from activities.outbox import Outbox
from activities.record import Recorder
from activities.store import open_store
from api import errors, reports
from api.db import Database
from api.deps import Services
from domain.policy import CST
from projections import candidates, departments, escalations
from projections.runner import ReadModels, Runner
from tests.case_helpers import (COMPLAINT, RETURN, ComplaintWorkflow, ReturnWorkflow, register_complaint,
                                request_return, settle, step)
from tests.conftest import REPORT, dispatch, report, sleep_until

H, MINUTE = timedelta(hours=1), timedelta(minutes=1)
ALARMS = {"SlaWarned": "warning", "Escalated": "escalation", "CustomerEscalated": "escalation",
          "LeadershipNotified": "escalation"}
SOURCES = {"CustomerEscalated": "customer", "LeadershipNotified": "emergency"}


@pytest.fixture(params=["sqlite", "postgres"])
def stack(request, use_store, org):
    """The activities over a fresh store of each kind (conftest's is SQLite only)."""
    use_store(request.param)
    outbox = Outbox()
    yield Recorder(open_store(), org, outbox)
    outbox.close()


def logged_from_history(store, kind: str, case_id: str) -> list[tuple]:
    """What the escalation log must say of a case: one row per recorded warning or escalation."""
    out = []
    for e in store.history(kind, case_id):
        if e["type"] in ALARMS:
            d = e["data"]
            level = 2 if e["type"] == "LeadershipNotified" else d.get("level", 0)
            target = d["to_staff"] if e["type"] == "CustomerEscalated" else d["to"]
            out.append((kind, case_id, e["version"], ALARMS[e["type"]], level, target,
                        SOURCES.get(e["type"], "window")))
    return out


def row_key(r: dict[str, Any]) -> tuple:
    return (r["case_kind"], r["case_id"], r["version"], r["kind"], r["level"], r["target"], r["source"])


async def test_complaints_returns_and_tickets_escalate_into_the_log_the_candidates_and_departments(
        env, worker, stack):
    # the first day of next month, 08:00 China time: every alarm below falls in one month
    now = (await env.get_current_time()).astimezone(CST)
    start = datetime(now.year + now.month // 12, now.month % 12 + 1, 1, 8, tzinfo=CST)
    await sleep_until(env, start)
    month = start.strftime("%Y-%m")
    store = stack.store

    # Three complaints nobody acknowledges: warned at 1.5 h, breached and escalated at 2 h,
    # leadership at 3 h; the handling department's head (M002) answers for the window.
    unanswered = [await register_complaint(env.client, worker, about_person="E002") for _ in range(3)]
    # One the customer takes to leadership at once, then answered in time; one emergency.
    asked, a = await register_complaint(env.client, worker, about_person="E002")
    await step(asked, ComplaintWorkflow, "escalate", "C001", to="leadership", reason="wants the manager to answer")
    emergency, em = await register_complaint(env.client, worker, category="abnormal_operation", emergency=True,
                                             description="the HIS is down in the emergency ward")
    for handle in (asked, emergency):
        await step(handle, ComplaintWorkflow, "acknowledge", "S002")
        await step(handle, ComplaintWorkflow, "reply", "S002", reply="answered", substantiated=False)
    # A return approved at once: the technical department's head (M003) has 72 h to inspect it.
    ret, r = await request_return(env.client, worker, delivery_date=start.date())
    await step(ret, ReturnWorkflow, "approve", "M002", approved=True)
    # A critical ticket in zone A nobody reaches: on site within 4 h, leadership at 6 h.
    ticket, t = await report(env.client, worker, severity="critical", zone="A")
    await dispatch(ticket, engineer="E001")

    await sleep_until(env, start + 3 * H + MINUTE)
    for handle, c in unanswered:
        await settle(handle, lambda s: len(s.escalations) == 2, workflow=ComplaintWorkflow)
        await step(handle, ComplaintWorkflow, "acknowledge", "S002")  # before the reply window warns (18 h)
        await step(handle, ComplaintWorkflow, "reply", "S002", reply="apologised", substantiated=False)
    await sleep_until(env, start + 108 * H + 2 * MINUTE)
    await settle(ret, lambda s: len(s.escalations) == 2, workflow=ReturnWorkflow)

    models = ReadModels()
    runner = Runner(open_store(), models, names=[escalations.EscalationLog.name, candidates.Candidates.name,
                                                 departments.DepartmentAccountability.name])
    assert runner.catch_up() > 0 and not runner.failed
    runner.close()
    log = escalations.escalation_log(models.view(escalations.EscalationLog.name))

    # -- the escalation log: every warning and escalation of every case, as recorded
    by_case: dict[tuple, list] = {}
    for row in log:
        by_case.setdefault((row["case_kind"], row["case_id"]), []).append(row)
    cases = [("complaint", c.case_id) for _, c in unanswered] + [
        ("complaint", a.case_id), ("complaint", em.case_id), ("return", r.case_id), ("ticket", t.case_id)]
    assert set(by_case) == set(cases)
    for kind, case_id in cases:
        assert [row_key(x) for x in by_case[(kind, case_id)]] == logged_from_history(store, kind, case_id)
    for _, c in unanswered:
        rows = by_case[("complaint", c.case_id)]
        assert [(x["kind"], x["level"], x["goal"], x["responsible"]) for x in rows] == [
            ("warning", 0, "acknowledged", "M002"), ("escalation", 1, "acknowledged", "M002"),
            ("escalation", 2, "acknowledged", "M002")]
        assert rows[-1]["target"] == "L001" and rows[-1]["target_name"]
        assert all(x["ticket_id"] is None and x["customer"] == COMPLAINT["customer"] for x in rows)
        assert [x["events"] for x in rows] == [[{"complaint_id": c.case_id, "versions": [x["version"]]}]
                                               for x in rows]
    (requested,) = by_case[("complaint", a.case_id)]
    assert (requested["kind"], requested["level"], requested["target"], requested["source"],
            requested["responsible"]) == ("escalation", 2, "L001", "customer", "E002")
    (notified,) = by_case[("complaint", em.case_id)]
    assert (notified["level"], notified["target"], notified["source"]) == (2, "L001", "emergency")
    returned = by_case[("return", r.case_id)]
    assert [(x["kind"], x["level"], x["goal"], x["responsible"], x["source"]) for x in returned] == [
        ("warning", 0, "inspection", "M003", "window"), ("escalation", 1, "inspection", "M003", "window"),
        ("escalation", 2, "inspection", "M003", "window")]
    assert returned[0]["target"] == "M003" and returned[-1]["target"] == "L001"
    assert returned[-1]["customer"] == RETURN["customer"]
    assert returned[-1]["events"] == [{"return_id": r.case_id, "versions": [returned[-1]["version"]]}]
    # a ticket's rows are as they were, and say their kind and case too
    tickets = by_case[("ticket", t.case_id)]
    assert [(x["kind"], x["level"], x["responsible"]) for x in tickets] == [
        ("warning", 0, "E001"), ("escalation", 1, "E001"), ("escalation", 2, "E001")]
    assert all(x["ticket_id"] == x["case_id"] == t.case_id and x["customer"] == REPORT["customer"]
               for x in tickets)
    assert [x["events"] for x in tickets] == [[{"ticket_id": t.case_id, "versions": [x["version"]]}]
                                              for x in tickets]

    # -- the candidates: the complaints' leadership escalations and breaches count for M002
    got = {(c["rule"], c["subject"]): c for c in
           candidates.candidates(models.view(candidates.Candidates.name), month)}
    m002 = got[("escalated_to_leadership", "M002")]
    assert m002["figures"] == {"leadership_escalations": 3}  # the customer's own request counts against nobody
    assert sorted(ref["complaint_id"] for ref in m002["events"]) == sorted(c.case_id for _, c in unanswered)
    assert got[("repeated_breaches", "M002")]["figures"] == {"breaches": 3}
    assert got[("department_repeated_breaches", "project")]["figures"] == {"breaches": 3}
    m003 = got[("escalated_to_leadership", "M003")]
    assert m003["events"] == [{"return_id": r.case_id, "versions": [returned[-1]["version"]]}]
    assert got[("escalated_to_leadership", "E001")]["events"] == [
        {"ticket_id": t.case_id, "versions": [tickets[-1]["version"]]}]

    # -- department accountability, for the same facts
    deps = {d["department"]: d for d in departments.department_accountability(
        models.view(departments.DepartmentAccountability.name), month)}
    assert (deps["project"]["breaches"], deps["project"]["leadership_escalations"]) == (3, 3)
    assert (deps["rnd"]["breaches"], deps["rnd"]["leadership_escalations"]) == (1, 1)
    counted = [e["version"] for e in store.history("return", r.case_id) if e["type"] in ("SlaBreached", "Escalated")]
    assert deps["rnd"]["events"] == [{"return_id": r.case_id, "versions": counted}]

    # -- the reports API: the same rows, in JSON and CSV
    async with reports_api(models) as (http, token):
        res = await http.get("/reports/candidates", params={"month": month}, headers=token)
        assert res.status_code == 200, res.text
        rows = {(c["rule"], c["subject"]): c for c in res.json()["rows"]}
        assert rows[("escalated_to_leadership", "M002")]["figures"] == {"leadership_escalations": 3}
        res = await http.get("/reports/candidates", params={"month": month, "format": "csv"}, headers=token)
        assert res.status_code == 200, res.text
        leadership = next(c for c in csv.DictReader(io.StringIO(res.text.lstrip("\ufeff")))
                          if (c["rule"], c["subject"]) == ("escalated_to_leadership", "M002"))
        assert sorted(ref.split("@")[0] for ref in leadership["events"].split("; ")) == sorted(
            f"complaint:{c.case_id}" for _, c in unanswered)
        day = start.date().isoformat()
        res = await http.get("/reports/escalations", params={"from": day, "to": (start + 5 * 24 * H).date()},
                             headers=token)
        assert res.status_code == 200, res.text
        assert [row_key(x) for x in res.json()["rows"]] == [row_key(x) for x in log]
        res = await http.get("/reports/escalations", params={"from": day, "format": "csv"}, headers=token)
        assert res.status_code == 200 and f"return:{r.case_id}@" in res.text
    models.close()


class reports_api:
    """The reports router over `models`, with a manager's bearer token."""

    def __init__(self, models: ReadModels):
        self.models = models

    async def __aenter__(self) -> tuple[httpx.AsyncClient, dict[str, str]]:
        self.db = Database()
        app = FastAPI()
        errors.install(app)
        app.include_router(reports.router)
        app.state.services = Services.build(None, open_store(), config.load_org(), db=self.db,
                                            read_models=self.models)
        self.http = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://weibao")
        return self.http, {"Authorization": f"Bearer {app.state.services.tokens.issue('M001')}"}

    async def __aexit__(self, *exc: Any) -> None:
        await self.http.aclose()
        self.db.close()
