"""What a read model does when an event fails: retry it, or set it aside and go on.

A failure is **operational** when the database, not the event, is at fault: the
connection lost or refused, an administrator's shutdown or a restart (SQLSTATE class
57), a serialization failure or deadlock (40), too many clients (53), a lock not
available (55), a read-only standby (25), a system or internal error (58, XX), a missing
table (42: the read model's schema, not the event). The runner retries those with
backoff, and never quarantines on one.

A failure is **deterministic** when applying that event fails however often it is
tried: the database refuses its data (22 data exception — a NUL in a text field, an
unsupported Unicode escape, a value of the wrong type —, 23 integrity, 54 a program
limit such as an index row too large), psycopg cannot send it (a NUL, a value it cannot
adapt), it cannot be decoded, or a handler raises on it. Such an event is
**quarantined**: a row in `read_model_quarantine` keeps the read model, the event's
position, originator, version, topic and the reason, in the same transaction that moves
the read model's position past it. `weibao projections status` counts them and
`weibao projections quarantine` lists them; a rebuild of the read model (after a fix)
forgets them and applies them again."""
from __future__ import annotations

import sqlite3
from datetime import datetime, timezone
from typing import Any

import psycopg
from eventsourcing.persistence import DataError, IntegrityError, PersistenceError
from eventsourcing.utils import get_topic

TABLE = "read_model_quarantine"
COLUMNS = ("read_model", "position", "originator_id", "originator_version", "topic", "reason", "quarantined_at")


def ddl(dialect: int) -> str:
    """The quarantine table, shared by the read models (dialect 0 SQLite, 1 PostgreSQL)."""
    integer = "BIGINT" if dialect else "INTEGER"
    return (f"CREATE TABLE IF NOT EXISTS {TABLE} (read_model TEXT, position {integer}, originator_id TEXT, "
            f"originator_version {integer}, topic TEXT, reason TEXT, quarantined_at TEXT, "
            f"PRIMARY KEY (read_model, position))")

# SQLSTATE classes that say the event's own data was refused: the same event fails again.
DATA_CLASSES = frozenset({"22", "23", "54"})


def is_operational(error: BaseException) -> bool:
    """True when `error` is the database's trouble (retry later), False when it is the
    event's (quarantine it). The first error in the chain (psycopg's or sqlite3's, under
    eventsourcing's wrapper) decides."""
    chain = [error]
    while chain[-1].__cause__ is not None and len(chain) < 10:
        chain.append(chain[-1].__cause__)
    for e in reversed(chain):
        verdict = _judge(e)
        if verdict is not None:
            return verdict
    return False  # the read model's own code raised on this event


def _judge(e: BaseException) -> bool | None:
    if isinstance(e, psycopg.Error):
        state = e.sqlstate
        if state:
            return state[:2] not in DATA_CLASSES
        # raised by psycopg itself: the connection (lost, closed, pool timeout), or the data it could not send
        return isinstance(e, (psycopg.OperationalError, psycopg.InterfaceError))
    if isinstance(e, sqlite3.Error):
        # locked, busy, disk I/O, a missing table; but a value it cannot store or bind is the event's
        return not isinstance(e, (sqlite3.DataError, sqlite3.IntegrityError, sqlite3.ProgrammingError,
                                  sqlite3.InterfaceError))
    if isinstance(e, PersistenceError):  # eventsourcing's own, with no driver error under it
        return not isinstance(e, (DataError, IntegrityError))
    if isinstance(e, (OSError, MemoryError)):  # sockets, timeouts, a file gone
        return True
    return None


def reason(error: BaseException) -> str:
    """The error as one line for the quarantine: the driver's own error where there is one."""
    root = error
    while root.__cause__ is not None and isinstance(root, PersistenceError):
        root = root.__cause__
    text = f"{type(root).__name__}: {root}".replace("\x00", "\\x00")
    return " ".join(text.split())[:1000]


class Undecodable:
    """A stored event that cannot be decoded (its topic gone, its state damaged): it is
    quarantined by every read model, with the reason, and the read models go on."""

    def __init__(self, notification: Any, error: BaseException):
        self.originator_id = notification.originator_id
        self.originator_version = notification.originator_version
        self.topic = notification.topic
        self.error = error


def topic_of(event: Any) -> str:
    return event.topic if isinstance(event, Undecodable) else get_topic(type(event))


def record(view: Any, curs: Any, read_model: str, position: int, event: Any, why: str) -> None:
    """Keep `event` (at `position`) in the quarantine of `read_model`, in the caller's transaction."""
    curs.execute(view.sql(f"INSERT INTO {TABLE} ({', '.join(COLUMNS)}) VALUES ({', '.join('?' * len(COLUMNS))})"),
                 [read_model, position, str(event.originator_id), event.originator_version, topic_of(event), why,
                  datetime.now(timezone.utc).isoformat(timespec="seconds")])


def forget(view: Any, curs: Any, read_model: str) -> None:
    """Forget the quarantine of `read_model` (its view is dropped, to be rebuilt)."""
    curs.execute(view.sql(f"DELETE FROM {TABLE} WHERE read_model = ?"), [read_model])


def quarantined(models: Any, name: str | None = None, limit: int | None = None) -> list[dict[str, Any]]:
    """The quarantined events (of read model `name`, or all), in order of read model and position."""
    view = next(iter(models.projections.values())).view
    where, params = (" WHERE read_model = ?", [name]) if name else ("", [])
    more = f" LIMIT {int(limit)}" if limit is not None else ""
    return view.query(f"SELECT {', '.join(COLUMNS)} FROM {TABLE}{where} ORDER BY read_model, position{more}", params)


def counts(models: Any) -> dict[str, int]:
    """How many events each read model holds in quarantine (0 for none)."""
    view = next(iter(models.projections.values())).view
    rows = view.query(f"SELECT read_model, COUNT(*) AS n FROM {TABLE} GROUP BY read_model")
    held = {r["read_model"]: r["n"] for r in rows}
    return {name: held.get(name, 0) for name in models.projections}
