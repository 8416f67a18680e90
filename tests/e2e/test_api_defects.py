"""Issue 13, the defects: each of these answered a 5xx, dropped a connection or left
something behind for a refused request (DESIGN.md "Bad input": a clear 4xx naming the
field and the reason, never a 500, nothing already recorded lost)."""
from __future__ import annotations

from datetime import timedelta

import httpx
import psycopg
import pytest
from fastapi import Request
from temporalio.service import RPCError, RPCStatusCode

from api.app import create_app
from api.idempotency import scope_of
from domain.policy import CST
from tests.api_fixtures import Api, api, pg_api, served  # noqa: F401 - fixtures
from tests.case_helpers import COMPLAINT, RETURN
from tests.conftest import PG_DBNAME, REPORT
from workflows.complaint import complaint_workflow_id
from workflows.returns import return_workflow_id
from workflows.ticket import ticket_workflow_id


def pg() -> psycopg.Connection:
    return psycopg.connect(f"host=127.0.0.1 port=5432 dbname={PG_DBNAME} user=postgres", autocommit=True)


async def dispatched(api: Api) -> str:
    tid = await api.report()
    await api.ok(tid, "triage", "S001", severity="critical", zone="A")
    await api.ok(tid, "dispatch", "S001", engineer="E001")
    return tid


@pytest.mark.parametrize("path,params,field", [
    ("/reports/sla", {"month": "2026-03", "customer": "\x00"}, "customer"),
    ("/knowledge", {"product_model": "\x00", "q": "x"}, "product_model"),
    ("/tickets", {"assignee": "\x00"}, "assignee"),
    ("/tickets", {"status": "open\x00"}, "status"),
])
async def test_a_nul_in_a_query_parameter_is_a_422_naming_it_not_a_500(pg_api: Api, path, params, field):
    r = await pg_api.get(path, "M001", **params)
    assert r.status_code == 422, r.text
    assert r.json()["field"] == field and "control character" in r.json()["detail"]


async def test_a_pooled_connection_gone_stale_after_a_database_restart_is_not_a_500(pg_api: Api):
    tid = await dispatched(pg_api)
    with pg() as c:  # what a restart does to every pooled connection of this database
        c.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                  "WHERE datname = current_database() AND pid <> pg_backend_pid()")
    r = await pg_api.step(tid, "arrive", "E001", key="arrive-after-restart", staff_id_shown=True)
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "in_progress"
    assert (await pg_api.get(f"/tickets/{tid}/history", "M001")).status_code == 200


async def test_a_failure_to_complete_the_idempotency_record_after_the_fact_answers_the_recorded_result(pg_api: Api):
    tid = await dispatched(pg_api)
    with pg() as c:  # the database refuses the completion, after the step is durable
        c.execute("CREATE OR REPLACE FUNCTION weibao_test_refuse() RETURNS trigger LANGUAGE plpgsql AS "
                  "$$ BEGIN RAISE EXCEPTION 'no space left on device (test)'; END $$")
        c.execute("CREATE TRIGGER refuse_completion BEFORE UPDATE ON api_idempotency "
                  "FOR EACH ROW EXECUTE FUNCTION weibao_test_refuse()")
    try:
        first = await pg_api.step(tid, "arrive", "E001", key="arrive-1", staff_id_shown=True)
        assert first.status_code == 200, first.text
        assert first.json()["status"] == "in_progress"
    finally:
        with pg() as c:
            c.execute("DROP TRIGGER refuse_completion ON api_idempotency")
    again = await pg_api.step(tid, "arrive", "E001", key="arrive-1", staff_id_shown=True)
    assert again.status_code == 200 and again.json() == first.json()
    assert [e["type"] for e in pg_api.history(tid)].count("ArrivedOnSite") == 1


async def test_escalations_from_the_first_to_the_last_representable_day_answer(api: Api):
    r = await api.get("/reports/escalations", "M001", **{"from": "0001-01-01", "to": "9999-12-31"})
    assert r.status_code == 200, r.text
    r = await api.get("/reports/escalations", "M001", **{"from": "9999-12-31T23:00:00-10:00"})
    assert r.status_code in (200, 422), r.text


async def test_after_a_500_the_same_keep_alive_connection_answers_the_next_request(api: Api):
    app = create_app(api.services)

    @app.get("/boom")
    async def boom() -> None:
        raise RuntimeError("a bug")

    @app.get("/whoami")
    async def whoami(request: Request) -> int:
        return request.client.port  # the client's end of the connection

    async with served(app) as base:
        async with httpx.AsyncClient(base_url=base) as http:
            port = (await http.get("/whoami")).json()
            failed = await http.get("/boom")
            assert failed.status_code == 500
            assert failed.json()["error"] == "internal" and "a bug" not in failed.text
            assert "close" not in failed.headers.get("connection", "")
            assert (await http.get("/whoami")).json() == port  # the same connection


async def test_a_return_refused_for_a_delivery_in_the_future_starts_no_workflow(api: Api, env):
    today = (await env.get_current_time()).astimezone(CST).date()
    body = {**RETURN, "delivery_date": (today + timedelta(days=30)).isoformat()}
    r = await api.post("/returns", "C001", body, key="future-delivery")
    assert r.status_code == 422 and r.json()["field"] == "delivery_date", r.text
    rid = f"r{scope_of('C001', 'future-delivery')[:24][:15]}"
    with pytest.raises(RPCError) as gone:
        await api.services.client.get_workflow_handle(return_workflow_id(rid)).describe()
    assert gone.value.status == RPCStatusCode.NOT_FOUND
    assert (await api.get(f"/returns/{rid}", "M001")).status_code == 404


async def test_a_complaint_about_someone_not_on_the_staff_starts_no_workflow(api: Api):
    for field, value in (("about_person", "X999"), ("about_department", "marketing")):
        r = await api.post("/complaints", "C001", {**COMPLAINT, field: value}, key=f"unknown-{field}")
        assert r.status_code == 422 and r.json()["field"] == field, r.text
        cid = f"c{scope_of('C001', f'unknown-{field}')[:24][:15]}"
        with pytest.raises(RPCError) as gone:
            await api.services.client.get_workflow_handle(complaint_workflow_id(cid)).describe()
        assert gone.value.status == RPCStatusCode.NOT_FOUND


async def test_a_key_whose_ticket_is_closed_and_whose_record_was_purged_answers_the_ticket_not_a_503(api: Api):
    first = await api.post("/tickets", "C001", {**REPORT, "severity": "critical"}, key="closed-and-forgotten")
    assert first.status_code == 201, first.text
    tid = first.json()["ticket_id"]
    await api.services.client.get_workflow_handle(ticket_workflow_id(tid)).terminate("closed for the test")
    api.services.keys.db.execute("DELETE FROM api_idempotency")  # as the purge after WEIBAO_IDEMPOTENCY_TTL does
    again = await api.post("/tickets", "C001", {**REPORT, "severity": "critical"}, key="closed-and-forgotten")
    assert again.status_code == 201, again.text
    assert again.json()["ticket_id"] == tid and again.json()["state"]["status"] == "reported"
