"""Tamper evidence not fooled by an append: the event store's hash chain checked against
the case workflow's own record of what it recorded (api.evidence, the `recorded` query of
workflows.casework). The rules on made-up chains first, then tampering directly in
PostgreSQL and through the event store's own API, answered over HTTP."""
from __future__ import annotations

import uuid
from datetime import datetime, timedelta, timezone
from typing import Any

import httpx
import psycopg
import pytest
from temporalio import activity
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment

from activities import config
from activities.record import LegacyTicketRecord, Recorded, RecordFact, Recorder
from activities.store import open_store
from api import evidence
from api.app import create_app
from api.deps import Services
from api.evidence import judge
from domain import chain
from tests.api_fixtures import Api, api, pg_api  # noqa: F401 - fixtures
from tests.case_helpers import register_complaint, step
from tests.conftest import PG_DBNAME, REPORT, running_worker
from workflows.casework import CaseRecord, RecordedVersion
from workflows.complaint import ComplaintWorkflow
from workflows.messages import CODE, StartTicket
from workflows.ticket import TicketWorkflow, ticket_workflow_id

AT = datetime(2026, 3, 2, 1, 0, tzinfo=timezone.utc)
FIELDS = ("ticket", "version", "type", "at", "actor", "command_id", "data", "recorded_at")


# --- the rules, on made-up chains ---------------------------------------------------------------

def chain_of(n: int, case: str = "c-1", types: dict[int, str] | None = None,
             commands: dict[int, str] | None = None) -> list[dict[str, Any]]:
    events, prev = [], chain.GENESIS
    for v in range(1, n + 1):
        e = {"ticket": case, "version": v, "type": (types or {}).get(v, "Step"), "at": AT + timedelta(minutes=v),
             "actor": "S001", "command_id": (commands or {}).get(v, f"complaint-c-1:step:{v}"), "data": {"n": v},
             "recorded_at": AT + timedelta(minutes=v, seconds=1), "prev_hash": prev}
        e["hash"] = prev = chain.event_hash(**{k: e[k] for k in FIELDS}, prev_hash=e["prev_hash"])
        events.append(e)
    return events


def record_of(events: list[dict[str, Any]], hashes: bool = True, since: int = 0) -> CaseRecord:
    return CaseRecord(since=since, facts=[RecordedVersion(version=e["version"], hash=e["hash"] if hashes else None)
                                          for e in events if e["version"] > since])


def forge(events: list[dict[str, Any]], **fields: Any) -> list[dict[str, Any]]:
    """`events` with one more appended after them, its hash computed correctly."""
    last = events[-1]
    e = {"ticket": last["ticket"], "version": last["version"] + 1, "type": "Closed", "at": last["at"],
         "actor": "S001", "command_id": "forged", "data": {"satisfaction": 5},
         "recorded_at": last["recorded_at"] + timedelta(seconds=1), "prev_hash": last["hash"], **fields}
    e["hash"] = chain.event_hash(**{k: e[k] for k in FIELDS}, prev_hash=e["prev_hash"])
    return [*events, e]


def test_the_chain_alone_is_fooled_by_an_event_appended_with_a_correct_hash():
    assert chain.verify(forge(chain_of(5))) is None


def test_an_event_the_workflow_never_recorded_is_named():
    events = chain_of(5)
    found = judge(forge(events), None, record_of(events))
    assert not found.intact and found.unrecorded_versions == [6] and found.first_bad_version == 6
    assert found.mismatched_versions == [] and found.cross_check == "hashes"
    assert "version 6 is in the store but the case's workflow never recorded it" in found.detail


def test_an_intact_store_matches_the_workflows_record_hash_for_hash():
    events = chain_of(5)
    found = judge(events, None, record_of(events))
    assert found.intact and found.first_bad_version is None and found.versions == 5
    assert found.detail.startswith("intact") and "hashes compared" in found.detail


def test_a_deleted_middle_event_is_named_missing_not_the_next_one_as_not_matching():
    events = chain_of(6)
    gapped = [e for e in events if e["version"] != 3]
    assert chain.examine(gapped) == chain.ChainCheck(mismatched=(), missing=(3,))
    assert chain.verify(gapped) == 3
    found = judge(gapped, None, record_of(events))
    assert not found.intact and found.missing_versions == [3] and found.mismatched_versions == []
    assert "version 3 is missing from the store" in found.detail


