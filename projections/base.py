"""What every read model shares: its tables and tracking position in one database
(a tracking recorder of the eventsourcing library, SQLite or PostgreSQL), and a
batch that applies many events in one transaction with the position recorded in it.

A read model is a `Projection`: `apply` is a singledispatch over the ticket's event
classes. Its per-ticket rows are loaded once per batch, changed in memory and written
back together, with the facts it appends; the tracking position moves in the same
transaction by compare-and-set (from the position the batch was read after), so a
batch is applied exactly once even if two runners race or one dies mid-batch."""
from __future__ import annotations

import json
import logging
import sqlite3
from collections import defaultdict
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timezone
from functools import cache, lru_cache
from operator import itemgetter
from typing import Any

import orjson
import psycopg
from eventsourcing.dispatch import singledispatchmethod
from eventsourcing.persistence import IntegrityError, Tracking, TrackingRecorder
from eventsourcing.postgres import PostgresTrackingRecorder
from eventsourcing.projection import Projection
from eventsourcing.sqlite import SQLiteTrackingRecorder

from domain import policy
from domain.policy import CST
from projections import quarantine

log = logging.getLogger("weibao.projections")

UTC = timezone.utc
GOALS = tuple(g.value for g in policy.Goal)
ON_SITE = policy.Goal.on_site.value


class PositionConflict(Exception):
    """The read model's position moved since the batch was read (another runner, or
    a rebuild): nothing of the batch was written; read the position again."""


# ---------------------------------------------------------------- time and refs

def iso(value: datetime | str | None) -> str | None:
    """A UTC timestamp as fixed-width ISO text, so text order is time order."""
    if value is None:
        return None
    return _iso(value)


@lru_cache(maxsize=65536)  # the same business times come up in every read model
def _iso(value: datetime | str) -> str:
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    return value.astimezone(UTC).isoformat(timespec="microseconds")


def month_of(at: datetime | str) -> str:
    """The month (YYYY-MM) of a business time, in China Standard Time."""
    if isinstance(at, str):
        at = datetime.fromisoformat(at)
    return _month(at)


def _month(at: datetime) -> str:
    cst = at.astimezone(CST)
    return f"{cst.year:04d}-{cst.month:02d}"


@dataclass
class EventKeys:
    """Worked out once per batch for all read models: id(event) -> the text key of
    its ticket's rows (the aggregate id), and the tickets reported in the batch
    (whose rows cannot exist yet, so need no loading)."""

    by_event: dict[int, str]
    reported: set[str]
    at: dict[int, str]  # id(event) -> its business time as ISO text (UTC)
    month: dict[int, str]  # id(event) -> its month in China Standard Time


def event_keys(items: Sequence[tuple[Any, Tracking]]) -> EventKeys:
    by_event = {id(e): str(e.originator_id) for e, _ in items}
    reported = {by_event[id(e)] for e, _ in items if e.originator_version == 1}
    timed = [e for e, _ in items if isinstance(getattr(e, "at", None), datetime)]  # other aggregates' may not be
    at = {id(e): _iso(e.at) for e in timed}
    month = {id(e): _month(e.at) for e in timed}
    return EventKeys(by_event, reported, at, month)


def hours_between(start: str | None, end: str | None) -> float | None:
    if not start or not end:
        return None
    return (datetime.fromisoformat(end) - datetime.fromisoformat(start)).total_seconds() / 3600


def refs(pairs: Iterable[tuple[str, int]]) -> list[dict[str, Any]]:
    """Event references grouped by ticket: [{"ticket_id", "versions": [...]}]."""
    by_ticket: dict[str, set[int]] = defaultdict(set)
    for ticket_id, version in pairs:
        by_ticket[ticket_id].add(version)
    return [{"ticket_id": t, "versions": sorted(v)} for t, v in sorted(by_ticket.items())]


def case_refs(triples: Iterable[tuple[str | None, str, int]]) -> list[dict[str, Any]]:
    """Event references grouped by case, for every case kind: (kind, case id, version)
    -> [{"ticket_id" | "complaint_id" | "return_id" | "inspection_id": id, "versions": [...]}],
    tickets first; each is found at GET /tickets/{id}/history, /complaints/{id}/history,
    /returns/{id}/history or /inspections/{id}/history."""
    by_case: dict[tuple[str, str], set[int]] = defaultdict(set)
    for kind, case_id, version in triples:
        by_case[(kind or "ticket", case_id)].add(version)
    order = sorted(by_case, key=lambda k: (k[0] != "ticket", k))
    return [{f"{kind}_id": case_id, "versions": sorted(by_case[(kind, case_id)])} for kind, case_id in order]


