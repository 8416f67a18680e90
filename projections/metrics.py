"""The projection runner's metrics, derived from the recorded facts as the runner applies
them (recorded facts are the truth: a count here is of events in the store, not of what a
process believed it did): events recorded by case kind and type (the steps among them),
warnings, breaches and escalations by level and case kind, the escalation lag (a breach's
recording time minus its recorded deadline: its level-1 escalation is recorded in the
same save; the leadership escalation's minus the due time it records), notifications
sent and given up; and, read from the database, each read
model's lag in events and seconds and its quarantined events.

The facts are counted once per runner process, as the `escalation_log` read model applies
them (so a process that does not run it counts nothing, and read models split across
processes are not counted twice). Counters start at zero with the process, as Prometheus
counters do; on its start a runner counts what it catches up on."""
from __future__ import annotations

from datetime import datetime
from typing import Any, Iterable

from prometheus_client import Counter, Gauge, Histogram

from domain.kinds import AGGREGATES

EVENTS = Counter("weibao_events_recorded", "Events recorded, by case kind and event type (a step's event or "
                 "one the workflow records)", ["case_kind", "event"])
WARNINGS = Counter("weibao_warnings", "Warnings before a window closes (level 0), by case kind",
                   ["case_kind", "level"])
BREACHES = Counter("weibao_breaches", "Missed windows, by case kind (level 1: the breach escalates to the "
                   "direct superior)", ["case_kind", "level"])
ESCALATIONS = Counter("weibao_escalations", "Escalations by level (1 direct superior, 2 leadership), case kind "
                      "and source (window, customer, emergency)", ["case_kind", "level", "source"])
ESCALATION_LAG = Histogram(
    "weibao_escalation_lag_seconds", "An escalation's recording time minus the instant it was due, by case kind and "
    "level (1: a breach, whose escalation is recorded in the same save, minus its deadline; 2: the leadership "
    "escalation minus its recorded due time)", ["case_kind", "level"],
    buckets=(0.25, 0.5, 1, 2, 3, 5, 10, 20, 30, 60, 120, 300, 900, 3600))
NOTIFICATIONS_SENT = Counter("weibao_notifications_sent", "Warnings and escalations delivered, by case kind and "
                             "channel", ["case_kind", "channel"])
NOTIFICATIONS_FAILED = Counter("weibao_notifications_failed", "Deliveries given up (every attempt of a channel "
                               "failed), by case kind and channel", ["case_kind", "channel"])
LAG_EVENTS = Gauge("weibao_read_model_lag_events", "Events recorded that a read model has not applied yet",
                   ["read_model"])
LAG_SECONDS = Gauge("weibao_read_model_lag_seconds", "Age of the oldest event a read model has not applied yet "
                    "(0 when caught up)", ["read_model"])
QUARANTINED = Gauge("weibao_quarantined_events", "Events a read model set aside (weibao projections quarantine)",
                    ["read_model"])

COUNTED_BY = "escalation_log"  # the read model whose progress the facts are counted with

_KIND_OF_AGGREGATE = {aggregate.__name__: kind for kind, aggregate in AGGREGATES.items()}
_names: dict[type, tuple[str, str]] = {}


def _kind_and_type(event: Any) -> tuple[str, str]:
    cls = type(event)
    known = _names.get(cls)
    if known is None:
        owner, _, name = cls.__qualname__.partition(".")
        known = _names[cls] = (_KIND_OF_AGGREGATE.get(owner, owner.lower()), name or owner)
    return known


def count(events: Iterable[Any]) -> None:
    """Count the facts among `events` (as a read model applies them, once)."""
    for event in events:
        kind, name = _kind_and_type(event)
        EVENTS.labels(kind, name).inc()
        if name not in ALARMS:
            continue
        data = getattr(event, "data", None) or {}
        if name == "SlaWarned":
            WARNINGS.labels(kind, "0").inc()
        elif name == "SlaBreached":
            BREACHES.labels(kind, "1").inc()
            _lag(kind, "1", event, data.get("deadline"))
        elif name == "Escalated":
            level = str(int(data.get("level", 1)))
            ESCALATIONS.labels(kind, level, "window").inc()
            if level == "2":  # level 1 is timed by its breach; alarms recorded before 2026-12-06 have no `due`
                _lag(kind, level, event, data.get("due"))
        elif name == "CustomerEscalated":
            ESCALATIONS.labels(kind, str(int(data.get("level", 1))), "customer").inc()
        elif name == "LeadershipNotified":
            ESCALATIONS.labels(kind, "2", "emergency").inc()
        elif name == "NotificationSent":
            NOTIFICATIONS_SENT.labels(kind, str(data.get("channel", ""))).inc()
        elif name == "NotificationGivenUp":
            NOTIFICATIONS_FAILED.labels(kind, str(data.get("channel", ""))).inc()


def _lag(kind: str, level: str, event: Any, due: str | None) -> None:
    recorded = getattr(event, "timestamp", None)
    if due and isinstance(recorded, datetime):
        ESCALATION_LAG.labels(kind, level).observe((recorded - datetime.fromisoformat(due)).total_seconds())


ALARMS = frozenset({"SlaWarned", "SlaBreached", "Escalated", "CustomerEscalated", "LeadershipNotified",
                    "NotificationSent", "NotificationGivenUp"})