def test_events_deleted_from_the_end_are_named_missing_by_the_workflows_record():
    events = chain_of(6)
    found = judge(events[:4], None, record_of(events))
    assert not found.intact and found.missing_versions == [5, 6] and found.first_bad_version == 5
    assert "versions 5..6 are missing from the store" in found.detail


def test_an_event_recorded_meanwhile_is_not_called_missing():
    events = chain_of(6)
    found = judge(events[:5], None, record_of(events), present_later={1, 2, 3, 4, 5, 6})
    assert found.intact


def test_a_chain_rewritten_from_a_version_on_is_named_by_the_hashes_the_workflow_recorded():
    events = chain_of(5)
    rewritten = chain_of(2)
    for e in events[2:]:  # versions 3..5 changed and re-hashed, the chain recomputed
        rewritten = forge(rewritten, type=e["type"], command_id=e["command_id"], data={"n": -e["version"]})
    assert chain.verify(rewritten) is None
    found = judge(rewritten, None, record_of(events))
    assert not found.intact and found.differing_versions == [3, 4, 5] and found.unrecorded_versions == []


def test_a_record_without_hashes_compares_versions_and_says_so():
    events = chain_of(4)
    found = judge(forge(events), None, record_of(events, hashes=False))
    assert not found.intact and found.unrecorded_versions == [5] and found.cross_check == "versions"
    assert "recorded before the workflow kept hashes" in found.detail
    assert judge(events, None, record_of(events, hashes=False)).intact


def test_when_the_workflow_cannot_be_asked_the_chain_alone_is_checked_and_the_answer_says_so():
    events = chain_of(3)
    found = judge(forge(events), None, None, "no worker answered within 3 s")
    assert found.intact and found.cross_check == "not possible"  # what could be checked is intact
    assert "not possible (no worker answered within 3 s)" in found.detail
    assert not judge([{**events[0], "actor": "X"}, *events[1:]], None, None, "gone").intact


def test_earlier_runs_versions_are_checked_by_the_chain_only():
    events = chain_of(6)  # a plan continued as new after version 4
    found = judge(events, None, record_of(events, since=4))
    assert found.intact and "versions up to 4 were recorded by earlier runs" in found.detail
    assert judge(forge(events), None, record_of(events, since=4)).unrecorded_versions == [7]


def test_a_delivery_outcome_counts_when_it_belongs_to_a_notification_the_workflow_recorded():
    notice = "complaint-c-1:acknowledged:warning"
    events = chain_of(4, types={3: "SlaWarned", 4: "NotificationSent"},
                      commands={3: notice, 4: f"{notice}:sent:email:1"})
    recorded = record_of(events[:3])  # the workflow recorded the warning; its delivery the outcome
    found = judge(events, None, recorded)
    assert found.intact and found.delivery_versions == [4] and "delivery of notifications" in found.detail
    stray = forge(events, type="NotificationSent", command_id="complaint-c-1:never:sent:email:1")
    assert judge(stray, None, recorded).unrecorded_versions == [5]


def test_a_delivery_outcome_the_deliverys_own_record_lacks_is_named():
    """With the Delivery workflow's own record at hand, its outcomes are checked hash for hash:
    a forged outcome of a real notification is named, not waved through as the delivery's."""
    notice = "complaint-c-1:acknowledged:warning"
    events = chain_of(4, types={3: "SlaWarned", 4: "NotificationSent"},
                      commands={3: notice, 4: f"{notice}:sent:email:1"})
    for e in events[3:]:
        e["data"] = {"notice": notice}
    events = chain_of_with_data(events)
    both = CaseRecord(facts=[*record_of(events[:3]).facts, *record_of(events[3:]).facts])
    found = judge(events, None, both, delivered=frozenset({notice}))
    assert found.intact and found.delivery_versions == [] and found.cross_check == "hashes"
    forged = forge(events, type="NotificationSent", command_id=f"{notice}:sent:email:2", data={"notice": notice})
    assert judge(forged, None, both, delivered=frozenset({notice})).unrecorded_versions == [5]