def deadlines_of(data: dict, reported_at: Any, severity: str, zone: str) -> dict[str, str]:
    """The deadlines the workflow recorded with the event, else the default policy's."""
    recorded = data.get("deadlines")
    if recorded:
        return {goal: iso(at) for goal, at in recorded.items()}
    if isinstance(reported_at, str):
        reported_at = datetime.fromisoformat(reported_at)
    return {goal: iso(at) for goal, at in policy.deadlines(reported_at, severity, zone).items()}


@cache
def org():
    """The organisation (who is in which department); the WEIBAO_ORG_FILE at start."""
    from activities import config
    return config.load_org()


def department_of(staff_id: str | None) -> str:
    person = org().get(staff_id)
    return person.department if person else "unknown"


def staff_name(staff_id: str | None) -> str | None:
    person = org().get(staff_id)
    return person.name if person else None


# ---------------------------------------------------------------- tables

def _dumps(value: Any) -> str:
    """Compact JSON text for a JSON column (orjson: several times quicker than json here)."""
    return orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS).decode()

TYPES = {  # portable column type -> (SQLite, PostgreSQL)
    "TEXT": ("TEXT", "TEXT"),
    "INT": ("INTEGER", "BIGINT"),
    "REAL": ("REAL", "DOUBLE PRECISION"),
    "JSON": ("TEXT", "TEXT"),  # encoded and decoded by the table, the same on both
}


@dataclass(frozen=True)
class Table:
    name: str
    columns: tuple[tuple[str, str], ...]
    key: tuple[str, ...]
    indexes: tuple[tuple[str, ...], ...] = ()
    json: frozenset[str] = field(init=False)
    names: tuple[str, ...] = field(init=False)
    empty: dict[str, None] = field(init=False, compare=False)
    _get: Any = field(init=False, compare=False, repr=False)
    _json_at: tuple[int, ...] = field(init=False, compare=False, repr=False)

    def __post_init__(self) -> None:
        names = tuple(c for c, _ in self.columns)
        object.__setattr__(self, "names", names)
        object.__setattr__(self, "json", frozenset(c for c, t in self.columns if t == "JSON"))
        object.__setattr__(self, "empty", dict.fromkeys(names))
        object.__setattr__(self, "_get", itemgetter(*names))
        object.__setattr__(self, "_json_at", tuple(i for i, (_, t) in enumerate(self.columns) if t == "JSON"))

    def __hash__(self) -> int:
        return hash(self.name)

    def ddl(self, dialect: int) -> list[str]:
        cols = ", ".join(f"{c} {TYPES[t][dialect]}" for c, t in self.columns)
        out = [f"CREATE TABLE IF NOT EXISTS {self.name} ({cols}, PRIMARY KEY ({', '.join(self.key)}))"]
        for i, idx in enumerate(self.indexes):
            out.append(f"CREATE INDEX IF NOT EXISTS {self.name}_ix{i} ON {self.name} ({', '.join(idx)})")
        return out

    def encode(self, row: dict[str, Any]) -> tuple:
        values = self._get(row)
        if not self._json_at:
            return values
        values = list(values)
        for i in self._json_at:
            if values[i] is not None:
                values[i] = _dumps(values[i])
        return tuple(values)

    def decode(self, row: Any) -> dict[str, Any]:
        out = dict(row)
        for c in self.json:
            if out.get(c) is not None:
                out[c] = json.loads(out[c])
        return out

    def upsert_sql(self) -> str:
        cols = ", ".join(self.names)
        marks = ", ".join("?" * len(self.names))
        updates = ", ".join(f"{c} = excluded.{c}" for c in self.names if c not in self.key)
        return (f"INSERT INTO {self.name} ({cols}) VALUES ({marks}) "
                f"ON CONFLICT ({', '.join(self.key)}) DO UPDATE SET {updates}")

    def insert_sql(self) -> str:
        return f"INSERT INTO {self.name} ({', '.join(self.names)}) VALUES ({', '.join('?' * len(self.names))})"


