"""Complaints (§九.C) on the time-skipping server: routing, the 2 h / 24 h windows, the
escalation to the direct superior of the person complained about and then leadership,
the customer's own escalation, emergencies, and the recorded outcome."""
from datetime import timedelta

import pytest
from temporalio.client import WorkflowUpdateFailedError

from domain import chain
from tests.case_helpers import ComplaintWorkflow, linked_cases, register_complaint, step
from tests.conftest import quiet, settle
from tests.conftest import sleep_until

MINUTE = timedelta(minutes=1)
H = timedelta(hours=1)


def history(stack, cid):
    return stack.store.history("complaint", cid)


def types(stack, cid):
    return [e["type"] for e in history(stack, cid)]


async def cstep(handle, name, actor, **data):
    return await step(handle, ComplaintWorkflow, name, actor, **data)


async def settled(handle, predicate):
    return await settle(handle, predicate, workflow=ComplaintWorkflow)


@pytest.mark.parametrize("category,department,head", [
    ("product_quality", "rnd", "M003"), ("functionality", "rnd", "M003"),
    ("installation", "project", "M002"), ("service_attitude", "project", "M002"),
])
async def test_category_routes_quality_and_function_to_rnd_and_the_rest_to_the_project_department(
        env, worker, stack, category, department, head):
    _, s = await register_complaint(env.client, worker, category=category, about_department=department)
    assert (s.routed_to, s.routed_head) == (department, head)
    assert s.windows["acknowledged"].deadline == s.registered_at + 2 * H
    assert s.windows["replied"].deadline == s.registered_at + 24 * H


async def test_acknowledged_and_replied_within_their_windows_never_escalates(env, worker, stack):
    handle, s = await register_complaint(env.client, worker, about_person="E002")
    await sleep_until(env, s.registered_at + 2 * H - MINUTE)
    await cstep(handle, "acknowledge", "S002")
    await sleep_until(env, s.registered_at + 24 * H - MINUTE)
    await cstep(handle, "reply", "S002", reply="apologised; retrained the engineer", substantiated=True)
    await env.sleep(timedelta(days=3))
    final = await quiet(handle, await env.get_current_time(), workflow=ComplaintWorkflow)
    assert final.breaches == [] and final.escalations == []
    assert [w.to for w in final.warnings] == ["M002", "S002"]  # 75 %: the department head, then the handler
    assert "SlaBreached" not in types(stack, s.case_id)


async def test_unacknowledged_at_2h_escalates_to_the_superior_of_the_person_complained_about_then_leadership_at_3h(
        env, worker, stack):
    handle, s = await register_complaint(env.client, worker, about_person="E002")  # E002's superior is S002
    await sleep_until(env, s.registered_at + 2 * H - MINUTE)
    st = await settled(handle, lambda st: st.warnings)
    assert st.breaches == [] and st.warnings[0].to == "M002"  # the handling department's head, at 1.5 h
    await sleep_until(env, s.registered_at + 2 * H + MINUTE)
    st = await settled(handle, lambda st: st.escalations)
    assert [b.goal for b in st.breaches] == ["acknowledged"]
    assert (st.escalations[0].level, st.escalations[0].to) == (1, "S002")
    await sleep_until(env, s.registered_at + 3 * H - MINUTE)
    assert len((await quiet(handle, s.registered_at + 3 * H - MINUTE, workflow=ComplaintWorkflow)).escalations) == 1
    await sleep_until(env, s.registered_at + 3 * H + MINUTE)
    st = await settled(handle, lambda st: len(st.escalations) == 2)
    assert (st.escalations[1].level, st.escalations[1].to) == (2, "L001")
    notified = [(n["target"], n["kind"]) for n in stack.outbox.for_ticket(f"complaint:{s.case_id}")]
    assert notified == [("M002", "SlaWarned"), ("S002", "Escalated"), ("L001", "Escalated")]


async def test_acknowledged_but_unreplied_at_24h_escalates_up_the_line_to_someone_who_may_act_then_leadership_at_36h(
        env, worker, stack):
    # E001's superior S001 and his head M001 are in after-sales; the complaint is routed to
    # the project department, so neither may act on it: the line climbs to leadership
    handle, s = await register_complaint(env.client, worker, about_person="E001")
    await cstep(handle, "acknowledge", "S002")
    await sleep_until(env, s.registered_at + 24 * H + MINUTE)
    st = await settled(handle, lambda st: st.escalations)
    assert [b.goal for b in st.breaches] == ["replied"] and st.breaches[0].responsible == "S002"
    assert (st.escalations[0].level, st.escalations[0].to) == (1, "L001")
    await sleep_until(env, s.registered_at + 36 * H + MINUTE)
    st = await settled(handle, lambda st: len(st.escalations) == 2)
    assert st.escalations[1].to == "L001"


async def test_complaint_about_a_department_never_escalates_to_its_own_head(env, worker, stack):
    handle, s = await register_complaint(env.client, worker, category="functionality", about_department="rnd")
    assert s.about_head == "M003"  # R&D's head is whom the complaint is about
    await sleep_until(env, s.registered_at + 2 * H + MINUTE)
    st = await settled(handle, lambda st: st.escalations)
    assert st.escalations[0].to == "L001"


