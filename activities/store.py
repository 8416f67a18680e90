"""The event store: an eventsourcing Application over SQLite (embedded default) or
PostgreSQL, chosen by WEIBAO_EVENT_STORE."""
from __future__ import annotations

from typing import Any

import orjson
from eventsourcing.application import Application
from eventsourcing.persistence import JSONTranscoder, Transcoder

from activities import config
from domain.ticket import Ticket, ticket_uuid


def store_env(kind: str | None = None, **overrides: str) -> dict[str, str]:
    kind = kind or config.store_kind()
    if kind == "sqlite":
        path = config.sqlite_path()
        path.parent.mkdir(parents=True, exist_ok=True)
        env = {"PERSISTENCE_MODULE": "eventsourcing.sqlite", "SQLITE_DBNAME": str(path),
               "SQLITE_LOCK_TIMEOUT": "10"}
    else:
        env = {"PERSISTENCE_MODULE": "eventsourcing.postgres", **config.postgres(),
               "POSTGRES_POOL_SIZE": "4", "POSTGRES_MAX_OVERFLOW": "4"}
    env.update({"AGGREGATE_CACHE_MAXSIZE": "2000", "CREATE_TABLE": "y"})
    env.update(overrides)
    return env


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


class Tickets(Application):
    """The tickets' event store."""

    name = "tickets"

    def construct_transcoder(self) -> Transcoder:
        transcoder = QuickJSONTranscoder()
        self.register_transcodings(transcoder)
        return transcoder

    def get_ticket(self, ticket_id: str) -> Ticket:
        return self.repository.get(ticket_uuid(ticket_id))

    def history(self, ticket_id: str) -> list[dict[str, Any]]:
        """The ticket's recorded events in order, as plain dicts (empty if unknown)."""
        out = []
        for e in self.events.get(ticket_uuid(ticket_id)):
            out.append({
                "ticket": str(e.originator_id), "version": e.originator_version, "type": type(e).__name__,
                "at": e.at, "actor": e.actor, "command_id": e.command_id, "data": e.data,
                "prev_hash": e.prev_hash, "hash": e.hash, "recorded_at": e.timestamp,
            })
        return out


def open_tickets(kind: str | None = None, **overrides: str) -> Tickets:
    return Tickets(env=store_env(kind, **overrides))
