"""The organisation file: escalation targets, refusal of broken superior chains, and the
contacts by which a warning or an escalation reaches a person."""
import json

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


# --- contacts: how a warning or an escalation reaches a person ---------------------------

def person(**contacts) -> str:
    """The base org plus engineer A with `contacts` (JSON strings and arrays are TOML too)."""
    return BASE + '[[staff]]\nid = "A"\nname = "a"\nrole = "engineer"\ndepartment = "as"\nsuperior = "L1"\n' \
        + "".join(f"{k} = {json.dumps(v)}\n" for k, v in contacts.items())


def test_contacts_are_read_and_the_default_channels_are_every_one_with_an_address_email_first():
    org = Org.from_toml(person(email="a@example.com", mobile="13800000001", wecom_id="a.wx", dingtalk_id="a-dd"))
    a = org.staff["A"]
    assert (a.email, a.mobile, a.wecom_id, a.dingtalk_id) == ("a@example.com", "13800000001", "a.wx", "a-dd")
    assert a.channels == ("email", "wecom", "dingtalk")  # the webhook only when named
    assert Org.from_toml(person(wecom_id="a.wx")).staff["A"].channels == ("wecom",)
    assert Org.from_toml(BASE).staff["L1"].channels == ()  # no address: no channel


def test_preferred_channels_keep_their_order_and_the_webhook_needs_no_address():
    org = Org.from_toml(person(email="a@example.com", dingtalk_id="a-dd", channels=["webhook", "dingtalk", "email"]))
    assert org.staff["A"].channels == ("webhook", "dingtalk", "email")


def test_a_bad_email_is_refused_naming_the_person_and_the_field():
    with pytest.raises(OrgError, match=r"A's email 'wang at example' is not an email address"):
        Org.from_toml(person(email="wang at example"))
    with pytest.raises(OrgError, match=r"A's mobile '12-ab' is not a mobile number"):
        Org.from_toml(person(mobile="12-ab"))


def test_an_unknown_channel_is_refused():
    with pytest.raises(OrgError, match=r"A's channels name unknown channel 'sms'"):
        Org.from_toml(person(email="a@example.com", channels=["email", "sms"]))


def test_a_channel_preferred_without_its_address_is_refused():
    with pytest.raises(OrgError, match=r"A's channels prefer 'wecom' but A has no wecom_id"):
        Org.from_toml(person(email="a@example.com", channels=["wecom", "email"]))
    with pytest.raises(OrgError, match=r"A's channels name 'email' twice"):
        Org.from_toml(person(email="a@example.com", channels=["email", "email"]))


def test_the_example_org_reaches_everyone_by_fake_example_com_addresses():
    org = config.load_org()
    for s in org.staff.values():
        assert s.email and s.email.endswith("@example.com") and s.channels
    assert org.staff["E001"].wecom_id and org.staff["E002"].dingtalk_id
    assert org.staff["S001"].channels == ("wecom", "email", "webhook")


def test_staff_built_positionally_as_before_still_works():
    from domain.org import Staff

    s = Staff("E9", "e", "engineer", "as", "S1")
    assert s.superior == "S1" and s.email is None and s.channels == ()
