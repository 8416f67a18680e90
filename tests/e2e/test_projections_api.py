"""The reports API over the scripted month (real bearer tokens, real read models),
and a ticket driven through the real workflow on the time-skipping server reaching
the read models."""
from __future__ import annotations

import csv
import io

import httpx
import pytest
from fastapi import FastAPI

from activities import config
from activities.store import open_store
from api import errors, reports
from api.deps import Services
from api.db import Database
from domain.policy import CST
from projections import escalations, scorecard, ticket_list
from projections.runner import ReadModels, Runner
from tests.conftest import dispatch, report, settle, sleep_until
from tests.projection_fixtures import DALI, KUNMING, month  # noqa: F401 -- the scripted month, both stores


@pytest.fixture
async def api(month):  # noqa: F811
    tickets, models = month
    db = Database()
    app = FastAPI()
    errors.install(app)
    app.include_router(reports.router)
    # the API's own services (tokens, org) with no Temporal client: reports never use one
    app.state.services = Services.build(None, tickets, config.load_org(), db=db, read_models=models)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://weibao") as client:
        client.token = {sid: app.state.services.tokens.issue(sid) for sid in ("M001", "L001", "A001", "E001", "S001")}
        yield client
    db.close()


def auth(client, staff_id: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {client.token[staff_id]}"}


async def test_managers_leadership_and_auditors_read_the_engineer_scorecard(api):
    for who in ("M001", "L001", "A001"):
        r = await api.get("/reports/engineers", params={"month": "2025-03"}, headers=auth(api, who))
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["report"] == "engineers" and body["month"] == "2025-03" and body["position"] > 0
        e1 = next(row for row in body["rows"] if row["engineer"] == "E001")
        assert (e1["tickets_handled"], e1["resolved_on_time_share"], e1["hours_to_arrive_p90"]) == (3, 0.5, 25.0)
        assert {ref["ticket_id"] for ref in e1["events"]} == {"T1", "T2", "T3"}


@pytest.mark.parametrize("who,status", [("E001", 403), ("S001", 403), (None, 401)])
async def test_engineers_supervisors_and_strangers_read_no_reports(api, who, status):
    r = await api.get("/reports/departments", params={"month": "2025-03"},
                      headers=auth(api, who) if who else {"Authorization": "Bearer wb_nonsense"})
    assert r.status_code == status
    assert set(r.json()) == {"error", "detail", "field"}


@pytest.mark.parametrize("path,params,field", [
    ("/reports/engineers", {}, "month"),
    ("/reports/engineers", {"month": "2025-13"}, "month"),
    ("/reports/departments", {"month": "March"}, "month"),
    ("/reports/sla", {"month": "2025-03", "format": "xml"}, "format"),
    ("/reports/sla", {"month": "2025-03", "customer": " "}, "customer"),
    ("/reports/candidates", {"month": "2025-03", "mnth": "x"}, "mnth"),
    ("/reports/escalations", {"from": "yesterday"}, "from"),
    ("/reports/escalations", {"from": "2025-03-20", "to": "2025-03-10"}, "to"),
    ("/knowledge", {"limit": "0"}, "limit"),
])
async def test_a_bad_parameter_is_a_422_naming_the_field(api, path, params, field):
    r = await api.get(path, params=params, headers=auth(api, "A001"))
    assert r.status_code == 422
    assert r.json()["error"] == "invalid" and r.json()["field"] == field and field in r.json()["detail"]


async def test_csv_for_a_spreadsheet_keeps_the_event_references(api):
    r = await api.get("/reports/sla", params={"month": "2025-03", "customer": DALI, "format": "csv"},
                      headers=auth(api, "A001"))
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(r.text.lstrip("\ufeff"))))
    assert {(row["severity"], row["zone"], row["missed"]) for row in rows} == {
        ("critical", "B", "1"), ("general", "B", "1"), ("major", "A", "0")}
    assert all(row["events"].startswith("T") and "@" in row["events"] for row in rows)


async def test_escalations_between_two_days_in_china_standard_time(api):
    r = await api.get("/reports/escalations", params={"from": "2025-03-12", "to": "2025-03-22"},
                      headers=auth(api, "L001"))
    assert r.status_code == 200
    assert [(x["ticket_id"], x["level"]) for x in r.json()["rows"]] == [
        ("T3", 1), ("T8", 0), ("T8", 1), ("T8", 2), ("T4", 0), ("T4", 1)]


async def test_candidates_and_the_problem_library(api):
    r = await api.get("/reports/candidates", params={"month": "2025-03"}, headers=auth(api, "M001"))
    assert {(x["rule"], x["subject"]) for x in r.json()["rows"]} == {
        ("customer_no_breach_no_complaint", KUNMING), ("repeated_breaches", "E002"),
        ("escalated_to_leadership", "E002")}
    r = await api.get("/knowledge", params={"q": "卡纸"}, headers=auth(api, "A001"))
    assert [x["ticket_id"] for x in r.json()["rows"]] == ["T3"]
    assert r.json()["rows"][0]["cause"] == "worn pickup roller 搓纸轮磨损"


async def test_a_ticket_breached_on_the_workflow_reaches_the_read_models(env, worker, stack):
    """Real parts: the ticket workflow's timers record the breach and escalation; the
    runner folds them into the ticket list, the escalation log and the scorecard."""
    handle, state = await report(env.client, worker, "critical", "A")
    await dispatch(handle, "critical", "A", engineer="E002")
    deadline = state.deadlines["on_site"]
    await sleep_until(env, deadline + (deadline - state.reported_at) / 4)
    await settle(handle, lambda s: len(s.escalations) == 1)

    models = ReadModels()
    runner = Runner(open_store(), models, workers=1)
    runner.catch_up()
    runner.close()
    row = ticket_list.get_ticket_row(state.ticket_id, view=models.view("ticket_list"))
    assert (row["status"], row["assignee"], row["breached"], row["escalation_level"]) == ("dispatched", "E002",
                                                                                         True, 1)
    log = escalations.escalation_log(models.view("escalation_log"))
    assert [(x["kind"], x["level"], x["target"]) for x in log] == [("warning", 0, "E002"), ("escalation", 1, "S002")]
    month_ = deadline.astimezone(CST).strftime("%Y-%m")
    e2 = next(r for r in scorecard.engineer_scorecard(models.view("engineer_scorecard"), month_)
              if r["engineer"] == "E002")
    assert (e2["breaches"], e2["escalations_caused"], e2["tickets_handled"]) == (1, 1, 0)
    models.close()
