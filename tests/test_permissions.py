"""Who may handle complaints, returns, plans and visits, who reads reports, and what the
auditor sees: domain.permissions as pure functions, without a server (the tickets'
rules are in tests/test_api_roles.py)."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from domain.casework import OpenWindow
from domain.complaint_rules import ComplaintState
from domain.org import Staff
from domain.permissions import (MASK, handling_department, mask, may_plan, may_read_case, may_read_reports,
                                may_register, may_step_case, may_visit_step, return_step_department)
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
    Staff("A001", "auditor", "auditor", "finance", "F001"),
)}
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


def test_engineers_read_plans_and_visits_but_not_complaints_or_returns():
    for kind in ("plan", "inspection"):
        assert may_read_case(who("E001"), kind)
    for kind in ("complaint", "return"):
        decision = may_read_case(who("E001"), kind)
        assert not decision and f"does not read {kind}s" in decision.reason


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


def test_a_clerk_records_the_customers_own_requests_and_handles_nothing():
    assert may_step_case(who("C001"), "complaint", "escalate", "rnd")
    assert may_step_case(who("C001"), "complaint", "close", "rnd")
    assert may_step_case(who("C001"), "return", "confirm", "after_sales")
    decision = may_step_case(who("C001"), "complaint", "acknowledge", "after_sales")
    assert not decision and "clerks record the customer's own requests" in decision.reason


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

def test_a_maintenance_plan_is_set_by_a_supervisor_head_or_leadership():
    for handler in ("S002", "M002", "L001"):
        assert may_plan(who(handler))
    for other in ("E002", "C001", "A001"):
        decision = may_plan(who(other))
        assert not decision and "supervisor or department head" in decision.reason


def test_an_engineer_records_only_their_own_visit_and_only_its_call_or_inspection():
    assert may_visit_step(who("E002"), "call", "E002")
    assert may_visit_step(who("E001"), "inspect", "E002", team=["E002", "E001"])  # went on it
    decision = may_visit_step(who("E001"), "call", "E002")
    assert not decision and "E002's" in decision.reason
    assert not may_visit_step(who("E002"), "assign", "E002")
    assert may_visit_step(who("S002"), "assign", "E002")
    assert not may_visit_step(who("A001"), "call", "E002")


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
