"""When the ticket's alarms go off: the 75 % warning, the breach with escalation to
the responsible person's direct superior, and company leadership half a window
after the deadline (§九.A.2-3). Pure: the workflow turns these into timers."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from domain import policy
from domain.lifecycle import TicketState

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


def pending(state: TicketState) -> list[Alarm]:
    """Alarms not yet raised for goals not yet met, in time order.

    Each (goal, kind) fires at most once per ticket, however often it is re-triaged;
    a goal dropped by a re-triage takes its alarms with it."""
    if state.status in ("new", "closed") or state.reported_at is None:
        return []
    out = []
    for goal, deadline in state.deadlines.items():
        if goal in state.met:
            continue
        window = deadline - state.reported_at
        for kind, at in (
            ("warning", state.reported_at + window * policy.WARNING_AT),
            ("breach", deadline + AFTER),
            ("leadership", deadline + window * policy.LEADERSHIP_AFTER + AFTER),
        ):
            if f"{goal}:{kind}" in state.fired:
                continue
            if kind == "warning" and f"{goal}:breach" in state.fired:
                continue  # a warning after the breach says nothing new
            out.append(Alarm(goal, kind, at, deadline))
    return sorted(out, key=lambda a: a.at)


LEVEL = {"warning": 0, "breach": 1, "leadership": 2}


def message(alarm: Alarm) -> tuple[str, str, str]:
    """(event type, command key, reason) of the warning or escalation `alarm` raises;
    tickets and cases alike."""
    if alarm.kind == "warning":
        return "SlaWarned", alarm.key, f"{alarm.goal} due at {alarm.deadline.isoformat()}: 75% of the window has passed"
    reason = (f"{alarm.goal} deadline {alarm.deadline.isoformat()} missed"
              + ("" if alarm.kind == "breach" else "; still unmet half a window later"))
    return "Escalated", f"{alarm.key}:escalated", reason


def due(state: TicketState, now: datetime) -> tuple[list[Alarm], datetime | None]:
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