def chain_of_with_data(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """`events` with their hashes recomputed after their data changed."""
    prev = chain.GENESIS
    for e in events:
        e["prev_hash"] = prev
        e["hash"] = prev = chain.event_hash(**{k: e[k] for k in FIELDS}, prev_hash=prev)
    return events


def test_an_unreadable_event_is_named_and_what_follows_it_is_not_called_missing():
    events = chain_of(5)
    found = judge(events[:2], 3, record_of(events))
    assert not found.intact and found.mismatched_versions == [3] and found.missing_versions == []
    assert found.versions == 3


# --- the workflow's own record -------------------------------------------------------------------

class OldRecorder(Recorder):
    """A worker from before `record_case` answered with the hash."""

    @activity.defn(name="record_case")
    def record_case(self, fact: RecordFact) -> Recorded | int:
        answer = super().record_case(fact)
        return Recorded(version=answer.version, data=answer.data)


async def test_every_case_workflow_keeps_the_versions_and_hashes_it_recorded(env, stack):
    store = stack.store
    queue = f"tq-{uuid.uuid4()}"
    async with running_worker(env.client, stack, queue):
        handle, _ = await register_complaint(env.client, queue, about_person="E002")
        await step(handle, ComplaintWorkflow, "acknowledge", "S002")
        record = await handle.query("recorded", result_type=CaseRecord)
        cid = (await handle.query(ComplaintWorkflow.current)).case_id
        stored = store.history("complaint", cid)
        assert [(f.version, f.hash) for f in record.facts] == [(e["version"], e["hash"]) for e in stored]
        found = await evidence.examine(env.client, lambda: _read(store, cid), "complaint", cid, stored, None)
        assert found.intact and found.cross_check == "hashes"


async def test_a_workflow_whose_answers_carried_no_hash_is_compared_by_versions(env, stack):
    store = stack.store
    queue = f"tq-{uuid.uuid4()}"
    async with running_worker(env.client, OldRecorder(store, stack.org, stack.outbox), queue):
        handle, state = await register_complaint(env.client, queue, about_person="E002")
        cid = state.case_id
        record = await handle.query("recorded", result_type=CaseRecord)
        assert [(f.version, f.hash) for f in record.facts] == [(1, None)]
        case = store.aggregate("complaint", cid)
        case.record("Acknowledged", at=AT, actor="S002", command_id="forged", data={"handler": "S002", "note": ""})
        store.save(case)
        events = store.history("complaint", cid)
        found = await evidence.examine(env.client, lambda: _read(store, cid), "complaint", cid, events, None)
        assert not found.intact and found.unrecorded_versions == [2] and found.cross_check == "versions"
        assert "their versions were compared, not their hashes" in found.detail


async def _read(store, cid: str):
    return store.read_history("complaint", cid)


# --- over HTTP, the store tampered with ---------------------------------------------------------

async def _signed_off(api: Api) -> str:
    from tests.api_fixtures import FIX

    tid = await api.report()
    await api.ok(tid, "triage", "S001", severity="critical", zone="A", service_category="free")
    await api.ok(tid, "dispatch", "S001", engineer="E001")
    await api.ok(tid, "arrive", "E001", staff_id_shown=True)
    await api.ok(tid, "resolve", "E001", **FIX)
    await api.ok(tid, "sign-off", "E001", signature="Li Wei", satisfaction=5)
    return tid


def _events_table(c: psycopg.Connection) -> str:
    (table,) = c.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'public' "
                         "AND tablename LIKE '%events' AND tablename LIKE 'tickets%'").fetchone()
    return table


async def test_verify_names_an_event_forged_at_the_end_with_a_correct_hash(pg_api: Api):
    api = pg_api
    tid = await _signed_off(api)
    store = api.services.store
    case = store.aggregate("ticket", tid)  # the store's own API computes the hash and the link
    case.record("Closed", at=AT, actor="S001", command_id="forged", data={"time_rating": 5, "quality_rating": 5})
    store.save(case)

    v = (await api.get(f"/tickets/{tid}/verify", "M001")).json()
    assert v["intact"] is False and v["unrecorded_versions"] == [7] and v["first_bad_version"] == 7, v
    assert v["mismatched_versions"] == [] and v["cross_check"] == "hashes"
    assert "never recorded" in v["detail"]
    history = (await api.get(f"/tickets/{tid}/history", "M001")).json()
    assert history["intact"] is False and history["evidence"]["unrecorded_versions"] == [7]


async def test_verify_names_an_event_deleted_from_the_middle_as_missing(pg_api: Api):
    api = pg_api
    tid = await _signed_off(api)
    with psycopg.connect(f"host=127.0.0.1 port=5432 dbname={PG_DBNAME} user=postgres", autocommit=True) as c:
        table = _events_table(c)
        assert c.execute(f"DELETE FROM {table} WHERE originator_version = 3").rowcount == 1
    v = (await api.get(f"/tickets/{tid}/verify", "M001")).json()
    assert v["intact"] is False and v["missing_versions"] == [3] and v["mismatched_versions"] == [], v
    assert v["first_bad_version"] == 3 and "version 3 is missing from the store" in v["detail"]
    assert (await api.get(f"/tickets/{tid}/history", "M001")).json()["intact"] is False


