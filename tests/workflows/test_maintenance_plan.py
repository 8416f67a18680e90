"""The routine maintenance plan (§八.7-10) and its visits on the time-skipping server: the
calendar from delivery, a year of a quarterly plan, continue-as-new, the contract's end,
overdue visits escalating like a ticket, what an inspection records, and a finding
that opens a fault ticket."""
from datetime import date, datetime, timedelta

import pytest
from temporalio.client import WorkflowUpdateFailedError

from activities.store import fill_case_ids
from domain.maintenance import add_months, due_at, first_month, inspection_id, kinds_due
from domain.policy import CST
from tests.case_helpers import InspectionWorkflow, PlanWorkflow, linked_cases, start_inspection, start_plan, step
from tests.conftest import settle
from tests.conftest import STARTED, sleep_until
from workflows.inspection import inspection_workflow_id
from workflows.ticket import TicketWorkflow, ticket_workflow_id

MINUTE = timedelta(minutes=1)
DAY = timedelta(days=1)


@pytest.mark.parametrize("every,routine", [(3, 4), (1, 12)])
def test_the_first_year_has_12_follow_ups_2_key_checks_1_full_check_and_monthly_or_quarterly_routines(every, routine):
    year = [k for month in range(1, 13) for k in kinds_due(month, every)]
    assert {k: year.count(k) for k in set(year)} == {"follow_up": 12, "routine": routine, "key_equipment": 2,
                                                     "full": 1}
    assert kinds_due(0, every) == []  # the delivery itself


def test_months_count_from_the_delivery_date_and_clamp_to_the_month_end():
    assert [add_months(date(2026, 1, 31), n) for n in (1, 2, 13)] == [date(2026, 2, 28), date(2026, 3, 31),
                                                                     date(2027, 2, 28)]
    assert due_at(date(2026, 3, 1)) == datetime(2026, 3, 1, tzinfo=CST)


def test_a_plan_started_late_begins_with_the_next_visit_not_a_backlog():
    assert first_month(date(2026, 1, 15), date(2026, 1, 15)) == 1
    assert first_month(date(2026, 1, 15), date(2026, 6, 1)) == 5  # 15 June is still to come


async def today(env) -> date:
    return (await env.get_current_time()).astimezone(CST).date()


def end_visits(client, contract_id, months, every=3):
    """Hand every visit the plan started to teardown (their timers must not outlive the test)."""
    for month in months:
        for kind in kinds_due(month, every):
            STARTED.append(client.get_workflow_handle(inspection_workflow_id(inspection_id(contract_id, kind, month))))


async def test_a_year_of_a_quarterly_plan_starts_12_follow_ups_4_inspections_2_key_checks_and_1_full_check(
        env, worker, stack):
    delivered = await today(env)
    handle, s = await start_plan(env.client, worker, delivery_date=delivered, routine_every_months=3)
    end_visits(env.client, s.case_id, range(1, 14))
    assert s.status == "active" and s.next_month == 1
    await sleep_until(env, due_at(add_months(delivered, 12)) + DAY)
    st = await settle(handle, lambda st: st.next_month == 13, workflow=PlanWorkflow)
    assert st.counts == {"follow_up": 12, "routine": 4, "key_equipment": 2, "full": 1}
    events = stack.store.history("plan", s.case_id)
    scheduled = [e["data"] for e in events if e["type"] == "VisitScheduled"]
    assert len(scheduled) == 19 and {d["month"] for d in scheduled} == set(range(1, 13))
    assert all(d["due_on"] == add_months(delivered, d["month"]).isoformat() for d in scheduled)
    # each visit is its own workflow, due at the start of its day
    full = env.client.get_workflow_handle(inspection_workflow_id(inspection_id(s.case_id, "full", 12)))
    v = await full.query(InspectionWorkflow.current)
    assert v.kind == "full" and v.due_at == due_at(add_months(delivered, 12))
    # one month per run: the history stays short
    assert len([e async for e in handle.fetch_history_events()]) < 60


async def test_the_plan_ends_with_the_contract(env, worker, stack):
    delivered = await today(env)
    handle, s = await start_plan(env.client, worker, delivery_date=delivered, routine_every_months=1,
                                 end_date=add_months(delivered, 2) + DAY)
    end_visits(env.client, s.case_id, range(1, 4), every=1)
    await sleep_until(env, due_at(add_months(delivered, 3)) + DAY)
    st = await settle(handle, lambda st: st.status == "ended", workflow=PlanWorkflow)
    assert st.counts == {"follow_up": 2, "routine": 2, "key_equipment": 0, "full": 0}
    assert "contract ended" in st.end_reason


async def test_a_plan_is_changed_and_ended_by_steps_and_refuses_a_second_start(env, worker, stack):
    handle, s = await start_plan(env.client, worker, delivery_date=await today(env))
    end_visits(env.client, s.case_id, range(1, 2))
    st = await step(handle, PlanWorkflow, "change", "M002", routine_every_months=1, responsible="E002")
    assert (st.routine_every_months, st.responsible) == (1, "E002")
    with pytest.raises(WorkflowUpdateFailedError) as e:
        await step(handle, PlanWorkflow, "change", "M002", responsible="X999")
    assert e.value.cause.details[0] == {"field": "responsible"}
    with pytest.raises(WorkflowUpdateFailedError) as e:
        await start_plan(env.client, worker, contract_id=s.case_id, delivery_date=await today(env))
    assert e.value.cause.type == "IllegalStep"
    st = await step(handle, PlanWorkflow, "end", "M002", reason="the hospital moved to another vendor")
    assert st.status == "ended"
    assert (await handle.result()).status == "ended"


