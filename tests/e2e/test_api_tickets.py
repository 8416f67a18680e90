"""The HTTP API end to end: real app, real worker, time-skipping server, real stores."""
from __future__ import annotations

import asyncio
from datetime import datetime, timedelta, timezone
from typing import Any

import psycopg

from activities.record import Recorder

from tests.api_fixtures import FIX, Api, api, pg_api  # noqa: F401 - fixtures
from tests.conftest import PG_DBNAME



async def replay_matches(api: Api, ticket_id: str, answers: dict[int, dict[str, Any]]) -> None:
    """Every state the API answered equals the state rebuilt at its version and at its time."""
    for version, answered in answers.items():
        r = await api.get(f"/tickets/{ticket_id}", "M001", version=version)
        assert r.status_code == 200, r.text
        assert r.json() == answered, f"version {version}"
    history = (await api.get(f"/tickets/{ticket_id}/history", "M001")).json()["events"]
    at = {e["version"]: datetime.fromisoformat(e["at"]) for e in history}
    for version, answered in answers.items():
        r = await api.get(f"/tickets/{ticket_id}", "M001", as_of=at[version].isoformat())
        assert r.status_code == 200, r.text
        same_moment = max(v for v in at if at[v] <= at[version])  # events sharing one instant
        assert r.json() == answers.get(same_moment, r.json()), f"as_of {at[version]}"
        assert r.json()["version"] == same_moment


async def test_contract_repair_taken_back_with_a_backup_unit_walks_report_to_close(api: Api):
    tid = await api.report(confidential_notes="iDRAC root password: hunter2")
    answers: dict[int, dict[str, Any]] = {}
    first = await api.get(f"/tickets/{tid}", "S001")
    answers[1] = first.json()
    steps = [
        ("triage", "S001", dict(severity="critical", zone="A", service_category="contract")),
        ("dispatch", "S001", dict(engineer="E001", travel_mode="taxi")),
        ("arrive", "E001", dict(staff_id_shown=True)),
        ("provide-backup", "E001", dict(unit="R740 spare #3")),
        ("take-back", "E001", dict(receipt_no="RC-2026-0042", items=["R740 chassis", "RAID controller"])),
        ("return-equipment", "E001", dict(receipt_no="RC-2026-0042")),
        ("resolve", "E001", FIX),
        ("sign-off", "E001", dict(signature="Li Wei", satisfaction=5, opinion="quick")),
        ("retrieve-backup", "E001", dict(unit="R740 spare #3")),
        ("close", "S001", dict(time_rating=5, quality_rating=4)),
    ]
    for name, who, data in steps:
        state = await api.ok(tid, name, who, **data)
        answers[state["version"]] = state
    assert state["status"] == "closed" and state["version"] == 11
    assert state["service_category"] == "contract" and state["assignee"] == "E001"
    assert state["backup_unit"] is None and state["equipment_receipt"] is None
    assert state["met"]["on_site"] and not state["breaches"]

    history = (await api.get(f"/tickets/{tid}/history", "M001")).json()["events"]
    assert [e["type"] for e in history] == [
        "Reported", "Triaged", "Dispatched", "ArrivedOnSite", "BackupUnitProvided", "EquipmentTakenBack",
        "EquipmentReturned", "Resolved", "SignedOff", "BackupUnitRetrieved", "Closed"]
    assert [e["actor"] for e in history][:3] == ["C001", "S001", "S001"]
    assert all(set(e) >= {"version", "type", "at", "actor", "data", "recorded_at"} for e in history)
    assert history[5]["data"]["receipt_no"] == "RC-2026-0042"

    await replay_matches(api, tid, answers)
    assert (await api.get(f"/tickets/{tid}", "M001")).json() == state  # the closed workflow still answers
    v = (await api.get(f"/tickets/{tid}/verify", "M001")).json()
    assert v == {"ticket_id": tid, "intact": True, "versions": 11, "first_bad_version": None, "detail": v["detail"],
                 "mismatched_versions": [], "missing_versions": [], "unrecorded_versions": [], "differing_versions": [],
                 "delivery_versions": [], "cross_check": "hashes"}  # the closed workflow's own record agrees


