"""Exactly-once recording, refusals that record nothing, both event stores, and
durable timers across a stopped worker."""
import asyncio
import uuid
from datetime import datetime, timedelta, timezone

import pytest
from temporalio.client import WorkflowUpdateFailedError
from temporalio.exceptions import ApplicationError

from activities.outbox import Outbox
from activities.store import open_store
from activities.record import LegacyTicketRecord, RecordFact, Recorder
from domain import chain
from domain.lifecycle import windows_data
from tests.conftest import REPORT, dispatch, end_started_workflows, quiet, report, running_worker, settle, \
    sleep_until, step

AT = datetime(2026, 3, 2, 1, 0, tzinfo=timezone.utc)


def report_cmd(ticket_id: str) -> RecordFact:
    return RecordFact(kind="ticket", case_id=ticket_id, command_id=f"ticket-{ticket_id}:report",
                      event_type="Reported", at=AT, actor="C001",
                      data={**REPORT, "severity": "critical", "zone": "A", "windows": windows_data(AT, "critical", "A")})


def triage_cmd(ticket_id: str, command_id: str, severity: str, zone: str, category: str) -> RecordFact:
    return RecordFact(kind="ticket", case_id=ticket_id, command_id=command_id, event_type="Triaged", step="triage",
                      at=AT, actor="S001", data={"severity": severity, "zone": zone, "service_category": category,
                                                 "windows": windows_data(AT, severity, zone)})


def test_recording_the_same_command_twice_appends_one_event(stack):
    tid = f"t{uuid.uuid4().hex[:8]}"
    assert stack.record_case(report_cmd(tid)).version == 1
    assert stack.record_case(report_cmd(tid)).version == 1
    triage = triage_cmd(tid, f"ticket-{tid}:step:u1", "critical", "A", "free")
    assert stack.record_case(triage).version == 2
    retried = stack.record_case(triage.model_copy(update={"data": {**triage.data, "note": "a retry's own data"}}))
    assert retried.version == 2  # an activity retried after a crash
    assert retried.data == stack.store.history("ticket", tid)[1]["data"]  # answers what the first attempt recorded
    assert [e["type"] for e in stack.store.history("ticket", tid)] == ["Reported", "Triaged"]


def test_a_retry_from_a_second_process_sees_the_first_append(stack, org):
    """Another worker (its own Application and cache) retries the same command."""
    tid = f"t{uuid.uuid4().hex[:8]}"
    stack.record_case(report_cmd(tid))
    other = Recorder(open_store(), org, stack.outbox)
    assert other.record_case(report_cmd(tid)).version == 1
    assert len(stack.store.history("ticket", tid)) == 1


def test_the_activity_name_of_histories_recorded_before_one_machinery_records_the_same_fact_once(stack):
    """Ticket histories recorded before the patch replay through `record` with a ticket-shaped input."""
    tid = f"t{uuid.uuid4().hex[:8]}"
    legacy = LegacyTicketRecord(ticket_id=tid, **report_cmd(tid).model_dump(exclude={"kind", "case_id"}))
    assert stack.record(legacy) == 1
    assert stack.record_case(report_cmd(tid)).version == 1  # the same command id, through the one activity
    assert stack.store.aggregate("ticket", tid).state.ticket_id == tid


@pytest.mark.parametrize("kind", ["sqlite", "postgres"])
def test_event_store_round_trip_keeps_business_time_actor_and_an_intact_hash_chain(use_store, org, kind):
    use_store(kind)
    outbox = Outbox()
    acts = Recorder(open_store(), org, outbox)
    tid = f"t{uuid.uuid4().hex[:8]}"
    acts.record_case(report_cmd(tid))
    acts.record_case(triage_cmd(tid, "c2", "major", "B", "paid"))
    fresh = open_store()  # a new Application reads what the first wrote
    history = fresh.history("ticket", tid)
    assert [(e["version"], e["type"], e["actor"], e["at"]) for e in history] == [
        (1, "Reported", "C001", AT), (2, "Triaged", "S001", AT)]
    assert history[0]["data"]["customer"] == REPORT["customer"]
    assert chain.verify(history) is None
    assert fresh.aggregate("ticket", tid).state.deadlines == {"on_site": AT + timedelta(hours=48)}
    history[0]["data"] = {**history[0]["data"], "symptoms": "nothing wrong"}
    assert chain.verify(history) == 1
    outbox.add("n1", tid, "S001", "Escalated", "x")
    outbox.add("n1", tid, "S001", "Escalated", "x")
    assert len(outbox.for_ticket(tid)) == 1
    outbox.close()