async def istep(handle, name, actor, **data):
    return await step(handle, InspectionWorkflow, name, actor, **data)


async def test_an_overdue_inspection_warns_then_escalates_to_the_superior_then_leadership(env, worker, stack):
    now = await env.get_current_time()
    handle, s = await start_inspection(env.client, worker, now, window=timedelta(days=14), responsible="E002")
    assert s.windows["done"].deadline == now + timedelta(days=14)
    await sleep_until(env, now + timedelta(days=10, hours=12) + MINUTE)
    st = await settle(handle, lambda st: st.warnings, workflow=InspectionWorkflow)
    assert st.warnings[0].to == "E002" and st.breaches == []
    await sleep_until(env, now + timedelta(days=14) + MINUTE)
    st = await settle(handle, lambda st: st.escalations, workflow=InspectionWorkflow)
    assert (st.escalations[0].level, st.escalations[0].to) == (1, "S002")
    await sleep_until(env, now + timedelta(days=21) + MINUTE)
    st = await settle(handle, lambda st: len(st.escalations) == 2, workflow=InspectionWorkflow)
    assert st.escalations[1].to == "L001"


async def test_an_unassigned_visit_answers_to_the_project_department_head(env, worker, stack):
    now = await env.get_current_time()
    handle, s = await start_inspection(env.client, worker, now, responsible=None)
    assert s.responsible == "M002"
    st = await istep(handle, "assign", "M002", engineer="E002")
    assert st.windows["done"].responsible == "E002"


FINDINGS = [
    dict(device="core switch S7706", status="ok", drift_percent=3),
    dict(device="UPS 20kVA", status="degraded", drift_percent=35, notes="battery holds 65% of rated time"),
    dict(device="PACS storage array", status="degraded", drift_percent=12, recommend_replacement=True),
]


async def test_an_inspection_records_the_team_the_customers_staff_trained_findings_and_replacements(
        env, worker, stack):
    handle, s = await start_inspection(env.client, worker, await env.get_current_time(), kind="full")
    with pytest.raises(WorkflowUpdateFailedError) as e:
        await istep(handle, "inspect", "E002", team=["E002"], customer_staff_present=False, trained=True,
                    findings=FINDINGS)
    assert e.value.cause.details[0] == {"field": "trained"}
    with pytest.raises(WorkflowUpdateFailedError) as e:
        await istep(handle, "call", "E002", spoke_with="Dr Li", notes="x")
    assert e.value.cause.type == "IllegalStep"
    st = await istep(handle, "inspect", "E002", team=["E002", "E001"], customer_staff_present=True,
                     customer_staff=["Nurse Wang", "IT officer Zhang"], trained=True,
                     training_topics="daily UPS check", findings=FINDINGS)
    assert st.status == "completed" and "done" in st.met
    assert st.replacements == ["UPS 20kVA", "PACS storage array"]  # drift >= 20 %, or the engineer's call
    assert st.team == ["E002", "E001"] and st.trained and st.customer_staff_present
    assert (await handle.result()).status == "completed"
    events = stack.store.history("inspection", s.case_id)
    assert [e["type"] for e in events] == ["Scheduled", "Inspected"] and events[1]["actor"] == "E002"


async def test_a_follow_up_is_recorded_as_a_call(env, worker, stack):
    handle, _ = await start_inspection(env.client, worker, await env.get_current_time(), kind="follow_up",
                                       window=timedelta(days=7))
    st = await istep(handle, "call", "E002", spoke_with="Dr Li", notes="all wards fine", issues=["slow login"])
    assert st.status == "completed" and st.call["issues"] == ["slow login"]


async def test_a_finding_opens_a_fault_ticket_once(env, worker, stack):
    handle, s = await start_inspection(env.client, worker, await env.get_current_time(), kind="key_equipment")
    finding = dict(device="HIS DB server R740", status="faulty", open_ticket=True, severity="major",
                   symptoms="RAID controller reports a failed disk")
    with pytest.raises(WorkflowUpdateFailedError) as e:
        await istep(handle, "inspect", "E002", team=["E002"], customer_staff_present=False,
                    findings=[{**finding, "symptoms": ""}])
    assert e.value.cause.details[0] == {"field": "findings.0.symptoms"}
    st = await istep(handle, "inspect", "E002", team=["E002"], customer_staff_present=False,
                     findings=[FINDINGS[0], finding])
    ticket_id = f"{s.case_id}-f2"
    ticket = env.client.get_workflow_handle(ticket_workflow_id(ticket_id))
    STARTED.append(ticket)
    assert st.tickets == [{"finding": 1, "device": "HIS DB server R740", "ticket_id": ticket_id}]
    t = await ticket.query(TicketWorkflow.current)
    assert (t.status, t.product_model, t.severity, t.channel, t.received_by) == (
        "reported", "HIS DB server R740", "major", "visit", "E002")
    assert [e["type"] for e in stack.store.history("ticket", ticket_id)] == ["Reported"]
    assert [(c["kind"], c["case_id"]) for c in linked_cases(stack.store, ticket_id)] == [
        ("inspection", s.case_id)]
    # a finding recorded before findings carried their inspection's id: the reader finds it
    older = [{**link, "case_id": None} for link in linked_cases(stack.store, ticket_id)]
    assert [c["case_id"] for c in fill_case_ids(stack.store, older)] == [s.case_id]