# ---------------------------------------------------------------- views

class ReadModelView(TrackingRecorder):
    """A read model's tables with its tracking position, in the event store's database."""

    dialect = 0  # 0 SQLite, 1 PostgreSQL
    tracking_table_name: str
    read_model = ""  # the read model's name: its rows in the shared quarantine table
    tables: tuple[Table, ...] = ()  # a subclass may name them, for the library's ProjectionRunner

    def sql(self, statement: str) -> str:
        return statement.replace("?", "%s") if self.dialect else statement

    @contextmanager
    def transaction(self) -> Iterator[Any]:
        with self.datastore.transaction(commit=True) as curs:  # type: ignore[attr-defined]
            yield curs

    def query(self, statement: str, params: Sequence[Any] = ()) -> list[dict[str, Any]]:
        with self.datastore.transaction(commit=False) as curs:  # type: ignore[attr-defined]
            curs.execute(self.sql(statement), list(params))
            return [dict(r) for r in curs.fetchall()]

    def select(self, table: Table, where: str = "", params: Sequence[Any] = (), order: str = "",
               limit: int | None = None, offset: int = 0) -> list[dict[str, Any]]:
        statement = f"SELECT * FROM {table.name}"
        if where:
            statement += f" WHERE {where}"
        if order:
            statement += f" ORDER BY {order}"
        if limit is not None:
            statement += f" LIMIT {int(limit)} OFFSET {int(offset)}"
        return [table.decode(r) for r in self.query(statement, params)]

    def load(self, curs: Any, table: Table, keys: Sequence[str]) -> dict[str, dict[str, Any]]:
        """Rows of `table` (keyed by originator_id) for the given keys."""
        out: dict[str, dict[str, Any]] = {}
        for i in range(0, len(keys), 500):
            chunk = list(keys[i:i + 500])
            if self.dialect:
                curs.execute(f"SELECT * FROM {table.name} WHERE originator_id = ANY(%s)", [chunk])
            else:
                curs.execute(f"SELECT * FROM {table.name} WHERE originator_id IN ({','.join('?' * len(chunk))})",
                             chunk)
            for r in curs.fetchall():
                row = table.decode(r)
                out[row["originator_id"]] = row
        return out

    def insert(self, curs: Any, table: Table, rows: list[tuple]) -> None:
        if rows:
            curs.executemany(table.insert_sql(), rows)

    def upsert(self, curs: Any, table: Table, rows: list[tuple]) -> None:
        if rows:
            curs.executemany(table.upsert_sql(), rows)

    def advance(self, curs: Any, expected: int | None, tracking: Tracking) -> None:
        """Move the position from `expected` to `tracking`, or raise PositionConflict."""
        t = self.tracking_table_name
        if expected is None:
            try:
                curs.execute(self.sql(f"INSERT INTO {t} (application_name, notification_id) VALUES (?, ?)"),
                             [tracking.application_name, tracking.notification_id])
            except (IntegrityError, sqlite3.IntegrityError, psycopg.IntegrityError):
                raise PositionConflict(self.tracking_table_name) from None
            return
        curs.execute(self.sql(f"UPDATE {t} SET notification_id = ? WHERE application_name = ? "
                              f"AND notification_id = ? RETURNING notification_id"),
                     [tracking.notification_id, tracking.application_name, expected])
        if curs.fetchone() is None:
            raise PositionConflict(self.tracking_table_name)

    def create_read_model_tables(self) -> None:
        """Create the tables if missing. CREATE TABLE IF NOT EXISTS never changes a table:
        a table whose columns are not the ones declared now (a newer or older read model
        built it) is dropped with the others and the position, to be rebuilt."""
        with self.transaction() as curs:
            self._lock_versions(curs)
            curs.execute(quarantine.ddl(self.dialect))
            stale = [t.name for t in self.tables if self._columns(curs, t.name) not in ([], list(t.names))]
            if stale:
                log.warning("%s: the columns of %s changed: dropped, to be rebuilt from the first event",
                            self.tracking_table_name, ", ".join(stale))
                self._recreate(curs)
                self._forget_positions(curs)
                return
            for table in self.tables:
                for statement in table.ddl(self.dialect):
                    curs.execute(statement)

    def _columns(self, curs: Any, table: str) -> list[str]:
        """The columns `table` has in the database, in order ([] if it does not exist)."""
        if self.dialect:
            curs.execute("SELECT column_name FROM information_schema.columns WHERE table_schema = current_schema() "
                         "AND table_name = %s ORDER BY ordinal_position", [table])
            return [r["column_name"] for r in curs.fetchall()]
        curs.execute(f"PRAGMA table_info({table})")
        return [r["name"] for r in curs.fetchall()]

    def reset(self, application_name: str) -> None:
        """Drop the read model's rows, its position and its quarantine, in one transaction."""
        with self.transaction() as curs:
            self._recreate(curs)
            curs.execute(self.sql(f"DELETE FROM {self.tracking_table_name} WHERE application_name = ?"),
                         [application_name])
            if self.read_model:
                quarantine.forget(self, curs, self.read_model)

    def _recreate(self, curs: Any) -> None:
        """Drop the read model's tables and create them as its Tables now say."""
        for table in self.tables:
            curs.execute(f"DROP TABLE IF EXISTS {table.name}")
        for table in self.tables:
            for statement in table.ddl(self.dialect):
                curs.execute(statement)

    def ensure_version(self, name: str, version: int) -> bool:
        """Record that read model `name` (version `version`) keeps this view. A view
        built by another version (its tables, or what it makes of the events, differ:
        CREATE TABLE IF NOT EXISTS never changes a table) is dropped with its position,
        in one transaction, so the runner rebuilds it from the first event; True then.
        A view built before versions were recorded was built by version 1."""
        v, t = VERSIONS, self.tracking_table_name
        with self.transaction() as curs:
            self._lock_versions(curs)
            curs.execute(self.sql(f"SELECT version FROM {v} WHERE tracking_table = ?"), [t])
            row = curs.fetchone()
            recorded = row["version"] if row is not None else None
            if recorded == version:
                return False
            curs.execute(self.sql(f"SELECT notification_id FROM {t} WHERE application_name <> ? LIMIT 1"),
                         [self.table_migration_identifier])
            built = curs.fetchone() is not None
            rebuild = built and (recorded or 1) != version
            if rebuild:
                log.warning("%s: built by version %s, this is version %s: dropped, to be rebuilt from the first "
                            "event", name, recorded or 1, version)
                self._recreate(curs)
                self._forget_positions(curs)
            curs.execute(self.sql(f"INSERT INTO {v} (tracking_table, read_model, version) VALUES (?, ?, ?) "
                                  f"ON CONFLICT (tracking_table) DO UPDATE SET read_model = excluded.read_model, "
                                  f"version = excluded.version"), [t, name, version])
        return rebuild

    def _lock_versions(self, curs: Any) -> None:
        """The versions table, created if missing, and a write first: one process at a time
        checks a view and rebuilds it (SQLite's write lock, or PostgreSQL's table lock)."""
        curs.execute(f"CREATE TABLE IF NOT EXISTS {VERSIONS} (tracking_table TEXT PRIMARY KEY, "
                     f"read_model TEXT, version INTEGER)")
        if self.dialect:
            curs.execute(f"LOCK TABLE {VERSIONS} IN SHARE ROW EXCLUSIVE MODE")
        else:
            curs.execute(f"UPDATE {VERSIONS} SET version = version WHERE tracking_table = ?",
                         [self.tracking_table_name])

    def _forget_positions(self, curs: Any) -> None:
        """Delete the view's positions: every row of its tracking table but the library's
        own (its "__migration__" row records the table's format, not a position), and
        its quarantine: a rebuild tries those events again."""
        curs.execute(self.sql(f"DELETE FROM {self.tracking_table_name} WHERE application_name <> ?"),
                     [self.table_migration_identifier])
        if self.read_model:
            quarantine.forget(self, curs, self.read_model)


