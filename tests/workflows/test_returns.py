"""Returns and exchanges (§九.D): the 7/15-day eligibility edges, the hand-offs across
departments with a window each counted from the hand-off, their escalation, and the
attributed root cause."""
from datetime import date, timedelta

import pytest
from temporalio.client import WorkflowUpdateFailedError

from domain import chain
from domain.policy import CST
from domain.return_rules import decide
from tests.case_helpers import INSPECTED, ReturnWorkflow, request_return, step
from tests.conftest import settle
from tests.conftest import sleep_until

MINUTE = timedelta(minutes=1)
H = timedelta(hours=1)
DELIVERED = date(2026, 3, 2)


@pytest.mark.parametrize("days,outcome", [(0, "return"), (7, "return"), (8, "exchange"), (15, "exchange"),
                                          (16, "repair"), (365, "repair")])
def test_quality_defect_returns_within_7_days_exchanges_within_15_then_repairs_under_warranty(days, outcome):
    d = decide(DELIVERED, DELIVERED + timedelta(days=days), "quality")
    assert (d.outcome, d.days_since_delivery) == (outcome, days)
    if outcome == "repair":
        assert "open a fault ticket" in d.next_action


def test_the_customer_may_take_an_exchange_within_the_return_period_but_not_a_return_after_it():
    assert decide(DELIVERED, DELIVERED + timedelta(days=3), "quality", wanted="exchange").outcome == "exchange"
    assert decide(DELIVERED, DELIVERED + timedelta(days=10), "quality", wanted="return").outcome == "exchange"


@pytest.mark.parametrize("kind,days,warranty,words", [
    ("user_damage", 2, None, "not covered"),
    ("other", 2, None, "not covered"),
    ("quality", 400, DELIVERED + timedelta(days=365), "warranty ended"),
])
def test_other_defects_and_expired_warranties_are_refused_with_the_reason(kind, days, warranty, words):
    d = decide(DELIVERED, DELIVERED + timedelta(days=days), kind, warranty_until=warranty)
    assert d.outcome == "refused" and words in d.reason


def test_a_delivery_after_the_request_is_refused():
    with pytest.raises(ValueError, match="after the request"):
        decide(DELIVERED, DELIVERED - timedelta(days=1), "quality")


async def today(env) -> date:
    return (await env.get_current_time()).astimezone(CST).date()


@pytest.mark.parametrize("days,outcome,status", [(7, "return", "open"), (8, "exchange", "open"),
                                                 (15, "exchange", "open"), (16, "repair", "repair")])
async def test_the_workflow_decides_eligibility_on_the_request_day_in_china_time(env, worker, stack, days, outcome,
                                                                                 status):
    handle, s = await request_return(env.client, worker, delivery_date=(await today(env)) - timedelta(days=days))
    assert (s.outcome, s.status, s.decision["days_since_delivery"]) == (outcome, status, days)
    if status == "repair":  # nothing more to do here: the answer says to open a fault ticket
        assert "open a fault ticket" in s.decision["next_action"] and s.windows == {}
        assert (await handle.result()).status == "repair"
    else:
        assert s.stage == "approval" and s.windows["approval"].responsible == "M002"


async def rstep(handle, name, actor, **data):
    return await step(handle, ReturnWorkflow, name, actor, **data)


async def test_a_return_runs_approval_inspection_refund_and_confirmation_and_records_the_cause(env, worker, stack):
    handle, s = await request_return(env.client, worker, delivery_date=await today(env))
    await rstep(handle, "approve", "M002", approved=True)
    st = await rstep(handle, "inspect", "M003", **INSPECTED)
    assert st.stage == "refund" and st.windows["refund"].responsible == "F001"
    with pytest.raises(WorkflowUpdateFailedError) as e:
        await rstep(handle, "ship", "M002", replacement_serial_no="T20-0002")
    assert e.value.cause.type == "IllegalStep" and "a return has no shipment step" in e.value.cause.message
    await rstep(handle, "refund", "F001", amount_yuan="3200.00", reference="FIN-2026-0042")
    st = await rstep(handle, "confirm", "C001", confirmed_by="Dr Li", satisfaction=5)
    assert st.status == "closed" and st.refund_yuan == "3200.00"
    events = stack.store.history("return", s.case_id)
    assert [e["type"] for e in events] == ["Requested", "Approved", "Inspected", "Refunded", "Confirmed"]
    assert events[2]["data"]["responsible_department"] == "rnd" and events[2]["data"]["responsible_person"] == "M003"
    assert events[0]["data"]["decision"]["outcome"] == "return"
    assert chain.verify(events) is None
    assert st.breaches == [] and st.escalations == []


