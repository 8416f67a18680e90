"""Who may handle complaints, returns, plans and visits, who reads reports, and what the
auditor sees: domain.permissions as pure functions, without a server (the tickets'
rules are in tests/e2e/test_api_roles.py)."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from domain.casework import OpenWindow
from domain.complaint_rules import ComplaintState
from domain.inspection_rules import InspectionState
from domain.maintenance import PlanState
from domain.org import Department, Org, Staff
from domain.permissions import (MASK, VisitFacts, case_about, contract_department, handling_department, mask,
                                may_list_cases, may_plan, may_read_case, may_read_reports, may_register, may_step_case,
                                may_visit_step, return_step_department)
from domain.return_rules import ReturnState

STAFF = {s.id: s for s in (
    Staff("L001", "general manager", "leadership", "leadership"),
    Staff("M002", "project head", "manager", "project", "L001"),
    Staff("M003", "R&D head", "manager", "rnd", "L001"),
    Staff("F001", "finance", "manager", "finance", "L001"),
    Staff("S001", "after-sales supervisor", "supervisor", "after_sales", "M001"),
    Staff("S002", "project supervisor", "supervisor", "project", "M002"),
    Staff("E001", "after-sales engineer", "engineer", "after_sales", "S001"),
    Staff("E002", "project engineer", "engineer", "project", "S002"),
    Staff("C001", "intake clerk", "clerk", "after_sales", "S001"),
    Staff("C002", "project desk clerk", "clerk", "project", "S002"),
    Staff("A001", "auditor", "auditor", "finance", "F001"),
)}
ORG = Org(STAFF, {d.id: d for d in (
    Department("leadership", "公司领导", "leadership", "L001"), Department("project", "项目部", "project", "M002"),
    Department("rnd", "技术研发部", "rnd", "M003"), Department("finance", "财务部", "finance", "F001"),
    Department("after_sales", "售后服务部", "after_sales", None))})
AT = datetime(2026, 3, 2, 1, 0, tzinfo=timezone.utc)


def who(staff_id: str) -> Staff:
    return STAFF[staff_id]


def a_return_at(stage: str | None, department: str | None) -> ReturnState:
    windows = {} if stage is None else {stage: OpenWindow(goal=stage, started_at=AT, deadline=AT + timedelta(hours=24),
                                                           department=department)}
    return ReturnState(case_id="r1", status="open", stage=stage, windows=windows)


# --- registration and reading ---------------------------------------------------------------

@pytest.mark.parametrize("kind", ["complaint", "return"])
def test_only_an_intake_clerk_registers_a_complaint_or_a_return(kind):
    assert may_register(who("C001"), kind)
    for other in ("S001", "M002", "L001", "E001", "A001"):
        decision = may_register(who(other), kind)
        assert not decision and "intake clerk" in decision.reason and other in decision.reason


def test_engineers_read_no_complaint_or_return():
    for kind in ("complaint", "return"):
        decision = may_read_case(who("E001"), kind)
        assert not decision and f"does not read {kind}s" in decision.reason


def test_an_engineer_reads_the_visits_assigned_to_them_and_no_other():
    visit = VisitFacts.of(ORG, InspectionState(case_id="k1-routine-003", responsible="E002", team=["E002", "E001"]))
    assert may_read_case(who("E002"), "inspection", visit)  # in charge
    assert may_read_case(who("E001"), "inspection", visit)  # went on it
    other = VisitFacts.of(ORG, InspectionState(case_id="k1-routine-006", responsible="E002"))
    decision = may_read_case(who("E001"), "inspection", other)
    assert not decision and "E002's" in decision.reason and "assigned to them" in decision.reason


def test_an_engineer_lists_only_their_own_visits_and_plans():
    for kind in ("inspection", "plan"):
        decision, person = may_list_cases(who("E001"), kind)
        assert decision and person == "E001"
        decision, person = may_list_cases(who("S002"), kind)
        assert decision and person is None
    assert not may_list_cases(who("E001"), "complaint")[0]


def test_an_engineer_reads_only_the_plan_they_are_in_charge_of():
    mine = VisitFacts.of(ORG, PlanState(case_id="k1", responsible="E002"))
    assert may_read_case(who("E002"), "plan", mine)
    decision = may_read_case(who("E001"), "plan", mine)
    assert not decision and "plans they are in charge of" in decision.reason
    assert not may_read_case(who("E002"), "plan", VisitFacts.of(ORG, PlanState(case_id="k2")))  # nobody's


def test_an_engineer_sees_the_plans_contact_phone_masked_but_not_their_visits():
    data = {"contact_phone": "0871-6300000", "customer": "Kunming No.2 Hospital"}
    assert mask(who("E002"), data, "plan") == {"contact_phone": MASK, "customer": "Kunming No.2 Hospital"}
    assert mask(who("E002"), data, "inspection") == data  # the follow-up call needs it
    assert mask(who("S002"), data, "plan") == data


@pytest.mark.parametrize("kind", ["complaint", "return", "plan", "inspection"])
def test_clerks_supervisors_heads_leadership_and_auditors_read_every_case(kind):
    for reader in ("C001", "S001", "M003", "L001", "A001"):
        assert may_read_case(who(reader), kind)


# --- complaints (§九.C.3) ---------------------------------------------------------------------

def test_a_complaint_step_by_a_supervisor_of_another_department_is_refused():
    decision = may_step_case(who("S001"), "complaint", "acknowledge", "rnd")
    assert not decision
    assert "routed to department 'rnd'" in decision.reason and "S001" in decision.reason


def test_the_routed_departments_head_and_leadership_handle_a_complaint():
    assert may_step_case(who("M003"), "complaint", "acknowledge", "rnd")
    assert may_step_case(who("S002"), "complaint", "reply", "project")
    assert may_step_case(who("L001"), "complaint", "reply", "rnd")  # leadership anywhere
    assert not may_step_case(who("M002"), "complaint", "reply", "rnd")


def test_the_complaint_is_handled_by_the_department_it_was_routed_to():
    state = ComplaintState(case_id="c1", status="registered", routed_to="rnd")
    assert handling_department("complaint", state) == "rnd"
    assert not may_step_case(who("S002"), "complaint", "acknowledge", handling_department("complaint", state))


def test_what_the_customer_says_is_recorded_by_the_department_it_is_routed_to_or_leadership():
    for step in ("escalate", "close"):
        assert may_step_case(who("S002"), "complaint", step, "project")
        assert may_step_case(who("M002"), "complaint", step, "project")
        assert may_step_case(who("C002"), "complaint", step, "project")  # that department's own clerk
        assert may_step_case(who("L001"), "complaint", step, "project")
    assert may_step_case(who("C001"), "return", "confirm", "after_sales")  # after-sales follows up (§九.D)


@pytest.mark.parametrize("staff_id", ["S001", "M003", "C001"])
def test_another_departments_supervisor_head_or_clerk_may_not_record_the_customers_voice(staff_id):
    for step in ("escalate", "close"):
        decision = may_step_case(who(staff_id), "complaint", step, "project")
        assert not decision and "routed to department 'project'" in decision.reason
        assert "recorded by that department or leadership" in decision.reason
    assert not may_step_case(who("M002"), "return", "confirm", "after_sales")


def test_the_head_of_the_department_complained_about_may_not_close_the_complaint_against_it():
    # about R&D's service, routed to the project department: R&D's head is another department
    decision = may_step_case(who("M003"), "complaint", "close", "project")
    assert not decision and "routed to department 'project'" in decision.reason
    # about the project department itself, routed to it: its head is what the complaint is about
    state = ComplaintState(case_id="c1", status="replied", routed_to="project", about_department="project",
                           about_head="M002")
    assert case_about("complaint", state) == {"M002"}
    for step in ("escalate", "close", "reply"):
        decision = may_step_case(who("M002"), "complaint", step, "project", case_about("complaint", state))
        assert not decision and "about M002" in decision.reason
    assert may_step_case(who("M002"), "complaint", "acknowledge", "project", case_about("complaint", state))
    assert may_step_case(who("S002"), "complaint", "close", "project", case_about("complaint", state))


def test_the_person_complained_about_neither_judges_the_complaint_nor_records_the_customers_voice():
    state = ComplaintState(case_id="c1", status="registered", routed_to="project", about_person="S002",
                           about_head="M002")
    assert case_about("complaint", state) == {"S002"}  # the head counts when the department is named
    for step in ("reply", "escalate", "close"):
        decision = may_step_case(who("S002"), "complaint", step, "project", case_about("complaint", state))
        assert not decision and "about S002" in decision.reason
    assert may_step_case(who("M002"), "complaint", "reply", "project", case_about("complaint", state))


def test_a_clerk_handles_nothing():
    decision = may_step_case(who("C002"), "complaint", "acknowledge", "project")
    assert not decision and "clerks record what the customer says" in decision.reason


@pytest.mark.parametrize("staff_id", ["E002", "A001"])
def test_engineers_and_auditors_take_no_complaint_step(staff_id):
    decision = may_step_case(who(staff_id), "complaint", "acknowledge", "project")
    assert not decision and "supervisors, department heads and leadership" in decision.reason


# --- returns and exchanges (§九.D.3) ------------------------------------------------------------

def test_a_returns_step_belongs_to_the_open_hand_offs_department():
    assert return_step_department(a_return_at("approval", "project")) == "project"
    assert return_step_department(a_return_at("refund", "finance")) == "finance"
    assert return_step_department(a_return_at(None, None)) is None  # no hand-off open
    assert handling_department("return", a_return_at("inspection", "rnd")) == "rnd"


def test_a_hand_off_is_taken_by_its_own_department_or_leadership():
    approval = return_step_department(a_return_at("approval", "project"))
    assert may_step_case(who("M002"), "return", "approve", approval)
    assert may_step_case(who("L001"), "return", "approve", approval)
    decision = may_step_case(who("F001"), "return", "approve", approval)
    assert not decision and "the open hand-off belongs to department 'project'" in decision.reason


# --- plans and visits (§八.7-10) -----------------------------------------------------------------

def test_a_contract_belongs_to_its_engineers_department_else_the_project_department():
    assert contract_department(ORG, "E001") == "after_sales"
    assert contract_department(ORG, None) == "project"  # §八: 由项目实施部门负责日常实施
    assert contract_department(ORG, "X999") == "project"


def test_a_maintenance_plan_is_set_by_the_contracts_department_or_leadership():
    for handler in ("S002", "M002", "L001"):
        assert may_plan(ORG, who(handler), "E002")
        assert may_plan(ORG, who(handler), None)  # the project department's by default
    for other in ("S001", "M003", "F001"):  # supervisors and heads of other departments
        decision = may_plan(ORG, who(other), "E002")
        assert not decision and "belongs to department 'project'" in decision.reason
    for other in ("E002", "C001", "A001"):
        decision = may_plan(ORG, who(other), "E002")
        assert not decision and "supervisor or department head of the contract's department" in decision.reason


def test_a_plan_is_handed_over_within_its_department_but_by_leadership():
    decision = may_plan(ORG, who("S002"), "E002", new_responsible="E001")
    assert not decision and decision.field == "responsible" and "only within 'project'" in decision.reason
    assert may_plan(ORG, who("L001"), "E002", new_responsible="E001")
    decision = may_plan(ORG, who("S002"), "E002", new_responsible="X999")
    assert not decision and decision.invalid and decision.field == "responsible"


def test_an_engineer_records_only_their_own_visit_and_only_its_call_or_inspection():
    visit = VisitFacts(responsible="E002", department="project")
    assert may_visit_step(ORG, who("E002"), "call", visit)
    assert may_visit_step(ORG, who("E001"), "inspect", VisitFacts("E002", ("E002", "E001"), "project"))  # went on it
    decision = may_visit_step(ORG, who("E001"), "call", visit)
    assert not decision and "E002's" in decision.reason
    assert not may_visit_step(ORG, who("E002"), "assign", visit, {"engineer": "E002"})
    assert not may_visit_step(ORG, who("A001"), "call", visit)


def test_a_visit_is_assigned_and_cancelled_by_the_contracts_department_or_leadership():
    visit = VisitFacts.of(ORG, InspectionState(case_id="k1-routine-003", responsible="E002"))
    assert may_visit_step(ORG, who("S002"), "assign", visit, {"engineer": "E002"})
    assert may_visit_step(ORG, who("M002"), "cancel", visit, {"reason": "hospital closed"})
    assert may_visit_step(ORG, who("L001"), "assign", visit, {"engineer": "E001"})
    decision = may_visit_step(ORG, who("S001"), "cancel", visit, {"reason": "x"})
    assert not decision and "belongs to department 'project'" in decision.reason
    decision = may_visit_step(ORG, who("S002"), "assign", visit, {"engineer": "E001"})
    assert not decision and decision.field == "engineer" and "only within 'project'" in decision.reason


# --- reports and masking ----------------------------------------------------------------------------

def test_managers_leadership_and_auditors_read_reports_and_no_one_else():
    for reader in ("M002", "L001", "A001"):
        assert may_read_reports(who(reader))
    for other in ("S001", "E001", "C001"):
        decision = may_read_reports(who(other))
        assert not decision and "reports are for auditor, leadership, manager" in decision.reason


def test_the_auditor_sees_contact_details_and_confidential_notes_masked():
    data = {"contact": "Dr Li 0871-6300000", "contact_phone": "0871-6300000", "confidential_notes": "root/x",
            "customer": "Kunming No.2 Hospital"}
    assert mask(who("A001"), data) == {"contact": MASK, "contact_phone": MASK, "confidential_notes": MASK,
                                       "customer": "Kunming No.2 Hospital"}
    assert data["contact"] == "Dr Li 0871-6300000"  # a masked copy, the record untouched


def test_an_empty_or_missing_value_stays_as_it_is_for_the_auditor():
    data = {"contact": "", "contact_phone": None, "customer": "x"}
    assert mask(who("A001"), data) == data


@pytest.mark.parametrize("staff_id", ["C001", "E001", "S001", "M002", "L001"])
def test_every_other_role_sees_the_contact_details(staff_id):
    data = {"contact": "Dr Li", "contact_phone": "0871-6300000", "confidential_notes": "root/x"}
    assert mask(who(staff_id), data) == data