VERSIONS = "read_model_versions"  # tracking table -> the read model and version that built its view


class SQLiteReadModelView(ReadModelView, SQLiteTrackingRecorder):
    dialect = 0

    def __init__(self, datastore: Any, *, tracking_table_name: str = "tracking",
                 tables: tuple[Table, ...] | None = None):
        self.tracking_table_name = tracking_table_name  # needed by the statements built in super()
        if tables is not None:
            self.tables = tables
        super().__init__(datastore)
        t = tracking_table_name
        self.insert_tracking_statement = (
            f"INSERT INTO {t} VALUES (:application_name, :notification_id) "
            f"ON CONFLICT (application_name) DO UPDATE SET notification_id = :notification_id "
            f"WHERE {t}.notification_id < :notification_id RETURNING notification_id")
        self.select_max_tracking_id_statement = f"SELECT MAX(notification_id) FROM {t} WHERE application_name=?"

    def construct_create_table_statements(self) -> list[str]:
        return [f"CREATE TABLE IF NOT EXISTS {self.tracking_table_name} (application_name TEXT, "
                "notification_id INTEGER, PRIMARY KEY (application_name)) WITHOUT ROWID"]

    def create_table(self) -> None:
        super().create_table()
        self.create_read_model_tables()


class PostgresReadModelView(ReadModelView, PostgresTrackingRecorder):
    dialect = 1

    def __init__(self, datastore: Any, *, tracking_table_name: str = "notification_tracking",
                 tables: tuple[Table, ...] | None = None):
        if tables is not None:
            self.tables = tables
        super().__init__(datastore, tracking_table_name=tracking_table_name)

    # COPY is several times cheaper than executemany, on the client and the server.
    def insert(self, curs: Any, table: Table, rows: list[tuple]) -> None:
        if rows:
            with curs.copy(f"COPY {table.name} ({', '.join(table.names)}) FROM STDIN") as copy:
                for row in rows:
                    copy.write_row(row)

    def upsert(self, curs: Any, table: Table, rows: list[tuple]) -> None:
        if not rows:
            return
        names = table.names
        updates = ", ".join(f"{c} = excluded.{c}" for c in names if c not in table.key)
        # One parameter, parsed by the server: cheaper than a statement per row or a staging table.
        curs.execute(f"INSERT INTO {table.name} SELECT * FROM jsonb_populate_recordset(NULL::{table.name}, %s::jsonb) "
                     f"ON CONFLICT ({', '.join(table.key)}) DO UPDATE SET {updates}",
                     [_dumps([dict(zip(names, row)) for row in rows])])

    def create_table(self) -> None:
        super().create_table()
        self.create_read_model_tables()


