"""The organisation file: escalation targets, and refusal of broken superior chains."""
import pytest

from activities import config
from domain import escalation
from domain.escalation import Line
from domain.org import Org, OrgError

BASE = """
[[departments]]
id = "lead"
kind = "leadership"
[[departments]]
id = "as"
kind = "after_sales"
[[staff]]
id = "L1"
name = "boss"
role = "leadership"
department = "lead"
"""


def test_example_org_has_the_roles_the_service_desk_needs():
    org = config.load_org()
    roles = [s.role for s in org.staff.values()]
    for role in ("clerk", "supervisor", "auditor", "leadership"):
        assert role in roles
    engineers = [s for s in org.staff.values() if s.role == "engineer"]
    assert len(engineers) >= 2 and len({e.superior for e in engineers}) >= 2


def test_unassigned_and_untriaged_the_after_sales_supervisor_answers_so_their_superior_is_told():
    org = config.load_org()
    assert escalation.target(org, Line(None), 0).id == "S001"
    assert escalation.target(org, Line(None), 1).id == "M001"


def test_a_superior_loop_is_refused_at_load_with_the_loop_named():
    text = BASE + """
[[staff]]
id = "A"
name = "a"
role = "engineer"
department = "as"
superior = "B"
[[staff]]
id = "B"
name = "b"
role = "supervisor"
department = "as"
superior = "A"
"""
    with pytest.raises(OrgError, match="loop: A -> B -> A"):
        Org.from_toml(text)


def test_a_dangling_superior_is_refused_at_load():
    text = BASE + """
[[staff]]
id = "A"
name = "a"
role = "engineer"
department = "as"
superior = "GHOST"
"""
    with pytest.raises(OrgError, match="'GHOST' is not on the staff"):
        Org.from_toml(text)


def test_an_unknown_role_is_refused():
    with pytest.raises(OrgError, match="role 'boss'"):
        Org.from_toml(BASE.replace('role = "leadership"', 'role = "boss"'))
