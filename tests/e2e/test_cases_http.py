"""api/cases.py end to end: the real app (which includes the cases router), a real worker on the
time-skipping server, bearer tokens, roles, and the error shape."""
import uuid
from datetime import timedelta

import httpx
import pytest

from activities.outbox import Outbox
from activities.store import open_store
from activities.record import Recorder
from api.app import create_app
from api.deps import Services
from domain.maintenance import add_months, due_at, inspection_id
from domain.policy import CST
from projections.runner import ReadModels
from tests.api_fixtures import catch_up_ticket_list, end_api_workflows
from tests.case_helpers import COMPLAINT, PLAN, RETURN
from tests.conftest import running_worker, sleep_until


class Http:
    def __init__(self, http: httpx.AsyncClient, services: Services):
        self.http, self.services, self.tokens = http, services, {}

    def auth(self, who: str | None) -> dict[str, str]:
        if who is None:
            return {}
        if who not in self.tokens:
            self.tokens[who] = self.services.tokens.issue(who)
        return {"Authorization": f"Bearer {self.tokens[who]}"}

    async def post(self, path: str, who: str | None, body=None, key: str | None = None) -> httpx.Response:
        headers = self.auth(who) | ({"Idempotency-Key": key} if key else {})
        return await self.http.post(path, json=body if body is not None else {}, headers=headers)

    async def get(self, path: str, who: str | None) -> httpx.Response:
        return await self.http.get(path, headers=self.auth(who))


@pytest.fixture
async def api(env, org, use_store):
    use_store("sqlite")
    tickets, outbox = open_store(), Outbox()
    task_queue = f"tq-{uuid.uuid4()}"
    models = ReadModels()
    services = Services.build(env.client, tickets, org, task_queue=task_queue, read_models=models)
    services.clock = env.get_current_time  # the workflows' clock, which the time-skipping server moves
    app = create_app(services)
    runner = catch_up_ticket_list(app, services)
    try:
        async with running_worker(env.client, Recorder(tickets, org, outbox), task_queue):
            async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://api") as http:
                try:
                    yield Http(http, services)
                finally:
                    await end_api_workflows(services)  # tickets reported here too, and cases
    finally:
        runner.close()
        services.close()
        models.close()
        outbox.close()
        tickets.close()


def error(r: httpx.Response, status: int, field: str | None = None) -> dict:
    assert r.status_code == status, r.text
    body = r.json()
    assert set(body) - {"errors"} == {"error", "detail", "field"} and body["field"] == field, body  # a 422 lists all
    return body


async def test_a_complaint_over_http_from_registration_to_close(api):
    r = await api.post("/complaints", "S001", {**COMPLAINT, "about_person": "E002"})
    error(r, 403)
    r = await api.post("/complaints", "C001", {**COMPLAINT, "about_person": "E002", "ticket_id": "t-9"}, key="k1")
    assert r.status_code == 201, r.text
    cid = r.json()["complaint_id"]
    assert r.json()["state"]["routed_to"] == "project"
    again = await api.post("/complaints", "C001", {**COMPLAINT, "about_person": "E002", "ticket_id": "t-9"}, key="k1")
    assert again.json()["complaint_id"] == cid  # the same key answers the first answer
    error(await api.post(f"/complaints/{cid}/steps/acknowledge", "E002", {}), 403)
    error(await api.post(f"/complaints/{cid}/steps/close", "S002", {"satisfaction": 5}), 409)
    error(await api.post(f"/complaints/{cid}/steps/close", "S002", {"satisfaction": 9}), 422, "satisfaction")
    error(await api.post(f"/complaints/{cid}/steps/acknowledge", "S002", {"handler": "X9"}), 422, "handler")
    r = await api.post(f"/complaints/{cid}/steps/acknowledge", "S002", {})
    assert r.status_code == 200 and r.json()["handler"] == "S002"
    r = await api.post(f"/complaints/{cid}/steps/escalate", "S002", {"to": "leadership", "reason": "no patience"})
    assert r.json()["requested_level"] == 2
    r = await api.post(f"/complaints/{cid}/steps/reply", "M002", {"reply": "apologies", "substantiated": True})
    assert r.json()["responsible_department"] == "project"
    r = await api.post(f"/complaints/{cid}/steps/close", "S002", {"satisfaction": 4, "valuable_suggestion": True})
    assert r.json()["status"] == "closed"
    seen = await api.get(f"/complaints/{cid}", "A001")
    assert seen.json()["status"] == "closed" and seen.json()["contact"] == "***"  # masked for the auditor
    history = (await api.get(f"/complaints/{cid}/history", "M001")).json()
    assert history["intact"] and [e["type"] for e in history["events"]] == [
        "Registered", "Acknowledged", "CustomerEscalated", "Replied", "Closed"]
    error(await api.get(f"/complaints/{cid}", "E001"), 403)
    error(await api.get("/complaints/nope", "A001"), 404)
    error(await api.post(f"/complaints/{cid}/steps/reply", "M002", {"reply": "x", "substantiated": False}), 409)


async def test_a_registration_naming_an_unknown_person_is_refused_with_the_field(api):
    error(await api.post("/complaints", "C001", {**COMPLAINT, "about_person": "X999"}), 422, "about_person")
    error(await api.post("/complaints", "C001", {**COMPLAINT, "channel": "fax"}), 422, "channel")
    error(await api.post("/complaints", None, COMPLAINT), 401)