async def test_paid_repair_quotes_and_accepts_the_fee_before_work_and_takes_the_unit_back(api: Api):
    tid = await api.report(severity="major")
    await api.ok(tid, "triage", "S001", severity="major", zone="A", service_category="paid")
    await api.ok(tid, "dispatch", "S001", engineer="E001", travel_mode="company_car")
    await api.ok(tid, "arrive", "E001", staff_id_shown=True)
    early = await api.step(tid, "take-back", "E001", receipt_no="RC-7", items=["terminal"])
    assert early.status_code == 409 and "fee accepted" in early.json()["detail"]
    backup = await api.step(tid, "provide-backup", "E001", unit="spare terminal")
    assert backup.status_code == 409 and "warranty" in backup.json()["detail"]
    quoted = await api.ok(tid, "quote-fee", "E001", amount_yuan="850.00", items=["PSU", "labour 2h"])
    assert quoted["fee_quoted_yuan"] == "850.00" and not quoted["fee_accepted"]
    assert (await api.ok(tid, "accept-fee", "E001", accepted_by="Dr. Li, IT office"))["fee_accepted"]
    await api.ok(tid, "take-back", "E001", receipt_no="RC-7", items=["terminal"])
    wrong = await api.step(tid, "return-equipment", "E001", receipt_no="RC-8")
    assert wrong.status_code == 409 and "RC-7" in wrong.json()["detail"]
    await api.ok(tid, "return-equipment", "E001", receipt_no="RC-7")
    await api.ok(tid, "resolve", "E001", **FIX)
    await api.ok(tid, "sign-off", "E001", signature="Dr. Li", satisfaction=4)
    closed = await api.ok(tid, "close", "S001", time_rating=4, quality_rating=5)
    assert closed["status"] == "closed" and closed["service_category"] == "paid"
    types = [e["type"] for e in api.history(tid)]
    assert types.count("FeeQuoted") == types.count("FeeAccepted") == 1
    assert types.index("FeeAccepted") < types.index("EquipmentTakenBack")


async def test_an_illegal_step_answers_409_naming_the_state_and_the_step(api: Api):
    tid = await api.report()
    r = await api.step(tid, "close", "S001", time_rating=5, quality_rating=5)
    assert r.status_code == 409
    body = r.json()
    assert set(body) == {"error", "detail", "field"} and body["error"] == "illegal_step"
    assert "'close'" in body["detail"] and "'reported'" in body["detail"]
    assert [e["type"] for e in api.history(tid)] == ["Reported"]


async def test_malformed_bodies_answer_422_naming_the_field(api: Api):
    tid = await api.report()
    await api.ok(tid, "triage", "S001", severity="critical", zone="A")
    await api.ok(tid, "dispatch", "S001", engineer="E001")
    cases = [
        ("arrive", {"staff_id_shown": False}, "staff_id_shown"),
        ("arrive", {}, "staff_id_shown"),
        ("arrive", {"staff_id_shown": True, "badge": 7}, "badge"),
        ("arrive", [1, 2], "body"),
        ("sign-off", {"signature": "x", "satisfaction": 9}, "satisfaction"),
        ("quote-fee", {"amount_yuan": "-3", "items": ["x"]}, "amount_yuan"),
        ("triage", {"severity": "apocalyptic", "zone": "A"}, "severity"),
    ]
    for step_name, body, field in cases:
        r = await api.post(f"/tickets/{tid}/steps/{step_name}", "S001", body)
        assert r.status_code == 422, (step_name, body, r.text)
        got = r.json()
        assert set(got) == {"error", "detail", "field", "errors"} and got["error"] == "invalid"
        assert got["field"] == field, (step_name, body, got)
        assert field in got["detail"] or field == "body"
    r = await api.http.post(f"/tickets/{tid}/steps/arrive", content=b"{not json",
                            headers={**api.auth("E001"), "content-type": "application/json"})
    assert r.status_code == 422 and r.json()["field"] == "body"
    r = await api.post("/tickets", "C001", {"customer": "x", "site": "y", "contact_phone": "call me",
                                            "product_model": "z", "symptoms": "s", "channel": "phone"})
    assert r.status_code == 422 and r.json()["field"] == "contact_phone"
    r = await api.step(tid, "dispatch", "S001", engineer="E999")
    assert r.status_code == 422 and r.json()["field"] == "engineer"
    for params, field in (({"as_of": "yesterday"}, "as_of"), ({"version": 0}, "version"),
                          ({"version": 1, "as_of": "2026-01-01T00:00:00Z"}, "version")):
        r = await api.get(f"/tickets/{tid}", "M001", **params)
        assert r.status_code == 422 and r.json()["field"] == field, r.text
    assert (await api.step(tid, "teleport", "S001")).status_code == 404
    assert [e["type"] for e in api.history(tid)] == ["Reported", "Triaged", "Dispatched"]


async def test_unknown_tickets_versions_and_times_answer_404(api: Api):
    assert (await api.get("/tickets/nosuch", "M001")).json()["error"] == "not_found"
    for path in ("/tickets/nosuch/history", "/tickets/nosuch/verify"):
        assert (await api.get(path, "M001")).status_code == 404
    assert (await api.step("nosuch", "arrive", "S001", staff_id_shown=True)).status_code == 404
    tid = await api.report()
    r = await api.get(f"/tickets/{tid}", "M001", version=5)
    assert r.status_code == 404 and r.json()["field"] == "version"
    r = await api.get(f"/tickets/{tid}", "M001", as_of="2001-01-01T00:00:00+08:00")
    assert r.status_code == 404 and r.json()["field"] == "as_of"