async def test_a_ticket_history_whose_chain_does_not_verify_is_not_intact(pg_api: Api):
    api = pg_api
    tid = await _signed_off(api)
    assert (await api.get(f"/tickets/{tid}/history", "M001")).json()["intact"] is True
    with psycopg.connect(f"host=127.0.0.1 port=5432 dbname={PG_DBNAME} user=postgres", autocommit=True) as c:
        c.execute(f"UPDATE {_events_table(c)} SET state = convert_to(replace(convert_from(state, 'UTF8'), "
                  "'\"E001\"', '\"E002\"'), 'UTF8') WHERE originator_version = 3")
    history = (await api.get(f"/tickets/{tid}/history", "M001")).json()
    assert history["intact"] is False and history["evidence"]["mismatched_versions"] == [3]


async def test_a_complaint_history_with_a_forged_event_is_not_intact(pg_api: Api):
    api = pg_api
    from tests.case_helpers import COMPLAINT

    r = await api.post("/complaints", "C001", {**COMPLAINT, "about_person": "E002"})
    assert r.status_code == 201, r.text
    cid = r.json()["complaint_id"]
    history = (await api.get(f"/complaints/{cid}/history", "M001")).json()
    assert history["intact"] and history["evidence"]["cross_check"] == "hashes"
    store = api.services.store
    case = store.aggregate("complaint", cid)
    case.record("Acknowledged", at=AT, actor="S002", command_id="forged", data={"handler": "S002", "note": ""})
    store.save(case)
    history = (await api.get(f"/complaints/{cid}/history", "M001")).json()
    assert history["intact"] is False and history["evidence"]["unrecorded_versions"] == [2]


async def test_verify_says_the_cross_check_was_not_possible_when_no_worker_answers(use_store, org, monkeypatch):
    monkeypatch.setattr(evidence, "QUERY_TIMEOUT", timedelta(seconds=1))
    use_store("sqlite")
    store = open_store()
    # a Temporal server of its own: a workflow task nobody takes holds a time-skipping server's
    # clock still, for every later test of the session
    async with await WorkflowEnvironment.start_time_skipping(
            data_converter=pydantic_data_converter,
            test_server_existing_path=config.binary("temporal-test-server")) as lonely:
        services = Services.build(lonely.client, store, org, task_queue=f"nobody-{uuid.uuid4()}")
        try:
            tid = f"nw{uuid.uuid4().hex[:10]}"
            await lonely.client.start_workflow(TicketWorkflow.run, StartTicket(ticket_id=tid, code=CODE),
                                               id=ticket_workflow_id(tid), task_queue=services.task_queue)
            Recorder(store, org, None).record(LegacyTicketRecord(
                ticket_id=tid, command_id=f"ticket-{tid}:report", event_type="Reported", at=AT, actor="C001",
                data={**REPORT, "severity": "critical", "zone": "A"}))
            async with httpx.AsyncClient(transport=httpx.ASGITransport(app=create_app(services)),
                                         base_url="http://api") as http:
                r = await http.get(f"/tickets/{tid}/verify",
                                   headers={"Authorization": f"Bearer {services.tokens.issue('M001')}"})
            assert r.status_code == 200, r.text
            v = r.json()
            assert v["intact"] is True and v["cross_check"] == "not possible", v
            assert "no worker answered within 1 s" in v["detail"] and "only the hash chain was checked" in v["detail"]
        finally:
            services.close()
            store.close()


async def test_verify_of_a_ticket_whose_workflow_is_gone_checks_the_chain_and_says_why_not_more(api: Api):
    Recorder(api.services.store, api.services.org, None).record(LegacyTicketRecord(
        ticket_id="archived2", command_id="old:report", event_type="Reported", at=AT, actor="C001",
        data={**REPORT, "severity": "critical", "zone": "A"}))
    v = (await api.get("/tickets/archived2/verify", "M001")).json()
    assert v["intact"] and v["cross_check"] == "not possible" and "retention" in v["detail"]


@pytest.mark.parametrize("reader", ["M001", "A001"])
async def test_a_closed_tickets_workflow_still_vouches_for_its_record(api: Api, reader):
    tid = await _signed_off(api)
    await api.ok(tid, "close", "S001", time_rating=4, quality_rating=4)
    v = (await api.get(f"/tickets/{tid}/verify", reader)).json()
    assert v["intact"] and v["cross_check"] == "hashes" and v["versions"] == 7, v
