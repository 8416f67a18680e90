"""Who may do what, through the API: each role's allowed and refused calls, tokens,
masking for the auditor, and refusals that are logged."""
from __future__ import annotations

import logging

import pytest

from domain import permissions
from domain.permissions import TicketFacts
from tests.api_fixtures import FIX, Api, api  # noqa: F401 - fixture

NOTES = "iDRAC root / Hosp!2026; DB port 1521"


async def dispatched(api: Api, engineer: str = "E001", supervisor: str = "S001") -> str:
    tid = await api.report(confidential_notes=NOTES)
    await api.ok(tid, "triage", supervisor, severity="critical", zone="A")
    await api.ok(tid, "dispatch", supervisor, engineer=engineer)
    return tid


def refused(r, *words: str) -> None:
    assert r.status_code == 403, r.text
    body = r.json()
    assert set(body) == {"error", "detail", "field"} and body["error"] == "forbidden"
    for w in words:
        assert w in body["detail"], body


async def test_no_token_a_bad_token_and_a_revoked_token_answer_401(api: Api):
    tid = await api.report()
    for method, path in (("GET", "/tickets"), ("GET", f"/tickets/{tid}"), ("GET", f"/tickets/{tid}/history"),
                         ("GET", f"/tickets/{tid}/verify"), ("POST", "/tickets"),
                         ("POST", f"/tickets/{tid}/steps/triage")):
        for headers in ({}, {"Authorization": "Bearer wb_not-a-token"}, {"Authorization": "Basic dTpw"}):
            r = await api.http.request(method, path, headers=headers, json={})
            assert r.status_code == 401, (method, path, headers, r.text)
            assert r.json()["error"] == "unauthorized" and r.headers["www-authenticate"] == "Bearer"
    assert (await api.get(f"/tickets/{tid}", "M001")).status_code == 200
    assert api.services.tokens.revoke("M001") == 1
    r = await api.get(f"/tickets/{tid}", "M001")
    assert r.status_code == 401 and "revoked" in r.json()["detail"]


async def test_the_token_table_keeps_only_hashes(api: Api):
    token = api.token("E001")
    db = api.services.tokens.db
    assert db.fetchone("SELECT COUNT(*) FROM api_tokens WHERE token_hash = ?", (token,))[0] == 0
    assert db.fetchone("SELECT staff_id FROM api_tokens WHERE token_hash = ?",
                       (__import__("api.auth").auth.token_hash(token),))[0] == "E001"


async def test_clerk_reports_and_reads_but_takes_no_step(api: Api):
    r = await api.post("/tickets", "C001", {**_report(), "channel": "letter"})
    assert r.status_code == 201 and r.json()["state"]["received_by"] == "C001"
    tid = r.json()["ticket_id"]
    assert (await api.get(f"/tickets/{tid}", "C001")).json()["contact_phone"] == "0871-6300000"
    refused(await api.step(tid, "triage", "C001", severity="major", zone="A"), "clerk")


async def test_only_a_clerk_reports(api: Api):
    for who in ("E001", "S001", "M001", "L001", "A001"):
        refused(await api.post("/tickets", who, _report()), who, "clerk")


async def test_engineer_advances_only_tickets_assigned_to_them(api: Api):
    mine, theirs = await dispatched(api, "E001"), await dispatched(api, "S001")
    assert (await api.ok(mine, "arrive", "E001", staff_id_shown=True))["status"] == "in_progress"
    refused(await api.step(theirs, "arrive", "E001", staff_id_shown=True), "assigned to S001", "E001")
    refused(await api.step(mine, "triage", "E001", severity="general", zone="A"), "only a supervisor")
    refused(await api.step(mine, "dispatch", "E001", engineer="E001"), "only a supervisor")
    await api.ok(mine, "resolve", "E001", **FIX)
    await api.ok(mine, "sign-off", "E001", signature="x", satisfaction=3)
    refused(await api.step(mine, "close", "E001", time_rating=5, quality_rating=5), "only a supervisor")
    assert (await api.get(f"/tickets/{mine}", "E001")).status_code == 200
    assert (await api.get(f"/tickets/{mine}/history", "E001")).status_code == 200
    refused(await api.get(f"/tickets/{theirs}", "E001"), "E001")
    refused(await api.get(f"/tickets/{theirs}/history", "E001"))
    refused(await api.get(f"/tickets/{theirs}", "E001", version=1))
    listed = (await api.get("/tickets", "E001")).json()["items"]
    assert [r["ticket_id"] for r in listed] == [mine]
    refused(await api.get("/tickets", "E001", assignee="S001"), "own tickets")
    assert [e["type"] for e in api.history(theirs)] == ["Reported", "Triaged", "Dispatched"]


