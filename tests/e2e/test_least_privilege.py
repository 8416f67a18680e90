"""Least privilege through the API (domain/permissions.py): the customer's voice is recorded
by the department a case is routed to and leadership, never by the department complained
about; a maintenance contract is changed by its own department and leadership; an engineer
reads the visits assigned to them, not every plan, and no contact phone they do not need."""
from __future__ import annotations

import uuid
from datetime import timedelta

import httpx

from domain.maintenance import add_months, due_at, inspection_id
from domain.policy import CST
from tests.api_fixtures import Api, api  # noqa: F401 - fixture
from tests.case_helpers import COMPLAINT, PLAN, RETURN
from tests.conftest import sleep_until

PHONE = "0871-6300000"


def refused(r: httpx.Response, *words: str) -> None:
    assert r.status_code == 403, r.text
    assert all(w in r.json()["detail"] for w in words), r.json()["detail"]


def ok(r: httpx.Response) -> dict:
    assert r.status_code in (200, 201), r.text
    return r.json()


async def _complaint(api: Api, **fields) -> str:
    return ok(await api.post("/complaints", "C001", {**COMPLAINT, **fields}))["complaint_id"]


async def test_only_the_routed_department_and_leadership_record_what_the_customer_says(api: Api):
    cid = await _complaint(api, about_person="E002")  # service attitude: routed to the project department
    ok(await api.post(f"/complaints/{cid}/steps/acknowledge", "S002", {}))
    for who in ("C001", "S001", "M001", "M003"):  # after-sales' clerk, supervisor and head; R&D's head
        refused(await api.post(f"/complaints/{cid}/steps/escalate", who, {"to": "superior", "reason": "slow"}),
                "routed to department 'project'", "recorded by that department or leadership")
    assert ok(await api.post(f"/complaints/{cid}/steps/escalate", "S002",
                             {"to": "superior", "reason": "slow"}))["requested_level"] == 1
    assert ok(await api.post(f"/complaints/{cid}/steps/escalate", "L001",
                             {"to": "leadership", "reason": "still slow"}))["requested_level"] == 2
    ok(await api.post(f"/complaints/{cid}/steps/reply", "M002", {"reply": "sorry", "substantiated": True}))
    refused(await api.post(f"/complaints/{cid}/steps/close", "C001", {"satisfaction": 4}), "routed to")
    assert ok(await api.post(f"/complaints/{cid}/steps/close", "M002", {"satisfaction": 4}))["status"] == "closed"


async def test_the_head_of_the_department_complained_about_may_not_close_the_complaint_against_it(api: Api):
    cid = await _complaint(api, about_department="project")  # about the project department, routed to it
    ok(await api.post(f"/complaints/{cid}/steps/acknowledge", "S002", {}))
    refused(await api.post(f"/complaints/{cid}/steps/reply", "M002", {"reply": "fine", "substantiated": False}),
            "about M002")
    ok(await api.post(f"/complaints/{cid}/steps/reply", "S002", {"reply": "we were late", "substantiated": True}))
    refused(await api.post(f"/complaints/{cid}/steps/close", "M002", {"satisfaction": 5}), "about M002")
    history = (await api.get(f"/complaints/{cid}/history", "M001")).json()
    assert [e["type"] for e in history["events"]] == ["Registered", "Acknowledged", "Replied"]  # refusals record nothing
    assert ok(await api.post(f"/complaints/{cid}/steps/close", "S002", {"satisfaction": 3}))["status"] == "closed"


async def test_another_departments_head_may_not_close_a_complaint_about_their_department(api: Api):
    cid = await _complaint(api, about_department="after_sales")  # service: routed to the project department
    ok(await api.post(f"/complaints/{cid}/steps/acknowledge", "S002", {}))
    ok(await api.post(f"/complaints/{cid}/steps/reply", "S002", {"reply": "noted", "substantiated": True}))
    refused(await api.post(f"/complaints/{cid}/steps/close", "M001", {"satisfaction": 5}), "about M001")
    refused(await api.post(f"/complaints/{cid}/steps/close", "M003", {"satisfaction": 5}),
            "routed to department 'project'")  # any supervisor or head could, before


async def test_a_returns_confirmation_is_recorded_by_the_after_sales_hand_off_or_leadership(api: Api, env):
    today = (await env.get_current_time()).astimezone(CST).date()
    r = ok(await api.post("/returns", "C001", {**RETURN, "delivery_date": (today - timedelta(days=3)).isoformat()}))
    rid = r["return_id"]
    ok(await api.post(f"/returns/{rid}/steps/approve", "M002", {"approved": True}))
    ok(await api.post(f"/returns/{rid}/steps/inspect", "M003", {"defect_confirmed": True, "root_cause": "bad batch",
                                                                 "responsible_department": "project"}))
    ok(await api.post(f"/returns/{rid}/steps/refund", "F001", {"amount_yuan": "1200", "reference": "FIN-1"}))
    for who in ("M002", "F001", "S002"):
        refused(await api.post(f"/returns/{rid}/steps/confirm", who, {"confirmed_by": "Dr Li", "satisfaction": 5}),
                "'after_sales'")
    assert ok(await api.post(f"/returns/{rid}/steps/confirm", "C001",
                             {"confirmed_by": "Dr Li", "satisfaction": 5}))["status"] == "closed"


