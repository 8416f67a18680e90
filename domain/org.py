"""The organisation: staff, their roles and departments, the direct-superior chain that
escalations climb (直接上级 → 公司领导), and how each person is reached (email, WeCom,
DingTalk, the company's webhook). Contacts are for delivery only: no message body carries
them."""
from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass, field

ROLES = ("clerk", "engineer", "supervisor", "manager", "leadership", "auditor")
DEPARTMENT_KINDS = ("project", "rnd", "after_sales", "finance", "leadership")
# The channels a warning or escalation can travel by, and the contact field each needs
# (the generic webhook is the company's own, so it needs none: a person has it only when
# their `channels` name it).
CHANNELS = ("email", "wecom", "dingtalk", "webhook")
ADDRESS_OF = {"email": "email", "wecom": "wecom_id", "dingtalk": "dingtalk_id", "webhook": None}
EMAIL = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s.]+")
MOBILE = re.compile(r"\+?[0-9]{6,15}")
ACCOUNT = re.compile(r"[^\s]{1,64}")  # a WeCom or DingTalk user id


class OrgError(ValueError):
    """The org file is not a usable organisation; the message says where."""


@dataclass(frozen=True)
class Staff:
    id: str
    name: str
    role: str
    department: str
    superior: str | None = None
    email: str | None = field(default=None, kw_only=True)
    mobile: str | None = field(default=None, kw_only=True)
    wecom_id: str | None = field(default=None, kw_only=True)  # WeCom (企业微信) user id
    dingtalk_id: str | None = field(default=None, kw_only=True)  # DingTalk (钉钉) user id
    # preferred channels in order; None: every channel with an address, email first
    channels: tuple[str, ...] | None = field(default=None, kw_only=True)

    def __post_init__(self) -> None:
        if self.channels is None:  # frozen: set once, while being built
            object.__setattr__(self, "channels", tuple(c for c in CHANNELS if self.address(c)))
        elif not isinstance(self.channels, tuple):
            object.__setattr__(self, "channels", tuple(self.channels))

    def address(self, channel: str) -> str | None:
        """The person's own address on `channel` (None: none; the webhook needs none)."""
        name = ADDRESS_OF.get(channel)
        return getattr(self, name) if name else None


def _contacts(s: dict, source: str) -> dict:
    """The contact fields of staff entry `s`, checked; OrgError naming the person and field."""
    who = s["id"]
    out: dict = {}
    for name, shape, what in (("email", EMAIL, "an email address"), ("mobile", MOBILE, "a mobile number"),
                              ("wecom_id", ACCOUNT, "a WeCom user id"), ("dingtalk_id", ACCOUNT, "a DingTalk user id")):
        value = s.get(name)
        if value is None:
            continue
        if isinstance(value, int) and name == "mobile":
            value = str(value)
        if not isinstance(value, str) or not shape.fullmatch(value.strip()):
            raise OrgError(f"{source}: {who}'s {name} {value!r} is not {what}")
        out[name] = value.strip()
    if "channels" in s:
        channels = s["channels"]
        if not isinstance(channels, list) or not all(isinstance(c, str) for c in channels):
            raise OrgError(f"{source}: {who}'s channels must be a list of channel names, not {channels!r}")
        for c in channels:
            if c not in CHANNELS:
                raise OrgError(f"{source}: {who}'s channels name unknown channel {c!r}; channels are {CHANNELS}")
            if channels.count(c) > 1:
                raise OrgError(f"{source}: {who}'s channels name {c!r} twice")
            if ADDRESS_OF[c] and ADDRESS_OF[c] not in out:
                raise OrgError(f"{source}: {who}'s channels prefer {c!r} but {who} has no {ADDRESS_OF[c]}")
        out["channels"] = tuple(channels)
    return out


@dataclass(frozen=True)
class Department:
    id: str
    name: str
    kind: str
    head: str | None = None


@dataclass(frozen=True)
class Org:
    staff: dict[str, Staff]
    departments: dict[str, Department]

    @classmethod
    def from_toml(cls, text: str, source: str = "org file") -> "Org":
        try:
            raw = tomllib.loads(text)
        except tomllib.TOMLDecodeError as e:
            raise OrgError(f"{source}: not valid TOML: {e}") from None
        return cls.from_dict(raw, source)

    @classmethod
    def from_dict(cls, raw: dict, source: str = "org file") -> "Org":
        departments, staff = {}, {}
        for d in raw.get("departments", []):
            try:
                dep = Department(id=d["id"], name=d.get("name", d["id"]), kind=d["kind"], head=d.get("head"))
            except KeyError as e:
                raise OrgError(f"{source}: a department lacks {e.args[0]!r}") from None
            if dep.kind not in DEPARTMENT_KINDS:
                raise OrgError(f"{source}: department {dep.id!r} has kind {dep.kind!r}; kinds are {DEPARTMENT_KINDS}")
            departments[dep.id] = dep
        for s in raw.get("staff", []):
            try:
                person = Staff(id=s["id"], name=s["name"], role=s["role"], department=s["department"],
                               superior=s.get("superior"), **_contacts(s, source))
            except KeyError as e:
                raise OrgError(f"{source}: a staff entry lacks {e.args[0]!r}") from None
            if person.id in staff:
                raise OrgError(f"{source}: staff id {person.id!r} appears twice")
            if person.role not in ROLES:
                raise OrgError(f"{source}: {person.id} has role {person.role!r}; roles are {ROLES}")
            if person.department not in departments:
                raise OrgError(f"{source}: {person.id} is in unknown department {person.department!r}")
            staff[person.id] = person
        org = cls(staff, departments)
        org._check_chain(source)
        if not org.leadership():
            raise OrgError(f"{source}: no staff member has the role 'leadership'")
        return org

    def _check_chain(self, source: str) -> None:
        for d in self.departments.values():
            if d.head is not None and d.head not in self.staff:
                raise OrgError(f"{source}: department {d.id!r} has unknown head {d.head!r}")
        for person in self.staff.values():
            seen = [person.id]
            cur = person
            while cur.superior is not None:
                if cur.superior not in self.staff:
                    raise OrgError(f"{source}: {cur.id}'s superior {cur.superior!r} is not on the staff (dangling link)")
                if cur.superior in seen:
                    loop = " -> ".join([*seen[seen.index(cur.superior):], cur.superior])
                    raise OrgError(f"{source}: superior links loop: {loop}")
                seen.append(cur.superior)
                cur = self.staff[cur.superior]

    def get(self, staff_id: str | None) -> Staff | None:
        return self.staff.get(staff_id) if staff_id else None

    def leadership(self) -> list[Staff]:
        return [s for s in self.staff.values() if s.role == "leadership"]

    def duty_supervisor(self) -> Staff:
        """Who answers for an unassigned, untriaged ticket: the after-sales supervisor."""
        sups = [s for s in self.staff.values() if s.role == "supervisor"]
        after_sales = [s for s in sups if self.departments[s.department].kind == "after_sales"]
        return (after_sales or sups or self.leadership())[0]

    def superior_of(self, staff_id: str | None) -> Staff:
        """The direct superior of the responsible person; leadership at the top."""
        person = self.get(staff_id) or self.duty_supervisor()
        return self.get(person.superior) or self.leadership()[0]