async def test_supervisor_works_their_departments_tickets_and_no_other(api: Api):
    tid = await dispatched(api, "E001", "S001")  # after-sales
    refused(await api.step(tid, "triage", "S002", severity="general", zone="A"), "after_sales", "S002")
    refused(await api.step(tid, "arrive", "S002", staff_id_shown=True), "after_sales")
    r = await api.step(tid, "dispatch", "S001", engineer="E002")  # a project-department engineer
    refused(r, "E002", "project")
    assert r.json()["field"] == "engineer"
    r = await api.step(tid, "dispatch", "S001", engineer="M001")
    assert r.status_code == 422 and r.json()["field"] == "engineer" and "manager" in r.json()["detail"]
    # everything an engineer may, on the department's ticket
    await api.ok(tid, "arrive", "S001", staff_id_shown=True)
    await api.ok(tid, "resolve", "S001", **FIX)
    await api.ok(tid, "sign-off", "S001", signature="x", satisfaction=4)
    assert (await api.ok(tid, "close", "S001", time_rating=4, quality_rating=4))["status"] == "closed"
    other = await dispatched(api, "E002", "S002")  # project department
    assert (await api.ok(other, "arrive", "E002", staff_id_shown=True))["assignee"] == "E002"


async def test_managers_and_leadership_read_and_replay_everything_and_change_nothing(api: Api):
    tid = await dispatched(api)
    for who in ("M001", "M003", "L001"):
        state = (await api.get(f"/tickets/{tid}", who)).json()
        assert state["contact_phone"] == "0871-6300000" and state["confidential_notes"] == NOTES
        assert (await api.get(f"/tickets/{tid}", who, version=2)).json()["status"] == "triaged"
        assert len((await api.get(f"/tickets/{tid}/history", who)).json()["events"]) == 3
        assert (await api.get(f"/tickets/{tid}/verify", who)).json()["intact"]
        assert [r["ticket_id"] for r in (await api.get("/tickets", who)).json()["items"]] == [tid]
        refused(await api.step(tid, "arrive", who, staff_id_shown=True), "does not change tickets")


async def test_auditor_reads_with_confidential_fields_masked_and_changes_nothing(api: Api):
    tid = await dispatched(api)
    for params in ({}, {"version": 1}, {"version": 3}):
        state = (await api.get(f"/tickets/{tid}", "A001", **params)).json()
        assert state["contact_phone"] == "***" and state["confidential_notes"] == "***", params
        assert state["customer"] == _report()["customer"]
    history = (await api.get(f"/tickets/{tid}/history", "A001")).json()["events"]
    reported = history[0]["data"]
    assert reported["contact_phone"] == "***" and reported["confidential_notes"] == "***"
    assert "0871" not in str(history) and "Hosp!" not in str(history)
    assert (await api.get(f"/tickets/{tid}/verify", "A001")).json()["intact"]
    refused(await api.step(tid, "arrive", "A001", staff_id_shown=True), "auditor")
    refused(await api.post("/tickets", "A001", _report()))


async def test_refusals_are_logged_with_who_what_and_why(api: Api, caplog):
    tid = await dispatched(api)
    with caplog.at_level(logging.WARNING, logger="weibao.api"):
        await api.step(tid, "arrive", "E002", staff_id_shown=True)
        await api.http.get(f"/tickets/{tid}")
    lines = [r.getMessage() for r in caplog.records if r.name == "weibao.api"]
    assert any("E002" in m and f"/tickets/{tid}/steps/arrive" in m and "403" in m and "assigned to E001" in m
               for m in lines), lines
    assert any("anonymous" in m and "401" in m for m in lines), lines
    assert not any("0871" in m or "Hosp!" in m for m in lines)


# --- the pure rules (domain.permissions), without a server ---------------------------

@pytest.mark.parametrize("who,step,facts,allowed", [
    ("S001", "triage", TicketFacts(), True),
    ("S002", "triage", TicketFacts(), True),  # nobody's yet: any supervisor may take it up
    ("S002", "triage", TicketFacts(supervisor="S001"), False),
    ("S001", "close", TicketFacts(assignee="E001", supervisor="S001"), True),
    ("S001", "resolve", TicketFacts(assignee="E002", supervisor="S002"), False),
    ("E001", "resolve", TicketFacts(assignee="E001"), True),
    ("E001", "resolve", TicketFacts(assignee="E002"), False),
    ("E001", "resolve", TicketFacts(), False),
    ("E001", "close", TicketFacts(assignee="E001"), False),
    ("C001", "arrive", TicketFacts(), False),
    ("M001", "arrive", TicketFacts(assignee="E001"), False),
    ("L001", "triage", TicketFacts(), False),
    ("A001", "triage", TicketFacts(), False),
])
def test_who_may_take_a_step(org, who, step, facts, allowed):
    decision = permissions.may_step_ticket(org, org.get(who), step, facts, {})
    assert bool(decision) is allowed
    assert allowed or decision.reason


def test_only_the_auditor_sees_masks(org):
    data = {"contact_phone": "123", "confidential_notes": None, "customer": "x"}
    assert permissions.mask(org.get("A001"), data) == {"contact_phone": "***", "confidential_notes": None,
                                                      "customer": "x"}
    for who in ("C001", "E001", "S001", "M001", "L001"):
        assert permissions.mask(org.get(who), data) == data


def _report() -> dict:
    from tests.conftest import REPORT
    return {**REPORT, "severity": "critical", "zone": "A"}
