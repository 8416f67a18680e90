"""The organisation: staff, their roles and departments, and the direct-superior
chain that escalations climb (直接上级 → 公司领导)."""
from __future__ import annotations

import tomllib
from dataclasses import dataclass

ROLES = ("clerk", "engineer", "supervisor", "manager", "leadership", "auditor")
DEPARTMENT_KINDS = ("project", "rnd", "after_sales", "finance", "leadership")


class OrgError(ValueError):
    """The org file is not a usable organisation; the message says where."""


@dataclass(frozen=True)
class Staff:
    id: str
    name: str
    role: str
    department: str
    superior: str | None = None


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
                               superior=s.get("superior"))
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
