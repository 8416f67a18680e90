"""The response-window table, the deadline boundary and the alarm schedule: pure rules."""
from datetime import datetime, timedelta, timezone

import pytest

from domain import policy, sla
from domain.lifecycle import IllegalStep, TicketState, check, evolve, windows_data
from domain.policy import CST

T0 = datetime(2026, 3, 2, 1, 0, tzinfo=timezone.utc)  # 09:00 in Kunming


def reported(severity="critical", zone="A", at=T0) -> TicketState:
    return evolve(TicketState(ticket_id="t"), "Reported",
                  {"severity": severity, "zone": zone, "customer": "c", "windows": windows_data(at, severity, zone)},
                  at, "C001")


@pytest.mark.parametrize("severity,zone,goal,after", [
    ("major", "A", "resolved", timedelta(hours=6)),
    ("critical", "A", "on_site", timedelta(hours=4)),
    ("general", "B", "on_site", timedelta(hours=48)),
    ("major", "B", "on_site", timedelta(hours=48)),
    ("critical", "B", "on_site", timedelta(hours=48)),
])
def test_each_fixed_window_of_the_table(severity, zone, goal, after):
    assert policy.deadlines(T0, severity, zone) == {goal: T0 + after}


def test_general_zone_a_is_resolved_by_the_end_of_the_next_day_in_utc8():
    at = datetime(2026, 3, 2, 9, 0, tzinfo=CST)
    assert policy.deadlines(at, "general", "A") == {"resolved": datetime(2026, 3, 4, 0, 0, tzinfo=CST)}


def test_general_fault_reported_at_2330_utc8_is_due_at_the_end_of_the_next_day():
    at = datetime(2026, 3, 2, 23, 30, tzinfo=CST)  # 15:30 UTC the same date
    assert policy.deadlines(at.astimezone(timezone.utc), "general", "A") == {
        "resolved": datetime(2026, 3, 4, 0, 0, tzinfo=CST)}


def test_general_fault_reported_at_0030_utc8_counts_the_utc8_day_not_the_utc_day():
    at = datetime(2026, 3, 3, 0, 30, tzinfo=CST)  # still 2 March in UTC
    assert policy.deadlines(at, "general", "A") == {"resolved": datetime(2026, 3, 5, 0, 0, tzinfo=CST)}


def test_unknown_severity_or_zone_is_refused():
    with pytest.raises(ValueError):
        policy.deadlines(T0, "catastrophic", "A")
    with pytest.raises(ValueError):
        policy.deadlines(T0, "general", "C")


def test_a_goal_met_exactly_at_its_deadline_counts_as_met():
    deadline = T0 + timedelta(hours=4)
    assert policy.is_met(deadline, deadline)
    assert not policy.is_met(deadline + timedelta(milliseconds=1), deadline)


def test_the_breach_falls_due_the_first_instant_after_the_deadline():
    state = reported()
    deadline = state.deadlines["on_site"]
    ready, _ = sla.due(state, deadline)
    assert [a.kind for a in ready] == ["warning"]
    ready, _ = sla.due(state, deadline + timedelta(milliseconds=1))
    assert [a.kind for a in ready] == ["breach"]  # the late warning is moot


def test_alarm_schedule_for_critical_zone_a():
    alarms = {a.kind: a.at - T0 for a in sla.pending(reported())}
    assert alarms == {"warning": timedelta(hours=3),
                      "breach": timedelta(hours=4, milliseconds=1),
                      "leadership": timedelta(hours=6, milliseconds=1)}


def test_a_met_goal_has_no_alarms_and_resolution_meets_the_on_site_goal():
    state = reported()
    state = evolve(state, "Triaged", {"severity": "critical", "zone": "A"}, T0, "S001")
    state = evolve(state, "Dispatched", {"engineer": "E001"}, T0, "S001")
    state = evolve(state, "RemoteSessionStarted", {"customer_consent": True}, T0, "E001")
    assert sla.pending(state)
    state = evolve(state, "Resolved", {"cause": "x", "resolution": "y"}, T0 + timedelta(hours=1), "E001")
    assert sla.pending(state) == []


def test_an_illegal_step_names_the_state_and_the_step():
    with pytest.raises(IllegalStep) as e:
        check(reported(), "resolve", {})
    assert e.value.status == "reported" and e.value.step == "resolve"
    assert "'resolve'" in str(e.value) and "'reported'" in str(e.value)


def test_paid_work_needs_the_fee_accepted_before_resolution():
    state = reported()
    state = evolve(state, "Triaged", {"severity": "critical", "zone": "A", "service_category": "paid"}, T0, "S001")
    state = evolve(state, "Dispatched", {"engineer": "E001"}, T0, "S001")
    state = evolve(state, "ArrivedOnSite", {"staff_id_shown": True}, T0, "E001")
    with pytest.raises(IllegalStep, match="fee accepted"):
        check(state, "resolve", {})
    state = evolve(state, "FeeQuoted", {"amount_yuan": "300.00", "items": ["labour"]}, T0, "E001")
    state = evolve(state, "FeeAccepted", {"accepted_by": "Dr Li"}, T0, "E001")
    check(state, "resolve", {})


def test_the_fold_leaves_the_state_it_started_from_as_it_was():
    """evolve copies shallowly: every event must replace what it changes, not change it in place."""
    from domain.lifecycle import TicketState

    events = [
        ("Triaged", {"severity": "critical", "zone": "A", "windows": windows_data(T0, "critical", "A")}, "S001"),
        ("Dispatched", {"engineer": "E001"}, "S001"),
        ("SlaWarned", {"goal": "on_site", "deadline": (T0 + timedelta(hours=4)).isoformat(), "level": 0,
                       "to": "E001"}, "weibao"),
        ("SlaBreached", {"goal": "on_site", "deadline": (T0 + timedelta(hours=4)).isoformat()}, "weibao"),
        ("Escalated", {"goal": "on_site", "deadline": (T0 + timedelta(hours=4)).isoformat(), "level": 2,
                       "to": "L001"}, "weibao"),
        ("NotificationSent", {"notice": "n1", "to": "L001", "channel": "email"}, "weibao"),
        ("EscalationAcknowledged", {"notice": "n1", "to": "L001", "by": "L001"}, "L001"),
        ("ArrivedOnSite", {"staff_id_shown": True}, "E001"),
        ("Resolved", {"cause": "x", "resolution": "y"}, "E001"),
    ]
    state = reported()
    for kind, data, actor in events:
        before = state.model_dump()
        after = evolve(state, kind, data, T0 + timedelta(hours=5), actor)
        assert state.model_dump() == before, kind
        assert after.model_dump() != before and after.version == state.version + 1
        state = after
    assert state.met == {"on_site": T0 + timedelta(hours=5), "resolved": T0 + timedelta(hours=5)}
    assert state.notices["n1"].acknowledged_by == "L001" and state.notices["n1"].delivered == ["email"]
    assert [a.level for a in state.escalations] == [2] and len(state.fired) == 3