# ---------------------------------------------------------------- read models

class Batch:
    """One read model's share of a batch of events: its per-ticket rows loaded once,
    changed in memory, and written back with the appended facts."""

    def __init__(self, model: "ReadModel", curs: Any, keys: EventKeys, cache: dict[str, dict[str, Any]]):
        self.model, self.curs, self.keys = model, curs, keys.by_event
        self._at, self._month = keys.at, keys.month
        missing = [k for k in dict.fromkeys(keys.by_event.values()) if k not in cache and k not in keys.reported]
        if missing:
            cache.update(model.view.load(curs, model.tickets, missing))
        self.tickets = cache
        self.changed: set[str] = set()
        self.created: set[str] = set()  # rows new in this batch: inserted, not upserted
        self.appended: dict[Table, list[tuple]] = defaultdict(list)

    def ticket(self, event: Any) -> dict[str, Any] | None:
        """The ticket's row, to change (None if its report was never seen)."""
        key = self.keys[id(event)]
        row = self.tickets.get(key)
        if row is not None:
            self.changed.add(key)
        return row

    def at(self, event: Any) -> str:
        """The event's business time, as ISO text in UTC."""
        return self._at[id(event)]

    def month(self, event: Any) -> str:
        """The event's month (YYYY-MM) in China Standard Time."""
        return self._month[id(event)]

    def peek(self, event: Any) -> dict[str, Any] | None:
        """The ticket's row, to read only."""
        return self.tickets.get(self.keys[id(event)])

    def new_ticket(self, event: Any, **values: Any) -> dict[str, Any]:
        key = self.keys[id(event)]
        row = self.model.tickets.empty.copy()
        row.update(values, originator_id=key)
        self.tickets[key] = row
        self.changed.add(key)
        self.created.add(key)
        return row

    def append(self, table: Table, event: Any, **values: Any) -> None:
        """A fact row, keyed by the event it came from (originator_id, version)."""
        row = table.empty.copy()
        row.update(values, originator_id=self.keys[id(event)], version=event.originator_version,
                   command_id=event.command_id)
        self.appended[table].append(table.encode(row))

    def flush(self) -> None:
        view, tickets = self.model.view, self.model.tickets
        rows = self.tickets
        view.insert(self.curs, tickets, [tickets.encode(rows[k]) for k in sorted(self.created)])
        view.upsert(self.curs, tickets, [tickets.encode(rows[k]) for k in sorted(self.changed - self.created)])
        for table, rows in self.appended.items():
            view.insert(self.curs, table, rows)