async def test_an_illegal_step_is_rejected_with_its_reason_and_records_nothing(env, worker, stack):
    handle, state = await report(env.client, worker)
    with pytest.raises(WorkflowUpdateFailedError) as e:
        await step(handle, "resolve", "E001", cause="x", resolution="y")
    cause = e.value.cause
    assert isinstance(cause, ApplicationError) and cause.type == "IllegalStep"
    assert "'resolve'" in cause.message and "'reported'" in cause.message
    assert cause.details[0] == {"status": "reported", "step": "resolve"}
    assert [ev["type"] for ev in stack.store.history("ticket", state.ticket_id)] == ["Reported"]


@pytest.mark.parametrize("data,field", [
    ({"severity": "catastrophic", "zone": "A"}, "severity"),
    ({"severity": "critical", "zone": "C"}, "zone"),
    ({"zone": "A"}, "severity"),
    ({"severity": "critical", "zone": "A", "colour": "red"}, "colour"),
])
async def test_bad_step_data_is_refused_naming_the_field(env, worker, stack, data, field):
    handle, state = await report(env.client, worker)
    with pytest.raises(WorkflowUpdateFailedError) as e:
        await step(handle, "triage", "S001", **data)
    assert e.value.cause.type == "InvalidStepData" and e.value.cause.details[0] == {"field": field}
    assert len(stack.store.history("ticket", state.ticket_id)) == 1


async def test_an_unknown_step_is_refused(env, worker, stack):
    handle, _ = await report(env.client, worker)
    with pytest.raises(WorkflowUpdateFailedError) as e:
        await step(handle, "teleport", "E001")
    assert e.value.cause.type == "UnknownStep"


async def test_breach_while_the_worker_is_stopped_is_recorded_once_when_a_worker_is_back(env, stack):
    task_queue = f"tq-{uuid.uuid4()}"
    # No sticky cache: a stopped worker's sticky queue would hold the next task until a
    # schedule-to-start timeout that the paused test clock never reaches.
    no_sticky = {"max_cached_workflows": 0}
    try:
        async with running_worker(env.client, stack, task_queue, **no_sticky):
            handle, state = await report(env.client, task_queue)
            await dispatch(handle)
            await sleep_until(env, state.reported_at + timedelta(hours=3, minutes=1))
            await settle(handle, lambda s: s.warnings)
        # The worker is stopped. Skip past the 4 h deadline: the breach timer fires on
        # the server, but with no worker nothing can record it (no polling job does).
        skipping = asyncio.create_task(sleep_until(env, state.reported_at + timedelta(hours=5)))
        await asyncio.sleep(1.0)
        assert "SlaBreached" not in [e["type"] for e in stack.store.history("ticket", state.ticket_id)]
        async with running_worker(env.client, stack, task_queue, **no_sticky):  # a worker is back
            s = await settle(handle, lambda s: s.escalations)
            await skipping
            s = await quiet(handle, state.reported_at + timedelta(hours=5))
        assert len(s.breaches) == 1 and [e.level for e in s.escalations] == [1]
        assert s.escalations[0].to == "S001"
        assert s.breaches[0].at > state.deadlines["on_site"]
        types = [e["type"] for e in stack.store.history("ticket", state.ticket_id)]
        assert types.count("SlaBreached") == 1 and types.count("Escalated") == 1
    finally:
        await end_started_workflows()


def test_an_alarm_raised_twice_records_its_breach_and_escalation_once_and_answers_the_same(stack):
    """raise_alarm retried after a crash: the same facts, recorded once, in one save."""
    from activities.record import RaiseAlarm, TargetRequest

    tid = f"t{uuid.uuid4().hex[:8]}"
    stack.record_case(report_cmd(tid))
    deadline = AT + timedelta(hours=4)
    base = {"goal": "on_site", "deadline": deadline.isoformat(), "responsible": None, "department": None}
    req = RaiseAlarm(kind="ticket", case_id=tid, workflow_id=f"ticket-{tid}", at=deadline + timedelta(milliseconds=1),
                     actor="weibao", breach_key="on_site:breach", breach_data=base,
                     line=TargetRequest(responsible=None, level=1), event="Escalated", key="on_site:breach:escalated",
                     data={**base, "level": 1, "reason": "missed"}, case_ref=tid)
    first = stack.raise_alarm(req)
    again = stack.raise_alarm(req)
    assert first == again and first.target.id == "M001" and first.alarm.data["to"] == "M001"
    assert [e["type"] for e in stack.store.history("ticket", tid)] == ["Reported", "SlaBreached", "Escalated"]
    assert [(n["target"], n["kind"]) for n in stack.outbox.for_ticket(tid)] == [("M001", "Escalated")]
