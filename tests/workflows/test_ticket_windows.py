"""Each cell of the response-window table on the time-skipping server, both sides
of each deadline, and the escalation chain: direct superior, then leadership."""
from datetime import datetime, timedelta

import pytest

from domain.policy import CST
from tests.conftest import dispatch, quiet, report, settle, sleep_until, step

MINUTE = timedelta(minutes=1)
CELLS = [  # severity, zone, goal
    ("general", "A", "resolved"),
    ("major", "A", "resolved"),
    ("critical", "A", "on_site"),
    ("general", "B", "on_site"),
    ("major", "B", "on_site"),
    ("critical", "B", "on_site"),
]


async def meet(handle, goal):
    await step(handle, "arrive", "E001", staff_id_shown=True)
    if goal == "resolved":
        await step(handle, "resolve", "E001", cause="failed PSU", resolution="replaced PSU", parts_used=["PSU"])


@pytest.mark.parametrize("severity,zone,goal", CELLS)
async def test_goal_met_a_minute_before_the_deadline_never_breaches(env, worker, stack, severity, zone, goal):
    handle, state = await report(env.client, worker, severity, zone)
    await dispatch(handle, severity, zone)
    deadline = state.deadlines[goal]
    await sleep_until(env, deadline - MINUTE)
    await meet(handle, goal)
    await sleep_until(env, deadline + (deadline - state.reported_at))  # well past leadership time
    final = await settle(handle, lambda s: goal in s.met)
    assert final.met[goal] <= deadline
    assert final.breaches == [] and final.escalations == []
    assert [e["type"] for e in stack.store.history("ticket", state.ticket_id)].count("SlaBreached") == 0


@pytest.mark.parametrize("severity,zone,goal", CELLS)
async def test_goal_unmet_at_the_deadline_breaches_and_escalates_to_superior_then_leadership(
        env, worker, stack, severity, zone, goal):
    handle, state = await report(env.client, worker, severity, zone)
    await dispatch(handle, severity, zone, engineer="E002")  # E002's direct superior is S002
    deadline = state.deadlines[goal]
    window = deadline - state.reported_at
    await sleep_until(env, deadline + MINUTE)
    s = await settle(handle, lambda s: len(s.escalations) == 1)
    assert [b.goal for b in s.breaches] == [goal]
    assert s.escalations[0].level == 1 and s.escalations[0].to == "S002"
    assert s.escalations[0].at > deadline
    await sleep_until(env, deadline + window / 2 - MINUTE)
    s = await quiet(handle, deadline + window / 2 - MINUTE)
    assert len(s.escalations) == 1  # leadership not yet
    await sleep_until(env, deadline + window / 2 + MINUTE)
    s = await settle(handle, lambda s: len(s.escalations) == 2)
    assert s.escalations[1].level == 2 and s.escalations[1].to == "L001"


async def test_critical_zone_a_on_site_at_3h59m_does_not_breach(env, worker, stack):
    handle, state = await report(env.client, worker, "critical", "A")
    await dispatch(handle)
    await sleep_until(env, state.reported_at + timedelta(hours=3, minutes=59))
    s = await step(handle, "arrive", "E001", staff_id_shown=True)
    assert "on_site" in s.met
    await env.sleep(timedelta(hours=8))
    s = await quiet(handle, await env.get_current_time())
    assert s.breaches == [] and s.escalations == []


async def test_critical_zone_a_not_on_site_at_4h_escalates_to_superior_then_leadership_at_6h(env, worker, stack):
    handle, state = await report(env.client, worker, "critical", "A")
    await dispatch(handle)
    await sleep_until(env, state.reported_at + timedelta(hours=4, seconds=1))
    s = await settle(handle, lambda s: s.escalations)
    assert s.breaches[0].goal == "on_site" and s.escalations[0].to == "S001"
    await sleep_until(env, state.reported_at + timedelta(hours=6, seconds=1))
    s = await settle(handle, lambda s: len(s.escalations) == 2)
    assert s.escalations[1].to == "L001"
    notified = [(n["target"], n["kind"]) for n in stack.outbox.for_ticket(state.ticket_id)]
    assert notified == [("E001", "SlaWarned"), ("S001", "Escalated"), ("L001", "Escalated")]


async def test_warning_to_the_assignee_at_75_percent_of_the_window(env, worker, stack):
    handle, state = await report(env.client, worker, "critical", "A")
    await dispatch(handle)
    await sleep_until(env, state.reported_at + timedelta(hours=3) - MINUTE)
    s = await quiet(handle, state.reported_at + timedelta(hours=3) - MINUTE)
    assert s.warnings == []
    await sleep_until(env, state.reported_at + timedelta(hours=3) + MINUTE)
    s = await settle(handle, lambda s: s.warnings)
    assert s.warnings[0].to == "E001" and s.warnings[0].goal == "on_site"
    assert s.breaches == []


async def test_unassigned_ticket_escalates_to_the_dispatching_supervisors_superior(env, worker, stack):
    handle, state = await report(env.client, worker, "critical", "A")
    await step(handle, "triage", "S002", severity="critical", zone="A")  # triaged, never dispatched
    await sleep_until(env, state.reported_at + timedelta(hours=4, minutes=1))
    s = await settle(handle, lambda s: s.escalations)
    assert s.warnings[0].to == "S002"
    assert s.escalations[0].to == "M002"  # S002's direct superior


async def test_general_fault_reported_at_2330_utc8_is_due_at_the_end_of_the_next_day(env, worker, stack):
    now = (await env.get_current_time()).astimezone(CST)
    at_2330 = datetime(now.year, now.month, now.day, 23, 30, tzinfo=CST)
    if at_2330 <= now:
        at_2330 += timedelta(days=1)
    await sleep_until(env, at_2330)
    handle, state = await report(env.client, worker, "general", "A")
    reported_cst = state.reported_at.astimezone(CST)
    assert reported_cst.hour == 23
    end_of_next_day = datetime(reported_cst.year, reported_cst.month, reported_cst.day, tzinfo=CST) + timedelta(days=2)
    assert state.deadlines == {"resolved": end_of_next_day}
    await dispatch(handle, "general", "A")
    await sleep_until(env, end_of_next_day + MINUTE)
    s = await settle(handle, lambda s: s.breaches)
    assert s.breaches[0].goal == "resolved"


async def test_zone_b_is_on_site_within_48h(env, worker, stack):
    handle, state = await report(env.client, worker, "critical", "B")
    assert state.deadlines == {"on_site": state.reported_at + timedelta(hours=48)}
    await dispatch(handle, "critical", "B")
    await sleep_until(env, state.reported_at + timedelta(hours=47, minutes=59))
    await step(handle, "arrive", "E001", staff_id_shown=True)
    s = await settle(handle, lambda s: "on_site" in s.met)
    assert s.breaches == []


async def test_a_ticket_resolved_before_its_deadline_never_escalates(env, worker, stack):
    handle, state = await report(env.client, worker, "major", "A")
    await dispatch(handle, "major", "A")
    await step(handle, "start-remote", "E001", customer_consent=True, consent_by="Dr Li")
    await step(handle, "resolve", "E001", cause="config", resolution="restored config")
    await env.sleep(timedelta(days=3))
    s = await quiet(handle, await env.get_current_time())
    assert s.warnings == [] and s.breaches == [] and s.escalations == []
    assert stack.outbox.for_ticket(state.ticket_id) == []
