"""Every kind's fold copies its state shallowly (issue 16: a replay folds every event, and a
deep copy per event was most of its cost), so every event must replace what it changes
and never change the state it started from: a cached state (the workflow's, the console's
by identity) must stay what it was. One history per kind and flow, together covering
every event the kind declares (domain.kinds)."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from domain.chained import event_types
from domain.casework import open_window
from domain.kinds import KINDS

T0 = datetime(2026, 11, 2, 1, 0, tzinfo=timezone.utc)


def at(hours: float) -> datetime:
    return T0 + timedelta(hours=hours)


def alarms(goal: str, deadline: datetime, notice: str) -> list[tuple[str, dict, str]]:
    """A warning, breach, both escalations, their delivery and an acknowledgement."""
    d = deadline.isoformat()
    return [
        ("SlaWarned", {"goal": goal, "deadline": d, "level": 0, "to": "S001"}, "weibao"),
        ("SlaBreached", {"goal": goal, "deadline": d}, "weibao"),
        ("Escalated", {"goal": goal, "deadline": d, "level": 1, "to": "M001", "due": d}, "weibao"),
        ("NotificationSent", {"notice": notice, "to": "M001", "channel": "email"}, "weibao"),
        ("NotificationGivenUp", {"notice": notice, "to": "M001", "channel": "wecom", "reason": "down"}, "weibao"),
        ("EscalationAcknowledged", {"notice": notice, "to": "M001", "by": "M001", "via": "link"}, "M001"),
        ("Escalated", {"goal": goal, "deadline": d, "level": 2, "to": "L001", "due": d}, "weibao"),
    ]


def complaint() -> list[tuple[str, dict, str]]:
    windows = {g: open_window(g, T0, w, "H001", "D2") for g, w in
               (("acknowledged", timedelta(hours=2)), ("replied", timedelta(hours=24)))}
    return [
        ("Registered", {"customer": "Kunming No.2", "contact": "Dr Li", "channel": "phone", "category": "service",
                        "description": "late", "about_person": "E001", "routed_to": "D2", "routed_head": "H001",
                        "emergency": True, "windows": windows}, "S001"),
        ("LeadershipNotified", {}, "weibao"),
        *alarms("acknowledged", at(2), "n1"),
        ("Acknowledged", {"handler": "E002"}, "H001"),
        ("CustomerEscalated", {"level": 1, "to": "superior", "to_staff": "M001", "reason": "slow"}, "S001"),
        ("Replied", {"reply": "sorry", "substantiated": True, "responsible_person": "E001"}, "E002"),
        ("Closed", {"satisfaction": 4}, "S001"),
    ]


def returns(outcome: str) -> list[tuple[str, dict, str]]:
    paid = ("Refunded", {"amount_yuan": "1200.00"}, "F001") if outcome == "return" else \
        ("ExchangeShipped", {"replacement_serial_no": "SN-2"}, "P001")
    return [
        ("Requested", {"customer": "Kunming No.2", "contact": "Dr Li", "product": "HIS-Server", "serial_no": "SN-1",
                       "delivery_date": "2026-10-30", "defect": "dead", "decision": {"outcome": outcome},
                       "routes": {g: {"department": "D1", "responsible": "P001"} for g in
                                  ("approval", "inspection", "refund", "shipment", "confirmation")},
                       "spans": {"approval": 86400.0}}, "S001"),
        ("Assigned", {"person": "P002"}, "P001"),
        *alarms("approval", at(24), "n2"),
        ("Approved", {"approved": True}, "P002"),
        ("Inspected", {"defect_confirmed": True, "root_cause": "PSU", "responsible_department": "D3"}, "R001"),
        paid,
        ("Confirmed", {"satisfaction": 5}, "S001"),
    ]


def inspection(kind: str) -> list[tuple[str, dict, str]]:
    window = open_window("done", T0, timedelta(days=7), "E001", "D1")
    done = ("FollowUpCalled", {"reached": "Dr Li", "notes": "fine"}, "E002") if kind == "follow_up" else \
        ("Inspected", {"team": ["E002"], "findings": [{"device": "HIS", "ok": False}], "replacements": ["fan"]}, "E002")
    return [
        ("Scheduled", {"contract_id": "C1", "kind": kind, "month": 1, "customer": "Kunming No.2", "site": "Kunming",
                       "zone": "A", "responsible": "E001", "due_at": at(168).isoformat(), "window": window}, "weibao"),
        ("Assigned", {"engineer": "E002"}, "M001"),
        *alarms("done", at(168), "n3"),
        done,
        ("FaultTicketOpened", {"finding": 0, "device": "HIS", "ticket_id": "t1"}, "weibao"),
        ("Cancelled", {"reason": "contract ended"}, "M001"),
    ]


def plan() -> list[tuple[str, dict, str]]:
    def visit(kind: str, month: int) -> tuple[str, dict, str]:
        return ("VisitScheduled", {"kind": kind, "month": month, "due_on": f"2026-{10 + month}-01",
                                   "inspection_id": f"i{month}"}, "weibao")
    return [
        ("PlanStarted", {"customer": "Kunming No.2", "site": "Kunming", "delivery_date": "2026-10-01",
                         "end_date": "2027-10-01", "responsible": "E001"}, "M001"),
        visit("follow_up", 1),
        visit("routine", 1),
        ("PlanChanged", {"routine_every_months": 1, "responsible": "E002", "end_date": "2028-10-01"}, "M001"),
        visit("follow_up", 2),
        ("PlanEnded", {"reason": "contract ended"}, "M001"),
    ]


HISTORIES = {
    "complaint": [complaint()],
    "return": [returns("return"), returns("exchange")],
    "inspection": [inspection("follow_up"), inspection("full")],
    "plan": [plan()],
}


@pytest.mark.parametrize("kind", sorted(HISTORIES))
def test_each_event_leaves_the_state_it_started_from_as_it_was(kind):
    aggregate = KINDS[kind].aggregate
    for history in HISTORIES[kind]:
        state = aggregate.new_state("c1")
        for i, (event, data, actor) in enumerate(history):
            before = state.model_dump()
            after = aggregate.fold(state, event, data, at(i), actor)
            assert state.model_dump() == before, f"{kind}: {event} changed the state it started from"
            assert after.model_dump() != before and after.version == state.version + 1, event
            # and the same as folding a private deep copy: nothing depends on what is shared
            assert aggregate.fold(state.model_copy(deep=True), event, data, at(i), actor).model_dump() == \
                after.model_dump(), event
            state = after


@pytest.mark.parametrize("kind", sorted(HISTORIES))
def test_the_histories_cover_every_event_the_kind_declares(kind):
    folded = {event for history in HISTORIES[kind] for event, _, _ in history}
    assert folded == event_types(KINDS[kind].aggregate)


def test_what_the_folds_change_they_change_as_the_rules_say():
    """The replacements keep the meaning: the first time a goal is met counts, the window's
    responsible person moves with an assignment, and requests, tickets and visits add up."""
    complaint_state = _fold("complaint", complaint())
    assert complaint_state.met["acknowledged"] < complaint_state.met["replied"]  # acknowledged first, kept
    assert complaint_state.windows["replied"].responsible == "E002"  # the handler answers for the reply
    assert complaint_state.windows["acknowledged"].responsible == "H001"  # met by the acknowledgement: kept
    assert [r.level for r in complaint_state.requests] == [1]
    assert complaint_state.notices["n1"].delivered == ["email"] and complaint_state.notices["n1"].acknowledged_by

    exchange = _fold("return", returns("exchange"))
    assert exchange.status == "closed" and set(exchange.met) == {"approval", "inspection", "shipment", "confirmation"}
    assert exchange.windows["approval"].responsible == "P002" and exchange.routes["approval"].responsible == "P002"
    assert exchange.routes["inspection"].responsible == "P001"  # only the open hand-off's route moved

    inspected = _fold("inspection", inspection("full"))
    assert inspected.windows["done"].responsible == "E002" and inspected.responsible == "E002"
    assert [t["ticket_id"] for t in inspected.tickets] == ["t1"] and inspected.status == "cancelled"

    p = _fold("plan", plan())
    assert p.counts["follow_up"] == 2 and p.counts["routine"] == 1 and p.next_month == 3


def _fold(kind: str, history: list[tuple[str, dict, str]]):
    aggregate = KINDS[kind].aggregate
    state = aggregate.new_state("c1")
    for i, (event, data, actor) in enumerate(history):
        state = aggregate.fold(state, event, data, at(i), actor)
    return state
