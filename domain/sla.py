"""When a case's alarms go off, for every case kind: the 75 % warning, the breach with
escalation to the responsible person's direct superior, and company leadership half a
window after the deadline (§九.A.2-3). Pure: the one alarm loop
(`workflows.casework.CaseWorkflow._watch`) turns these into one durable timer.

The instants come from the windows as recorded (`domain.casework.OpenWindow`), never
from today's policy: a window recorded before its alarm instants travelled with it
uses the fractions in force then (`RECORDED_WARNING_AT`, `RECORDED_LEADERSHIP_AFTER`)."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from domain.casework import CaseState

# The breach is the first instant after the deadline (Temporal's clock has ms resolution).
AFTER = timedelta(milliseconds=1)


@dataclass(frozen=True)
class Alarm:
    goal: str
    kind: str  # "warning" | "breach" | "leadership"
    at: datetime
    deadline: datetime

    @property
    def key(self) -> str:
        return f"{self.goal}:{self.kind}"


# The fractions of a window in force before the alarm instants were recorded with it.
RECORDED_WARNING_AT = 0.75
RECORDED_LEADERSHIP_AFTER = 0.5


def pending(state: CaseState) -> list[Alarm]:
    """Alarms not yet raised for windows not yet met, in time order.

    Each (goal, kind) fires at most once per case, however often its windows change
    (a re-triage); a goal dropped by a change takes its alarms with it. Leadership that
    a customer's own request has already reached is not told again by a timer."""
    if not state.is_open:
        return []
    out = []
    for goal, w in state.windows.items():
        if goal in state.met:
            continue
        span = w.deadline - w.started_at
        warn_at = w.warn_at or w.started_at + span * RECORDED_WARNING_AT
        leadership_at = w.leadership_at or w.deadline + span * RECORDED_LEADERSHIP_AFTER
        for kind, at in (("warning", warn_at), ("breach", w.deadline + AFTER), ("leadership", leadership_at + AFTER)):
            if f"{goal}:{kind}" in state.fired:
                continue
            if kind == "warning" and f"{goal}:breach" in state.fired:
                continue  # a warning after the breach says nothing new
            if kind == "leadership" and state.requested_level >= 2:
                continue
            out.append(Alarm(goal, kind, at, w.deadline))
    return sorted(out, key=lambda a: a.at)


LEVEL = {"warning": 0, "breach": 1, "leadership": 2}


def message(alarm: Alarm) -> tuple[str, str, str]:
    """(event type, command key, reason) of the warning or escalation `alarm` raises."""
    if alarm.kind == "warning":
        return "SlaWarned", alarm.key, f"{alarm.goal} due at {alarm.deadline.isoformat()}: 75% of the window has passed"
    reason = (f"{alarm.goal} deadline {alarm.deadline.isoformat()} missed"
              + ("" if alarm.kind == "breach" else "; still unmet half a window later"))
    return "Escalated", f"{alarm.key}:escalated", reason


def due(state: CaseState, now: datetime) -> tuple[list[Alarm], datetime | None]:
    """The alarms due at `now`, and when the next one falls due (None: no more)."""
    return split_due(pending(state), now)


def split_due(alarms: list[Alarm], now: datetime) -> tuple[list[Alarm], datetime | None]:
    """Of pending `alarms`, those due at `now`, and when the next one falls due."""
    ready = [a for a in alarms if a.at <= now]
    later = [a.at for a in alarms if a.at > now]
    # A warning whose breach is also due is moot: the breach says more.
    breached = {a.goal for a in ready if a.kind == "breach"}
    ready = [a for a in ready if not (a.kind == "warning" and a.goal in breached)]
    return ready, (min(later) if later else None)
