"""A case's recorded events as the console reads them, with the work per recorded event
done once per process.

Every request still reads the case's stored events from the event store, all of them, in
one query: a new event shows at once, and a stored event that changed or cannot be
decoded shows as it is stored now. What is kept is only what follows from one stored
event's bytes: its decoded form (the dict `EventStore.read_history` gives) and, per set
of fields a viewer may not see, its timeline entry in words and its rendered `<li>`
(pages.timeline). An entry is used only while the stored topic and bytes are the very
same, so the memo cannot show anything that is not stored; masking is still applied per
viewer, because the set of masked fields (`permissions.masked_fields` of the viewer's
role and the case's kind, all that `permissions.mask` depends on) is part of the key.

Why: decoding each event again and rendering it again was most of the ticket page's
server time (bench/console.py), while a recorded event never changes.

`Kept` holds what follows from an object that never changes, such as a folded state (the
state panel's masked dump and HTML, pages.Parts), for as long as that very object is asked for."""
from __future__ import annotations

import threading
from collections import OrderedDict
from typing import Any, Callable

from activities.store import EventStore
from domain.chained import case_uuid


class Entry:
    """One stored event: its topic and bytes, its decoded dict, and its views by key."""

    __slots__ = ("topic", "state", "event", "views")

    def __init__(self, topic: str, state: bytes, event: dict[str, Any]):
        self.topic, self.state, self.event = topic, state, event
        self.views: dict[Any, Any] = {}


class EventMemo:
    """Per process, the entries of the cases read last, up to `max_events` stored events
    in all (the least recently read case forgotten first): a few kilobytes each, so tens
    of megabytes at most."""

    MAX_VIEWS = 16  # per event: sets of masked fields × the delivery attempts shown with it

    def __init__(self, store: EventStore, max_events: int = 20_000):
        self.store, self.max_events = store, max_events
        self._cases: OrderedDict[str, dict[int, Entry]] = OrderedDict()
        self._events = 0  # entries kept, all cases together
        self._lock = threading.Lock()

    def read_history(self, kind: str, case_id: str) -> tuple[list[dict[str, Any]], int | None]:
        """What `EventStore.read_history(kind, case_id)` answers, from one read of the stored
        events, decoding only those not seen before with the same bytes."""
        rows = self.store.stored_rows(kind, case_id)
        key = str(case_uuid(kind, case_id))
        with self._lock:
            known = self._cases.get(key) or {}
        fresh: dict[int, Entry] = {}
        events: list[dict[str, Any]] = []
        damaged = None
        for version, topic, state in rows:
            entry = known.get(version)
            if entry is None or entry.state != state or entry.topic != topic:
                try:
                    e = self.store.decode(kind, case_id, version, topic, state)
                except Exception:  # noqa: BLE001 - a damaged row stops the read there, as read_history's does
                    damaged = version
                    break
                entry = Entry(topic, state, _as_dict(e))
            fresh[version] = entry
            events.append(entry.event)
        with self._lock:
            self._events -= len(self._cases.pop(key, None) or ())
            if fresh:
                self._cases[key] = fresh
                self._events += len(fresh)
                while self._events > self.max_events and len(self._cases) > 1:
                    self._events -= len(self._cases.popitem(last=False)[1])
        return events, damaged

    def clear(self) -> None:
        with self._lock:
            self._cases.clear()
            self._events = 0

    def entries(self, events: list[dict[str, Any]]) -> list[Entry | None]:
        """For each of a case's `events`, the entry whose decoded event it is (the same
        object), or None for an event this memo did not give out (shown without keeping)."""
        if not events:
            return []
        with self._lock:
            known = self._cases.get(events[0]["ticket"]) or {}
        out: list[Entry | None] = []
        for e in events:
            entry = known.get(e["version"])
            out.append(entry if entry is not None and entry.event is e else None)
        return out

    def view(self, entry: Entry, key: Any) -> Any:
        return entry.views.get(key)

    def keep(self, entry: Entry, key: Any, value: Any) -> None:
        if len(entry.views) >= self.MAX_VIEWS:
            entry.views.clear()
        entry.views[key] = value


class Kept:
    """Values made from objects that never change (a folded state, its masked dump): each
    kept with the object it was made from and a stamp, and given out only while asked for
    with that very object (it is held, so its `id` cannot be reused meanwhile) and the same
    stamp; up to `size` of them, the least recently used forgotten first."""

    def __init__(self, size: int = 256):
        self.size = size
        self._entries: OrderedDict[Any, tuple[Any, Any, Any]] = OrderedDict()

    def get(self, key: Any, source: Any, stamp: Any, make: Callable[[], Any]) -> Any:
        kept = self._entries.get(key)
        if kept is not None and kept[0] is source and kept[1] == stamp:
            self._entries.move_to_end(key)
            return kept[2]
        value = make()
        self._entries[key] = (source, stamp, value)
        while len(self._entries) > self.size:
            self._entries.popitem(last=False)
        return value


def _as_dict(e: Any) -> dict[str, Any]:
    """A decoded stored event as `EventStore.read_history` gives it (the console's tests
    compare the two)."""
    return {"ticket": str(e.originator_id), "version": e.originator_version, "type": type(e).__name__,
            "at": e.at, "actor": e.actor, "command_id": e.command_id, "data": e.data,
            "prev_hash": e.prev_hash, "hash": e.hash, "recorded_at": e.timestamp}