async def test_customer_escalation_to_leadership_moves_it_up_at_once_and_no_timer_repeats_it(env, worker, stack):
    handle, s = await register_complaint(env.client, worker, about_person="E002")
    st = await cstep(handle, "escalate", "C001", to="leadership", reason="wants the general manager to answer")
    assert st.requested_level == 2 and [(r.level, r.to) for r in st.requests] == [(2, "L001")]
    assert st.requests[0].at - s.registered_at < MINUTE
    assert [(n["target"], n["kind"]) for n in stack.outbox.for_ticket(f"complaint:{s.case_id}")] == [
        ("L001", "CustomerEscalated")]
    with pytest.raises(WorkflowUpdateFailedError) as e:
        await cstep(handle, "escalate", "C001", to="superior", reason="again")
    assert e.value.cause.type == "IllegalStep" and "leadership" in e.value.cause.message
    await sleep_until(env, s.registered_at + 4 * H)
    st = await settled(handle, lambda st: st.breaches)
    assert [b.goal for b in st.breaches] == ["acknowledged"]  # the breach is still a fact
    assert st.escalations == []  # but nobody is told again what leadership already has
    assert types(stack, s.case_id).count("Escalated") == 0


async def test_customer_escalation_to_the_superior_leaves_leadership_to_the_timer(env, worker, stack):
    handle, s = await register_complaint(env.client, worker, about_person="E002")
    st = await cstep(handle, "escalate", "C001", to="superior", reason="no answer yet")
    assert [(r.level, r.to) for r in st.requests] == [(1, "S002")]
    await sleep_until(env, s.registered_at + 2 * H + MINUTE)
    st = await settled(handle, lambda st: st.breaches)
    assert st.escalations == []  # the superior already has it
    await sleep_until(env, s.registered_at + 3 * H + MINUTE)
    st = await settled(handle, lambda st: st.escalations)
    assert [(e.level, e.to) for e in st.escalations] == [(2, "L001")]


async def test_an_emergency_complaint_notifies_leadership_at_once(env, worker, stack):
    handle, s = await register_complaint(env.client, worker, category="abnormal_operation", emergency=True,
                                         description="the HIS is down in the emergency ward")
    assert s.leadership_notified_at - s.registered_at < MINUTE
    assert types(stack, s.case_id) == ["Registered", "LeadershipNotified"]
    assert stack.outbox.for_ticket(f"complaint:{s.case_id}")[0]["target"] == "L001"


async def test_the_outcome_is_recorded_with_attribution_satisfaction_and_a_suggestion_for_reward(env, worker, stack):
    handle, s = await register_complaint(env.client, worker, about_person="E002", ticket_id="t-42")
    await cstep(handle, "acknowledge", "S002")
    st = await cstep(handle, "reply", "S002", reply="apologised; the engineer is retrained", substantiated=True,
                     finding="the engineer left before the fix was verified")
    assert (st.responsible_person, st.responsible_department) == ("E002", "project")
    st = await cstep(handle, "close", "C001", satisfaction=4, valuable_suggestion=True,
                     reward_note="suggested a call-back after every visit")
    assert st.status == "closed" and st.satisfaction == 4 and st.valuable_suggestion
    assert (await handle.result()).status == "closed"
    events = history(stack, s.case_id)
    assert [e["type"] for e in events] == ["Registered", "Acknowledged", "Replied", "Closed"]
    assert events[0]["data"]["ticket_id"] == "t-42" and events[0]["actor"] == "C001"
    assert events[2]["data"]["substantiated"] is True and events[2]["data"]["responsible_department"] == "project"
    assert chain.verify(events) is None
    assert [(c["kind"], c["case_id"]) for c in linked_cases(stack.store, "t-42")] == [("complaint", s.case_id)]


async def test_windows_are_configurable_per_start(env, worker, stack):
    handle, s = await register_complaint(env.client, worker, about_person="E002",
                                         windows={"acknowledged": timedelta(minutes=30)})
    assert s.windows["acknowledged"].deadline == s.registered_at + timedelta(minutes=30)
    await sleep_until(env, s.registered_at + timedelta(minutes=31))
    st = await settled(handle, lambda st: st.escalations)
    assert st.escalations[0].to == "S002"


@pytest.mark.parametrize("fields,field", [
    ({"about_person": "X999"}, "about_person"),
    ({"about_department": "marketing"}, "about_department"),
])
async def test_an_unknown_person_or_department_is_refused_naming_the_field(env, worker, stack, fields, field):
    with pytest.raises(WorkflowUpdateFailedError) as e:
        await register_complaint(env.client, worker, **fields)
    assert e.value.cause.type == "InvalidStepData" and e.value.cause.details[0] == {"field": field}


async def test_steps_out_of_order_are_refused_and_record_nothing(env, worker, stack):
    handle, s = await register_complaint(env.client, worker, about_person="E002")
    with pytest.raises(WorkflowUpdateFailedError) as e:
        await cstep(handle, "close", "C001", satisfaction=5)
    assert e.value.cause.type == "IllegalStep" and "after the reply" in e.value.cause.message
    with pytest.raises(WorkflowUpdateFailedError) as e:
        await cstep(handle, "reply", "S002", reply="x")
    assert e.value.cause.type == "InvalidStepData" and e.value.cause.details[0] == {"field": "substantiated"}
    with pytest.raises(WorkflowUpdateFailedError) as e:
        await cstep(handle, "acknowledge", "S002", handler="nobody")
    assert e.value.cause.details[0] == {"field": "handler"}
    assert types(stack, s.case_id) == ["Registered"]
