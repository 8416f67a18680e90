"""The event store: an eventsourcing Application over SQLite (embedded default) or
PostgreSQL, chosen by WEIBAO_EVENT_STORE."""
from __future__ import annotations

from typing import Any
from uuid import UUID

import orjson
from eventsourcing.application import Application
from eventsourcing.persistence import JSONTranscoder, StoredEvent, Transcoder
from eventsourcing.postgres import PostgresApplicationRecorder
from eventsourcing.sqlite import SQLiteAggregateRecorder

from activities import config, telemetry
from domain.chained import case_uuid


def store_env(kind: str | None = None, **overrides: str) -> dict[str, str]:
    kind = kind or config.store_kind()
    if kind == "sqlite":
        path = config.sqlite_file()
        env = {"PERSISTENCE_MODULE": "eventsourcing.sqlite", "SQLITE_DBNAME": str(path),
               "SQLITE_LOCK_TIMEOUT": "10"}
    else:
        # every pooled connection is checked before use: one a database restart broke is replaced
        env = {"PERSISTENCE_MODULE": "eventsourcing.postgres", **config.postgres(),
               "POSTGRES_POOL_SIZE": "4", "POSTGRES_MAX_OVERFLOW": "4", "POSTGRES_PRE_PING": "y",
               "APPLICATION_RECORDER_TOPIC": f"{__name__}:ConcurrentAppends"}
    # as many aggregates as the worker keeps open cases: a step on a case the worker holds
    # then finds its aggregate too, instead of reading and folding its whole history
    cache = max(2000, config.settings().worker_cache)
    env.update({"AGGREGATE_CACHE_MAXSIZE": str(cache), "CREATE_TABLE": "y"})
    env.update(overrides)
    return env


class ConcurrentAppends(PostgresApplicationRecorder):
    """eventsourcing's PostgreSQL recorder without its `LOCK TABLE … IN EXCLUSIVE MODE`
    in every append. That lock made appends commit in the order of their notification
    ids, one at a time, the commit's flush included, so that a reader of the notification
    log never passes an id that a transaction still open will fill. Here appends overlap
    (their commits share a flush), and the one reader of the log, the read models' runner,
    does not pass such an id: `projections.gaps` waits for the transactions still
    inserting into the table before it moves past a missing id. A runner from before
    this change does not wait: upgrade the runners before the workers (README, Beyond
    one machine)."""

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        # keep the lock timeout (a migration's DDL lock still conflicts with an insert), drop the lock
        self.lock_table_statements = [s for s in self.lock_table_statements if "LOCK TABLE" not in s.as_string()]


class QuickJSONTranscoder(JSONTranscoder):
    """eventsourcing's JSON transcoder, decoding with orjson: the stored format is the
    same. A stored event's custom values (`{"_type_", "_data_"}`: its `at` and
    `timestamp`) are top-level fields; when they are all there are, they are decoded
    here, and anything else (a custom value deeper down, text orjson refuses) goes
    through the library's own decoder. Decoding is most of what reading events costs."""

    def decode(self, data: bytes) -> Any:
        try:
            obj = orjson.loads(data)
        except orjson.JSONDecodeError:
            return super().decode(data)
        custom = data.count(b'"_type_"')
        if not custom:
            return obj
        if type(obj) is dict:
            for key, value in obj.items():
                if type(value) is dict and len(value) == 2 and "_type_" in value:
                    obj[key] = self._decode_obj(value)
                    custom -= 1
            if not custom:
                return obj
        return super().decode(data)


class EventStore(Application):
    """The one event store of every case kind (tickets, complaints, returns, inspections,
    maintenance plans): one notification log for the read models. Its name stays
    "tickets", which names its tables, so stores written before cases joined still open."""

    name = "tickets"

    def construct_transcoder(self) -> Transcoder:
        transcoder = QuickJSONTranscoder()
        self.register_transcodings(transcoder)
        return transcoder

    def save(self, *objs: Any, **kwargs: Any) -> Any:
        with telemetry.span("event_store.append"):  # the append in a step's trace (a no-op untraced)
            return super().save(*objs, **kwargs)

    def aggregate(self, kind: str, case_id: str, **kwargs: Any) -> Any:
        """The case aggregate of `kind`; raises AggregateNotFoundError when never recorded."""
        return self.repository.get(case_uuid(kind, case_id), **kwargs)

    def read_history(self, kind: str, case_id: str) -> tuple[list[dict[str, Any]], int | None]:
        """The case's recorded events in order, as plain dicts, and the version of the first
        stored event that cannot even be decoded (None when all can): a damaged row stops
        the read there, `domain.chain.verify` names it. The key "ticket" holds the
        aggregate id, as `domain.chain.verify` expects."""
        out: list[dict[str, Any]] = []
        for stored in self.recorder.select_events(case_uuid(kind, case_id)):
            try:
                e = self.mapper.to_domain_event(stored)
            except Exception:
                return out, stored.originator_version
            out.append({
                "ticket": str(e.originator_id), "version": e.originator_version, "type": type(e).__name__,
                "at": e.at, "actor": e.actor, "command_id": e.command_id, "data": e.data,
                "prev_hash": e.prev_hash, "hash": e.hash, "recorded_at": e.timestamp,
            })
        return out, None

    def stored_rows(self, kind: str, case_id: str) -> list[tuple[int, str, bytes]]:
        """The case's stored events in order as (version, topic, stored bytes), undecoded.
        On SQLite one plain query, with no `StoredEvent` or `UUID` made per row (most of
        `select_events`' time for a short history); elsewhere from `select_events`."""
        aggregate_id = case_uuid(kind, case_id)
        recorder = self.recorder
        if isinstance(recorder, SQLiteAggregateRecorder):
            statement = (f"SELECT originator_version, topic, state FROM {recorder.events_table_name} "
                         "WHERE originator_id=? ORDER BY originator_version")
            with recorder.datastore.transaction(commit=False) as c:
                c.execute(statement, (aggregate_id.hex,))
                return [(row[0], row[1], bytes(row[2])) for row in c.fetchall()]
        return [(e.originator_version, e.topic, bytes(e.state)) for e in recorder.select_events(aggregate_id)]

    def decode(self, kind: str, case_id: str, version: int, topic: str, state: bytes) -> Any:
        """The domain event stored as `stored_rows` gives it."""
        return self.mapper.to_domain_event(StoredEvent(originator_id=case_uuid(kind, case_id),
                                                       originator_version=version, topic=topic, state=state))

    def history(self, kind: str, case_id: str) -> list[dict[str, Any]]:
        """The case's recorded events in order (empty if unknown)."""
        return self.read_history(kind, case_id)[0]


def fill_case_ids(store: EventStore, links: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Links from the `ticket_links` read model, each with its case id: an inspection
    finding recorded before findings carried their inspection's id gets it from the
    inspection's own record."""
    for link in links:
        if link.get("case_id") is None:
            link["case_id"] = store.repository.get(UUID(link["originator_id"])).state.case_id
    return links


def open_store(kind: str | None = None, **overrides: str) -> EventStore:
    return EventStore(env=store_env(kind, **overrides))
