"""Re-triage: windows recomputed from the original report, and each alarm once."""
from datetime import timedelta

from tests.conftest import dispatch, quiet, report, settle, sleep_until, step

MINUTE = timedelta(minutes=1)


async def test_retriage_general_to_critical_2h_after_report_makes_on_site_due_at_report_plus_4h(env, worker, stack):
    handle, state = await report(env.client, worker, "general", "A")
    await dispatch(handle, "general", "A")
    await sleep_until(env, state.reported_at + timedelta(hours=2))
    s = await step(handle, "triage", "S001", severity="critical", zone="A")
    assert s.deadlines == {"on_site": state.reported_at + timedelta(hours=4)}
    await sleep_until(env, state.reported_at + timedelta(hours=4) + MINUTE)
    s = await settle(handle, lambda s: s.escalations)
    assert [b.goal for b in s.breaches] == ["on_site"] and s.escalations[0].to == "S001"
    # the history shows both: the report's window and the re-triaged one
    triaged = [e for e in stack.store.history("ticket", state.ticket_id) if e["type"] == "Triaged"]
    assert triaged[-1]["data"]["previous_deadlines"] == {"resolved": state.deadlines["resolved"].isoformat()}
    assert triaged[-1]["data"]["deadlines"] == {"on_site": s.deadlines["on_site"].isoformat()}


async def test_retriage_to_critical_after_the_new_deadline_breaches_and_escalates_at_once(env, worker, stack):
    handle, state = await report(env.client, worker, "general", "A")
    await dispatch(handle, "general", "A")
    await sleep_until(env, state.reported_at + timedelta(hours=5))
    retriaged_at = await env.get_current_time()
    await step(handle, "triage", "S001", severity="critical", zone="A")
    s = await settle(handle, lambda s: s.escalations)
    assert s.breaches[0].goal == "on_site"
    assert s.escalations[0].level == 1 and s.escalations[0].to == "S001"
    assert s.escalations[0].at - retriaged_at < MINUTE  # at once, not at some later timer
    assert s.warnings == []  # a warning after the breach says nothing new
    await sleep_until(env, state.reported_at + timedelta(hours=6) + MINUTE)
    s = await settle(handle, lambda s: len(s.escalations) == 2)
    assert s.escalations[1].to == "L001"


async def test_retriage_downward_cancels_the_stricter_windows_pending_timers(env, worker, stack):
    handle, state = await report(env.client, worker, "critical", "A")
    await dispatch(handle, "critical", "A")
    await sleep_until(env, state.reported_at + timedelta(hours=1))
    s = await step(handle, "triage", "S001", severity="general", zone="B")
    assert list(s.deadlines) == ["on_site"] and s.deadlines["on_site"] == state.reported_at + timedelta(hours=48)
    await sleep_until(env, state.reported_at + timedelta(hours=7))  # past the old 3h warning, 4h and 6h alarms
    s = await quiet(handle, state.reported_at + timedelta(hours=7))
    assert s.warnings == [] and s.breaches == [] and s.escalations == []
    await sleep_until(env, state.reported_at + timedelta(hours=48) + MINUTE)
    s = await settle(handle, lambda s: s.breaches)
    assert s.breaches[0].deadline == state.reported_at + timedelta(hours=48)


async def test_each_warning_and_escalation_fires_exactly_once_however_often_the_ticket_changes(env, worker, stack):
    handle, state = await report(env.client, worker, "critical", "A")
    await dispatch(handle, "critical", "A")
    for hour, zone in ((1, "A"), (2, "A"), (3.5, "A"), (4.5, "A"), (5, "A")):
        await sleep_until(env, state.reported_at + timedelta(hours=hour))
        await step(handle, "triage", "S001", severity="critical", zone=zone)  # same windows, re-confirmed
        await step(handle, "dispatch", "S001", engineer="E001", travel_mode="taxi")
    await sleep_until(env, state.reported_at + timedelta(hours=10))
    s = await settle(handle, lambda s: len(s.escalations) == 2)
    assert len(s.warnings) == 1 and len(s.breaches) == 1
    assert [e.level for e in s.escalations] == [1, 2]
    types = [e["type"] for e in stack.store.history("ticket", state.ticket_id)]
    assert (types.count("SlaWarned"), types.count("SlaBreached"), types.count("Escalated")) == (1, 1, 2)
    assert len(stack.outbox.for_ticket(state.ticket_id)) == 3