async def test_a_repeated_idempotency_key_answers_the_first_answer_and_records_one_event(api: Api):
    first = await api.post("/tickets", "C001", {**_report(), "symptoms": "PACS down"}, key="call-0001")
    again = await api.post("/tickets", "C001", {**_report(), "symptoms": "PACS down"}, key="call-0001")
    assert first.status_code == again.status_code == 201
    assert first.json() == again.json()
    tid = first.json()["ticket_id"]
    await api.ok(tid, "triage", "S001", severity="critical", zone="A")
    a = await api.step(tid, "dispatch", "S001", key="disp-1", engineer="E001", travel_mode="taxi")
    b = await api.step(tid, "dispatch", "S001", key="disp-1", engineer="E001", travel_mode="taxi")
    assert a.status_code == b.status_code == 200 and a.json() == b.json()
    concurrent = await asyncio.gather(*(api.step(tid, "arrive", "E001", key="arr-1", staff_id_shown=True)
                                        for _ in range(3)))
    assert {r.status_code for r in concurrent} == {200}
    assert len({r.text for r in concurrent}) == 1
    types = [e["type"] for e in api.history(tid)]
    assert types == ["Reported", "Triaged", "Dispatched", "ArrivedOnSite"]

    other = await api.step(tid, "dispatch", "S001", key="disp-1", engineer="E001", travel_mode="plane")
    assert other.status_code == 409
    assert other.json()["error"] == "idempotency_key_reused" and other.json()["field"] == "Idempotency-Key"
    assert "different request" in other.json()["detail"]
    elsewhere = await api.post("/tickets", "C001", _report(), key="disp-1")  # another person's key space
    assert elsewhere.status_code == 201
    assert [e["type"] for e in api.history(tid)] == types


async def test_a_refused_request_does_not_use_up_its_idempotency_key(api: Api):
    tid = await api.report()
    await api.ok(tid, "triage", "S001", severity="general", zone="B")
    early = await api.step(tid, "arrive", "S001", key="k1", staff_id_shown=True)
    assert early.status_code == 409
    await api.ok(tid, "dispatch", "S001", engineer="S001")
    later = await api.step(tid, "arrive", "S001", key="k1", staff_id_shown=True)
    assert later.status_code == 200 and later.json()["status"] == "in_progress"


async def test_a_retried_close_after_the_workflow_ended_answers_the_first_answer(api: Api):
    tid = await _resolved_and_signed(api)
    a = await api.step(tid, "close", "S001", key="close-1", time_rating=5, quality_rating=5)
    b = await api.step(tid, "close", "S001", key="close-1", time_rating=5, quality_rating=5)
    assert a.status_code == b.status_code == 200 and a.json() == b.json()
    c = await api.step(tid, "close", "S001", time_rating=5, quality_rating=5)
    assert c.status_code == 409 and c.json()["error"] == "illegal_step"
    assert [e["type"] for e in api.history(tid)].count("Closed") == 1


async def test_verify_names_the_version_edited_directly_in_postgresql(pg_api: Api):
    api = pg_api
    tid = await _resolved_and_signed(api)
    intact = (await api.get(f"/tickets/{tid}/verify", "A001")).json()
    assert intact["intact"] and intact["first_bad_version"] is None and intact["versions"] == 6

    with psycopg.connect(f"host=127.0.0.1 port=5432 dbname={PG_DBNAME} user=postgres", autocommit=True) as c:
        (table,) = c.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'public' "
                             "AND tablename LIKE '%events' AND tablename LIKE 'tickets%'").fetchone()
        changed = c.execute(
            f"UPDATE {table} SET state = convert_to(replace(convert_from(state, 'UTF8'), "
            "'\"E001\"', '\"E002\"'), 'UTF8') WHERE originator_version = 3").rowcount
        assert changed == 1

    tampered = (await api.get(f"/tickets/{tid}/verify", "M001")).json()
    assert tampered["intact"] is False and tampered["first_bad_version"] == 3
    assert "version 3" in tampered["detail"]
    history = (await api.get(f"/tickets/{tid}/history", "M001")).json()["events"]
    assert history[2]["data"]["engineer"] == "E002"  # the history shows what is stored; verify flags it


async def test_verify_notices_events_deleted_from_the_end(pg_api: Api):
    api = pg_api
    tid = await _resolved_and_signed(api)
    with psycopg.connect(f"host=127.0.0.1 port=5432 dbname={PG_DBNAME} user=postgres", autocommit=True) as c:
        (table,) = c.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'public' "
                             "AND tablename LIKE '%events' AND tablename LIKE 'tickets%'").fetchone()
        c.execute(f"DELETE FROM {table} WHERE originator_version >= 6")
    v = (await api.get(f"/tickets/{tid}/verify", "M001")).json()
    assert v["intact"] is False and v["first_bad_version"] == 6 and v["versions"] == 5


