"""Reading PostgreSQL's notification log without passing an id that is still to come.

The event store's appends take no table lock (`activities.store.ConcurrentAppends`), so
two of them may commit out of the order of their notification ids: for a moment id 11
is there and 10 is not. A reader that moved past 10 then would never apply it. An id
missing below one the reader sees is either still to come (the transaction that took it
is open) or never to come (it rolled back: a version conflict, a lost connection).

`GapGuard` tells the two apart without guessing from time. A transaction takes its ids
in its INSERT, after the INSERT took the table's ROW EXCLUSIVE lock, which it holds until
it ends. So the transaction of a missing id below a committed one held that lock before
the read that found the gap. After such a read the guard lists the transactions holding
the lock (`pg_locks`); once every one of them has ended, each id missing below the
highest one that read returned is settled: a new read has it, or nothing ever will.
Until then the guard gives out only the events before the first unsettled gap, and the
runner waits (`waiting`) as it waits for new events.

This needs the ids taken in the order they are issued: the id sequence's cache of 1, as
eventsourcing's `bigserial` makes it. A larger cache lets a session hand out an id it took
earlier, so the guard refuses to read from such a sequence.

SQLite needs none of this: its one writer commits the ids in order."""
from __future__ import annotations

import logging
import threading
import time
from collections.abc import Sequence
from typing import Any

from eventsourcing.persistence import Notification
from psycopg.sql import SQL, Identifier

READS = 3  # reads per call while gaps settle at once (nothing holds the lock), before giving out a prefix
WARN_AFTER = 10.0  # seconds a gap may wait before the log says which sessions hold it open
log = logging.getLogger("weibao.projections")
_HOLDERS = ("SELECT DISTINCT virtualtransaction, pid FROM pg_locks WHERE locktype = 'relation' "
            "AND relation = %s::regclass AND mode = 'RowExclusiveLock' AND granted")
_CACHE = "SELECT seqcache FROM pg_sequence WHERE seqrelid = pg_get_serial_sequence(%s, 'notification_id')::regclass"
_OPEN = ("SELECT count(*) AS open FROM pg_locks WHERE locktype = 'relation' AND relation = %s::regclass "
         "AND mode = 'RowExclusiveLock' AND granted AND virtualtransaction = ANY(%s)")


class GapGuard:
    """Reads the notification log of a PostgreSQL application recorder up to its first
    gap that an open transaction may still fill. Safe to call from several threads."""

    def __init__(self, recorder: Any):
        self.recorder = recorder
        self._table = SQL(".").join([Identifier(recorder.datastore.schema),
                                     Identifier(recorder.events_table_name)]).as_string(None)
        self.settled = 0  # every id up to this one is recorded or never will be
        self._waiting: tuple[int, list[str], float] | None = None  # (highest id read, holders, since)
        self._warned: float | None = None  # the `since` of the wait last logged
        self._checked = False  # the id sequence's cache, once
        self._lock = threading.Lock()

    @property
    def waiting(self) -> float | None:
        """Since when (monotonic seconds) a gap has waited for open transactions; None: none waits."""
        w = self._waiting
        return None if w is None else w[2]

    def read(self, start: int, limit: int) -> Sequence[Notification]:
        """Up to `limit` notifications after `start`, none past a gap still to settle."""
        if not self._checked:
            cache = self._query(_CACHE, (self._table,))[0]["seqcache"]
            if cache != 1:
                raise RuntimeError(f"the sequence of {self._table}.notification_id caches {cache} ids per session; "
                                   "the read models need 1 (ALTER SEQUENCE ... CACHE 1) to read it in order")
            self._checked = True
        self._settle_waited()
        for _ in range(READS):
            notes = self.recorder.select_notifications(start=start, limit=limit, inclusive_of_start=False)
            upto = self._upto(start, notes)
            if upto == len(notes):
                return notes
            top = notes[-1].id
            holders = self._query(_HOLDERS, (self._table,))
            if holders:
                with self._lock:
                    since = self._waiting[2] if self._waiting else time.monotonic()
                    self._waiting = (top, [h["virtualtransaction"] for h in holders], since)
                    warn = self._warned != since and time.monotonic() - since > WARN_AFTER
                    if warn:
                        self._warned = since
                if warn:  # once per wait: a transaction left open (a stopped process) holds the read models back
                    gap = notes[upto - 1].id + 1 if upto else start + 1
                    log.warning("read models wait at notification id %d for %.0fs: an append that took it has "
                                "not ended; PostgreSQL backends with inserts open: %s", gap,
                                time.monotonic() - since, ", ".join(str(h["pid"]) for h in holders))
                return notes[:upto]
            self._settle(top)  # no open insert: what is missing up to `top` is either read next or never
        return notes[:upto]

    def _upto(self, start: int, notes: Sequence[Notification]) -> int:
        """How many of `notes` come before the first gap not yet settled."""
        expected, settled = start + 1, self.settled
        for i, n in enumerate(notes):
            if n.id > expected and n.id - 1 > settled:
                return i
            expected = n.id + 1
        return len(notes)

    def _settle_waited(self) -> None:
        w = self._waiting
        if w is not None and not self._query(_OPEN, (self._table, w[1]))[0]["open"]:
            self._settle(w[0])
            with self._lock:
                if self._waiting is w:
                    self._waiting = None

    def _settle(self, top: int) -> None:
        with self._lock:
            self.settled = max(self.settled, top)

    def _query(self, statement: str, params: tuple[Any, ...]) -> list[Any]:
        with self.recorder.datastore.get_connection() as conn, conn.cursor() as curs:
            curs.execute(statement, params)
            return curs.fetchall()