class ReadModel(Projection[ReadModelView]):
    """A read model over the tickets' events. Subclasses name their tables and
    register `apply` for the event classes they use; others only move the position."""

    name = ""
    title = ""
    # Bump it when the tables change or old events are read differently: a view built by
    # another version is dropped when the read model is opened, and rebuilt from the first event.
    version = 1
    tickets: Table  # per-ticket rows keyed by originator_id
    facts: tuple[Table, ...] = ()

    cache_size = 20_000  # per-ticket rows kept between batches

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        cls._handlers: dict[type, Any] = {}

    def __init__(self, view: ReadModelView):
        super().__init__(view)
        view.read_model = self.name
        view.ensure_version(self.name, self.version)
        # The per-ticket rows as of position `_cached_at`: valid while this process
        # is the one that moves the position (the compare-and-set says so).
        self._cache: dict[str, dict[str, Any]] = {}
        self._cached_at: int | None = None

    @classmethod
    def tables(cls) -> tuple[Table, ...]:
        return (cls.tickets, *cls.facts)

    def process_event(self, domain_event: Any, tracking: Tracking) -> None:
        """The library's one-event entry point (ProjectionRunner): a batch of one, the
        event quarantined if it cannot be applied (an operational error is raised)."""
        expected = self.view.max_tracking_id(tracking.application_name)
        try:
            self.process_batch([(domain_event, tracking)], expected)
        except PositionConflict:
            raise
        except Exception as e:
            if quarantine.is_operational(e):
                raise
            self.quarantine((domain_event, tracking), expected, quarantine.reason(e))

    def quarantine(self, item: tuple[Any, Tracking], expected: int | None, why: str) -> None:
        """Set an event that cannot be applied aside, with `why`, and move the position
        past it from `expected`, in one transaction; PositionConflict if it had moved."""
        event, tracking = item
        self._cache.clear()
        self._cached_at = None
        with self.view.transaction() as curs:
            self.view.advance(curs, expected, tracking)
            quarantine.record(self.view, curs, self.name, tracking.notification_id, event, why)
        log.error("%s: quarantined %s v%s of %s (notification %s): %s; the read model goes on past it",
                  self.name, quarantine.topic_of(event).rsplit(".", 1)[-1], event.originator_version,
                  event.originator_id, tracking.notification_id, why)

    def process_batch(self, items: Sequence[tuple[Any, Tracking]], expected: int | None,
                      keys: EventKeys | None = None) -> None:
        """Apply events in order, in one transaction that also moves the position
        from `expected` to the last event's; PositionConflict if it had moved."""
        if not items:
            return
        if keys is None:
            keys = event_keys(items)
        if expected is None or expected != self._cached_at or len(self._cache) > self.cache_size:
            self._cache.clear()
        try:
            with self.view.transaction() as curs:
                self.view.advance(curs, expected, items[-1][1])  # first: a write takes the lock now
                batch = Batch(self, curs, keys, self._cache)
                handlers = self._handlers
                for event, _ in items:
                    cls = type(event)
                    handler = handlers.get(cls) or self._handler(cls)
                    handler(self, event, batch)
                batch.flush()
        except BaseException:
            self._cache.clear()  # rows changed in memory were not committed
            self._cached_at = None
            raise
        self._cached_at = items[-1][1].notification_id

    def _handler(self, cls: type) -> Any:
        if cls is quarantine.Undecodable:
            return _undecodable
        self.apply  # noqa: B018 -- binding it completes any deferred registrations
        method = next(k.__dict__["apply"] for k in type(self).__mro__ if "apply" in k.__dict__)
        handler = self._handlers[cls] = method.dispatcher.dispatch(cls)
        return handler

    @singledispatchmethod
    def apply(self, event: Any, batch: Batch) -> None:
        """Events this read model does not use."""


def _undecodable(model: ReadModel, event: quarantine.Undecodable, batch: Batch) -> None:
    """A stored event that could not be decoded fails where it stands: it is quarantined."""
    raise event.error