async def test_an_exchange_ships_the_replacement_instead_of_a_refund(env, worker, stack):
    handle, s = await request_return(env.client, worker, delivery_date=(await today(env)) - timedelta(days=10))
    await rstep(handle, "approve", "M002", approved=True)
    await rstep(handle, "inspect", "M003", **INSPECTED)
    with pytest.raises(WorkflowUpdateFailedError) as e:
        await rstep(handle, "refund", "F001", amount_yuan="1", reference="x")
    assert e.value.cause.type == "IllegalStep"
    st = await rstep(handle, "ship", "M002", replacement_serial_no="T20-0002", carrier="SF Express")
    assert st.stage == "confirmation" and st.windows["confirmation"].responsible == "M001"
    st = await rstep(handle, "confirm", "C001", confirmed_by="Dr Li", satisfaction=4)
    assert st.status == "closed" and st.replacement_serial_no == "T20-0002"


async def test_approval_not_given_in_24h_warns_at_18h_escalates_to_the_superior_then_leadership(env, worker, stack):
    handle, s = await request_return(env.client, worker, delivery_date=await today(env))
    await rstep(handle, "assign", "M002", person="S002")  # S002's direct superior is M002
    await sleep_until(env, s.requested_at + 18 * H + MINUTE)
    st = await settle(handle, lambda st: st.warnings, workflow=ReturnWorkflow)
    assert (st.warnings[0].goal, st.warnings[0].to) == ("approval", "S002") and st.breaches == []
    await sleep_until(env, s.requested_at + 24 * H + MINUTE)
    st = await settle(handle, lambda st: st.escalations, workflow=ReturnWorkflow)
    assert [b.goal for b in st.breaches] == ["approval"] and st.breaches[0].responsible == "S002"
    assert (st.escalations[0].level, st.escalations[0].to) == (1, "M002")
    await sleep_until(env, s.requested_at + 36 * H + MINUTE)
    st = await settle(handle, lambda st: len(st.escalations) == 2, workflow=ReturnWorkflow)
    assert (st.escalations[1].level, st.escalations[1].to) == (2, "L001")


async def test_each_hand_off_window_is_counted_from_the_hand_off(env, worker, stack):
    handle, s = await request_return(env.client, worker, delivery_date=await today(env))
    await sleep_until(env, s.requested_at + 20 * H)
    st = await rstep(handle, "approve", "M002", approved=True)
    approved_at = st.met["approval"]
    assert st.windows["inspection"].started_at == approved_at
    assert st.windows["inspection"].deadline == approved_at + 72 * H
    await sleep_until(env, approved_at + 72 * H - MINUTE)
    st = await settle(handle, lambda st: st.warnings, workflow=ReturnWorkflow)
    assert st.breaches == [] and st.warnings[-1].goal == "inspection" and st.warnings[-1].to == "M003"
    await sleep_until(env, approved_at + 72 * H + MINUTE)
    st = await settle(handle, lambda st: st.breaches, workflow=ReturnWorkflow)
    assert [b.goal for b in st.breaches] == ["inspection"]
    assert st.escalations[0].to == "L001"  # the R&D head's direct superior


async def test_a_rejected_approval_or_no_defect_found_ends_the_case_with_the_reason(env, worker, stack):
    handle, _ = await request_return(env.client, worker, delivery_date=await today(env))
    with pytest.raises(WorkflowUpdateFailedError) as e:
        await rstep(handle, "approve", "M002", approved=False)
    assert e.value.cause.details[0] == {"field": "note"}
    st = await rstep(handle, "approve", "M002", approved=False, note="the seal is broken: opened and modified")
    assert st.status == "rejected" and "seal" in st.rejected_reason
    assert (await handle.result()).status == "rejected"
    handle, _ = await request_return(env.client, worker, delivery_date=await today(env))
    await rstep(handle, "approve", "M002", approved=True)
    st = await rstep(handle, "inspect", "M003", defect_confirmed=False, root_cause="works to specification")
    assert st.status == "rejected" and "no defect found" in st.rejected_reason


@pytest.mark.parametrize("data,field", [
    ({**INSPECTED, "responsible_department": "marketing"}, "responsible_department"),
    ({**INSPECTED, "responsible_person": "X999"}, "responsible_person"),
    ({k: v for k, v in INSPECTED.items() if k != "responsible_department"}, "responsible_department"),
])
async def test_the_root_cause_must_name_a_real_department_and_person(env, worker, stack, data, field):
    handle, s = await request_return(env.client, worker, delivery_date=await today(env))
    await rstep(handle, "approve", "M002", approved=True)
    with pytest.raises(WorkflowUpdateFailedError) as e:
        await rstep(handle, "inspect", "M003", **data)
    assert e.value.cause.type == "InvalidStepData" and e.value.cause.details[0] == {"field": field}
    assert [e["type"] for e in stack.store.history("return", s.case_id)] == ["Requested", "Approved"]


async def test_a_delivery_date_after_the_request_is_refused_naming_the_field(env, worker, stack):
    with pytest.raises(WorkflowUpdateFailedError) as e:
        await request_return(env.client, worker, delivery_date=(await today(env)) + timedelta(days=2))
    assert e.value.cause.details[0] == {"field": "delivery_date"}
