"""The response-window table (§九.A.3) as data, and the pure deadline function.

Windows are counted from the report, on wall-clock time (support is 7x24x365,
§十.2.A.11). "End of the next calendar day" is in China Standard Time, a fixed
UTC+8 with no daylight saving.

Boundary: the deadline instant belongs to the window. A goal met at exactly its
deadline is met; the breach is the first instant after it.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from enum import Enum
from types import MappingProxyType
from typing import Mapping

CST = timezone(timedelta(hours=8))


class Severity(str, Enum):
    general = "general"  # 一般故障
    major = "major"  # 主要系统软件或设备故障, 影响使用
    critical = "critical"  # 系统瘫痪


class Zone(str, Enum):
    A = "A"  # 昆明市区或郊区 200 km 内
    B = "B"  # beyond


class Goal(str, Enum):
    on_site = "on_site"  # 到场
    resolved = "resolved"  # 完成处理


@dataclass(frozen=True)
class Window:
    goal: Goal
    within: timedelta | None = None  # a fixed span from the report
    by_end_of_next_day: bool = False  # 次日完成, in UTC+8

    def deadline(self, reported_at: datetime) -> datetime:
        if self.by_end_of_next_day:
            day = reported_at.astimezone(CST).date() + timedelta(days=2)
            return datetime(day.year, day.month, day.day, tzinfo=CST).astimezone(timezone.utc)
        assert self.within is not None
        return reported_at + self.within


# The default policy, read like DESIGN.md's table. A contract may tighten it.
SLA_TABLE: dict[tuple[Severity, Zone], Window] = {
    (Severity.general, Zone.A): Window(Goal.resolved, by_end_of_next_day=True),
    (Severity.major, Zone.A): Window(Goal.resolved, within=timedelta(hours=6)),
    (Severity.critical, Zone.A): Window(Goal.on_site, within=timedelta(hours=4)),
    (Severity.general, Zone.B): Window(Goal.on_site, within=timedelta(hours=48)),
    (Severity.major, Zone.B): Window(Goal.on_site, within=timedelta(hours=48)),
    (Severity.critical, Zone.B): Window(Goal.on_site, within=timedelta(hours=48)),
}

# The table as weibao first shipped it, frozen: ticket histories recorded before the
# windows travelled in the record's answer (before the patch
# "ticket-records-through-record-case") were decided by it, and replay with it.
FIRST_SLA_TABLE: Mapping[tuple[Severity, Zone], Window] = MappingProxyType(dict(SLA_TABLE))

WARNING_AT = 0.75  # share of a window after which the assignee is warned
LEADERSHIP_AFTER = 0.5  # share of a window past the deadline before leadership is told


def deadlines(reported_at: datetime, severity: Severity | str, zone: Zone | str,
              table: Mapping[tuple[Severity, Zone], Window] | None = None) -> dict[str, datetime]:
    """Deadline per goal for a ticket reported at `reported_at` (timezone-aware), by
    today's table unless another is given."""
    if reported_at.tzinfo is None:
        raise ValueError("reported_at must be timezone-aware")
    window = (SLA_TABLE if table is None else table)[(Severity(severity), Zone(zone))]
    return {window.goal.value: window.deadline(reported_at)}


def is_met(met_at: datetime, deadline: datetime) -> bool:
    """A goal met at exactly its deadline counts as met."""
    return met_at <= deadline
