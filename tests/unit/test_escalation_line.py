"""Whom an escalation goes to (domain.escalation): never anyone the case is about, always
someone who may act on it, climbing the line to leadership (§九.A.2, §九.C.3). Pure."""
from domain import escalation
from domain.escalation import Line


def test_a_ticket_escalates_to_the_engineers_direct_superior_who_supervises_the_department(org):
    assert escalation.target(org, Line("E001"), 1).id == "S001"
    assert escalation.target(org, Line("E002"), 1).id == "S002"


def test_a_warning_goes_to_the_responsible_person_and_the_last_level_to_leadership(org):
    assert escalation.target(org, Line("E001"), 0).id == "E001"
    assert escalation.target(org, Line("E001"), 2).role == "leadership"


def test_a_superior_outside_the_handling_department_is_passed_over_up_the_line(org):
    # E001 (after-sales) about whom a complaint routed to the project department was made:
    # S001 and M001 may not act on it, so leadership gets it
    line = Line("E001", kind="complaint", department="project", about=frozenset({"E001"}))
    assert escalation.target(org, line, 1).id == "L001"
    line = Line("E002", kind="complaint", department="project", about=frozenset({"E002"}))
    assert escalation.target(org, line, 1).id == "S002"


def test_the_head_of_the_department_complained_about_is_never_the_target(org):
    line = Line("M003", kind="complaint", department="rnd", about=frozenset({"M003"}))
    assert escalation.target(org, line, 1).id == "L001"


def test_a_superior_the_case_is_about_is_skipped(org):
    line = Line("E001", kind="ticket", about=frozenset({"S001"}))
    assert escalation.target(org, line, 1).id == "M001"


def test_every_level_one_target_may_act_and_is_not_about_the_case(org):
    only_leader = [s.id for s in org.leadership()] if len(org.leadership()) == 1 else []
    for person in org.staff.values():
        if person.id in only_leader:
            continue  # the company's one leader answers to nobody: leadership is the last level
        for department in (None, *org.departments):
            line = Line(person.id, department=department, about=frozenset({person.id}))
            target = escalation.target(org, line, 1)
            assert target.id != person.id
            assert escalation.may_act(target, department or person.department), (person.id, department, target.id)