async def test_a_plan_is_started_changed_and_ended_by_the_contracts_department_or_leadership(api: Api, env):
    today = (await env.get_current_time()).astimezone(CST).date()
    contract = f"K-{uuid.uuid4().hex[:8]}"
    body = {**PLAN, "delivery_date": today.isoformat(), "responsible": "E002"}
    refused(await api.post(f"/contracts/{contract}/plan", "S001", body), "department 'project'")  # after-sales
    ok(await api.post(f"/contracts/{contract}/plan", "S002", body))
    for who in ("S001", "M001", "M003"):
        refused(await api.post(f"/contracts/{contract}/plan/steps/change", who, {"routine_every_months": 1}),
                "department 'project'")
        refused(await api.post(f"/contracts/{contract}/plan/steps/end", who, {"reason": "x"}), "department 'project'")
    r = await api.post(f"/contracts/{contract}/plan/steps/change", "S002", {"responsible": "E001"})
    refused(r, "only within 'project'")
    assert r.json()["field"] == "responsible"
    assert ok(await api.post(f"/contracts/{contract}/plan/steps/change", "M002",
                             {"routine_every_months": 1}))["routine_every_months"] == 1
    assert ok(await api.post(f"/contracts/{contract}/plan/steps/change", "L001",
                             {"responsible": "E001"}))["responsible"] == "E001"  # leadership hands it across
    # now the after-sales department's contract
    refused(await api.post(f"/contracts/{contract}/plan/steps/end", "M002", {"reason": "x"}), "'after_sales'")
    assert ok(await api.post(f"/contracts/{contract}/plan/steps/end", "M001",
                             {"reason": "terminated"}))["status"] == "ended"


async def test_an_engineer_reads_the_visits_assigned_to_them_and_not_every_plan(api: Api, env):
    today = (await env.get_current_time()).astimezone(CST).date()
    contract = f"K-{uuid.uuid4().hex[:8]}"
    ok(await api.post(f"/contracts/{contract}/plan", "S002",
                      {**PLAN, "delivery_date": today.isoformat(), "responsible": "E002"}))
    # the plan: its engineer in charge reads it, without the phone; no other engineer does
    plan = ok(await api.get(f"/contracts/{contract}/plan", "E002"))
    assert plan["contact_phone"] == "***" and plan["customer"] == PLAN["customer"]
    started = (await api.get(f"/contracts/{contract}/plan/history", "E002")).json()["events"][0]
    assert started["type"] == "PlanStarted" and started["data"]["contact_phone"] == "***"
    assert ok(await api.get(f"/contracts/{contract}/plan", "S002"))["contact_phone"] == PHONE
    refused(await api.get(f"/contracts/{contract}/plan", "E001"), "plans they are in charge of")
    refused(await api.get(f"/contracts/{contract}/plan/history", "E001"), "plans they are in charge of")
    # the visit: its engineer reads it with the phone they call; another engineer does not read it
    await sleep_until(env, due_at(add_months(today, 1)) + timedelta(hours=1))
    iid = inspection_id(contract, "follow_up", 1)
    for _ in range(100):
        r = await api.get(f"/inspections/{iid}", "E002")
        if r.status_code == 200:
            break
    assert ok(r)["contact_phone"] == PHONE
    refused(await api.get(f"/inspections/{iid}", "E001"), "E002's", "assigned to them")
    refused(await api.get(f"/inspections/{iid}/history", "E001"), "assigned to them")
    # assigning and cancelling a visit: the contract's department, within it, or leadership
    refused(await api.post(f"/inspections/{iid}/steps/cancel", "S001", {"reason": "x"}), "department 'project'")
    refused(await api.post(f"/inspections/{iid}/steps/assign", "S002", {"engineer": "E001"}), "only within 'project'")
    assert ok(await api.post(f"/inspections/{iid}/steps/assign", "L001", {"engineer": "E001"}))["responsible"] == "E001"
    assert ok(await api.get(f"/inspections/{iid}", "E001"))["contact_phone"] == PHONE  # now theirs
    refused(await api.get(f"/inspections/{iid}", "E002"), "E001's")
    ok(await api.post(f"/contracts/{contract}/plan/steps/end", "M002", {"reason": "test over"}))