async def test_an_exchange_over_http_hands_off_department_to_department(api, env):
    today = (await env.get_current_time()).astimezone(CST).date()
    r = await api.post("/returns", "C001", {**RETURN, "delivery_date": (today - timedelta(days=8)).isoformat()})
    assert r.status_code == 201, r.text
    rid, state = r.json()["return_id"], r.json()["state"]
    assert state["outcome"] == "exchange" and state["stage"] == "approval"
    error(await api.post(f"/returns/{rid}/steps/approve", "F001", {"approved": True}), 403)  # finance: not its turn
    assert (await api.post(f"/returns/{rid}/steps/approve", "M002", {"approved": True})).status_code == 200
    error(await api.post(f"/returns/{rid}/steps/inspect", "M003", {"defect_confirmed": True, "root_cause": "x"}),
          422, "responsible_department")
    r = await api.post(f"/returns/{rid}/steps/inspect", "M003", {"defect_confirmed": True, "root_cause": "bad batch",
                                                                 "responsible_department": "project"})
    assert r.json()["stage"] == "shipment"
    error(await api.post(f"/returns/{rid}/steps/refund", "F001", {"amount_yuan": "10", "reference": "x"}), 403)
    error(await api.post(f"/returns/{rid}/steps/refund", "M002", {"amount_yuan": "10", "reference": "x"}), 409)
    await api.post(f"/returns/{rid}/steps/ship", "S002", {"replacement_serial_no": "T20-9"})
    r = await api.post(f"/returns/{rid}/steps/confirm", "C001", {"confirmed_by": "Dr Li", "satisfaction": 5})
    assert r.json()["status"] == "closed"
    late = await api.post("/returns", "C001", {**RETURN, "delivery_date": (today - timedelta(days=16)).isoformat()})
    assert late.json()["state"]["outcome"] == "repair"
    assert "open a fault ticket" in late.json()["state"]["decision"]["next_action"]


async def test_a_plan_over_http_starts_visits_that_their_engineer_records(api, env):
    today = (await env.get_current_time()).astimezone(CST).date()
    body = {**PLAN, "delivery_date": today.isoformat(), "routine_every_months": 3, "responsible": "E002"}
    error(await api.post("/contracts/K-77/plan", "E002", body), 403)
    r = await api.post("/contracts/K-77/plan", "S002", body)
    assert r.status_code == 201 and r.json()["status"] == "active", r.text
    error(await api.post("/contracts/K-77/plan", "S002", body), 409)
    error(await api.post("/contracts/K-77/plan", "S002", {**body, "routine_every_months": 2}), 422,
          "routine_every_months")
    await sleep_until(env, due_at(add_months(today, 1)) + timedelta(hours=1))
    iid = inspection_id("K-77", "follow_up", 1)
    for _ in range(100):
        r = await api.get(f"/inspections/{iid}", "E002")
        if r.status_code == 200:
            break
    assert r.status_code == 200 and r.json()["responsible"] == "E002", r.text
    plan = (await api.get("/contracts/K-77/plan", "A001")).json()
    assert plan["counts"]["follow_up"] == 1 and plan["recent"][0]["inspection_id"] == iid
    error(await api.post(f"/inspections/{iid}/steps/call", "E001", {"spoke_with": "Dr Li", "notes": "ok"}), 403)
    r = await api.post(f"/inspections/{iid}/steps/call", "E002", {"spoke_with": "Dr Li", "notes": "all fine"})
    assert r.json()["status"] == "completed"
    r = await api.post("/contracts/K-77/plan/steps/end", "M002", {"reason": "contract terminated"})
    assert r.json()["status"] == "ended"
    history = (await api.get("/contracts/K-77/plan/history", "A001")).json()
    assert [e["type"] for e in history["events"]] == ["PlanStarted", "VisitScheduled", "PlanEnded"]


async def test_a_complaint_naming_a_ticket_appears_in_that_tickets_history_view(api):
    from tests.conftest import REPORT

    r = await api.post("/tickets", "C001", {**REPORT, "severity": "major", "zone": "A"})
    assert r.status_code == 201, r.text
    tid = r.json()["ticket_id"]
    r = await api.post("/complaints", "C001", {**COMPLAINT, "about_person": "E002", "ticket_id": tid})
    cid = r.json()["complaint_id"]
    history = (await api.get(f"/tickets/{tid}/history", "M001")).json()
    assert [e["type"] for e in history["events"]] == ["Reported"]
    assert [(c["kind"], c["case_id"], c["event"]) for c in history["linked_cases"]] == [
        ("complaint", cid, "Registered")]


async def test_a_complaint_is_handled_by_the_department_it_was_routed_to(api):
    r = await api.post("/complaints", "C001", {**COMPLAINT, "category": "functionality", "about_department": "rnd"})
    assert r.status_code == 201, r.text
    cid = r.json()["complaint_id"]
    assert r.json()["state"]["routed_to"] == "rnd"
    for who in ("S002", "M002", "S001"):  # project and after-sales supervisors and heads
        body = error(await api.post(f"/complaints/{cid}/steps/acknowledge", who, {}), 403)
        assert "routed to department 'rnd'" in body["detail"], body
    history = (await api.get(f"/complaints/{cid}/history", "M001")).json()
    assert [e["type"] for e in history["events"]] == ["Registered"]  # the refusals recorded nothing
    r = await api.post(f"/complaints/{cid}/steps/acknowledge", "M003", {})  # the R&D head
    assert r.status_code == 200 and r.json()["handler"] == "M003", r.text
    r = await api.post(f"/complaints/{cid}/steps/escalate", "L001", {"to": "leadership", "reason": "too slow"})
    assert r.status_code == 200, r.text  # the customer's own request: R&D's head is what it is about