async def test_critical_zone_a_not_on_site_at_4h_shows_breach_and_escalation_to_superior(env, api: Api):
    tid = await api.report(severity="critical", zone="A")
    await api.ok(tid, "triage", "S001", severity="critical", zone="A")
    await api.ok(tid, "dispatch", "S001", engineer="E001", travel_mode="taxi")
    await env.sleep(timedelta(hours=4, minutes=1))
    state = await _settle(api, tid, lambda s: s["escalations"])
    assert [w["to"] for w in state["warnings"]] == ["E001"]
    assert [(b["goal"], b["responsible"]) for b in state["breaches"]] == [("on_site", "E001")]
    (esc,) = state["escalations"]
    assert (esc["level"], esc["to"], esc["responsible"]) == (1, "S001", "E001")
    rows = (await api.get("/tickets", "M001", breached="true")).json()["items"]
    assert [r["ticket_id"] for r in rows] == [tid] and rows[0]["escalation_level"] == 1
    late = await api.ok(tid, "arrive", "E001", staff_id_shown=True)
    assert late["breaches"] and late["status"] == "in_progress"


async def test_ticket_list_is_newest_first_filtered_and_paginated(api: Api):
    ids = [await api.report(customer=f"Hospital {i}") for i in range(5)]
    await api.ok(ids[1], "triage", "S001", severity="general", zone="A")
    await api.ok(ids[1], "dispatch", "S001", engineer="E001")
    page = (await api.get("/tickets", "M001", limit=2)).json()
    assert [r["ticket_id"] for r in page["items"]] == ids[::-1][:2] and page["next_offset"] == 2
    rest = (await api.get("/tickets", "M001", limit=10, offset=2)).json()
    assert [r["ticket_id"] for r in rest["items"]] == ids[::-1][2:] and rest["next_offset"] is None
    mine = (await api.get("/tickets", "M001", assignee="E001")).json()["items"]
    assert [(r["ticket_id"], r["status"]) for r in mine] == [(ids[1], "dispatched")]
    reported = (await api.get("/tickets", "M001", status="reported")).json()["items"]
    assert len(reported) == 4 and not (await api.get("/tickets", "M001", breached="true")).json()["items"]
    assert "contact_phone" not in page["items"][0]


async def test_a_ticket_whose_workflow_is_gone_is_answered_from_its_recorded_events(api: Api):
    """After Temporal's retention period a closed ticket's workflow is removed; the event
    store still holds the record."""
    from activities.record import LegacyTicketRecord

    at = datetime(2026, 3, 2, 1, 0, tzinfo=timezone.utc)
    acts = Recorder(api.services.store, api.services.org, None)
    acts.record(LegacyTicketRecord(ticket_id="archived1", command_id="old:report", event_type="Reported", at=at,
                              actor="C001", data=_report()))
    acts.record(LegacyTicketRecord(ticket_id="archived1", command_id="old:triage", event_type="Triaged", step="triage",
                              at=at + timedelta(minutes=5), actor="S001",
                              data={"severity": "major", "zone": "A", "service_category": "free"}))
    r = await api.get("/tickets/archived1", "M001")
    assert r.status_code == 200, r.text
    assert (r.json()["status"], r.json()["severity"], r.json()["version"]) == ("triaged", "major", 2)
    assert (await api.get("/tickets/archived1/verify", "M001")).json()["intact"]


def _report() -> dict[str, Any]:
    from tests.conftest import REPORT
    return {**REPORT, "severity": "critical", "zone": "A"}


async def _resolved_and_signed(api: Api) -> str:
    tid = await api.report()
    await api.ok(tid, "triage", "S001", severity="critical", zone="A", service_category="free")
    await api.ok(tid, "dispatch", "S001", engineer="E001")
    await api.ok(tid, "arrive", "E001", staff_id_shown=True)
    await api.ok(tid, "resolve", "E001", **FIX)
    await api.ok(tid, "sign-off", "E001", signature="Li Wei", satisfaction=5)
    return tid


async def _settle(api: Api, tid: str, predicate, seconds: float = 10.0) -> dict[str, Any]:
    """GET until `predicate(state)`: the worker may still be applying a timer just fired."""
    state: dict[str, Any] = {}
    for _ in range(int(seconds / 0.05)):
        state = (await api.get(f"/tickets/{tid}", "S001")).json()
        if predicate(state):
            return state
        await asyncio.sleep(0.05)
    raise AssertionError(f"condition never held; last state: {state}")
