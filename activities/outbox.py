"""The notification outbox: each warning and escalation as a row (target, ticket,
reason), written once per command id. A mailer or SMS gateway drains it."""
from __future__ import annotations

import sqlite3
import threading
from datetime import datetime, timezone
from typing import Any

from activities import config

COLUMNS = ("id", "ticket_id", "target", "kind", "reason", "created_at")


class Outbox:
    def __init__(self, kind: str | None = None):
        self.kind = kind or config.store_kind()
        self._local = threading.local()
        if self.kind == "sqlite":
            self._path = str(config.sqlite_path())
            config.sqlite_path().parent.mkdir(parents=True, exist_ok=True)
            self._ddl = ("CREATE TABLE IF NOT EXISTS notifications (id TEXT PRIMARY KEY, ticket_id TEXT, "
                         "target TEXT, kind TEXT, reason TEXT, created_at TEXT)")
            self._insert = "INSERT OR IGNORE INTO notifications VALUES (?, ?, ?, ?, ?, ?)"
            self._select = "SELECT * FROM notifications WHERE ticket_id = ? ORDER BY created_at, id"
        else:
            import psycopg_pool
            self._pool = psycopg_pool.ConnectionPool(config.postgres_conninfo(), min_size=1, max_size=4, open=True)
            self._ddl = ("CREATE TABLE IF NOT EXISTS notifications (id TEXT PRIMARY KEY, ticket_id TEXT, "
                         "target TEXT, kind TEXT, reason TEXT, created_at TIMESTAMPTZ)")
            self._insert = "INSERT INTO notifications VALUES (%s, %s, %s, %s, %s, %s) ON CONFLICT (id) DO NOTHING"
            self._select = "SELECT * FROM notifications WHERE ticket_id = %s ORDER BY created_at, id"
        self._execute(self._ddl, ())

    def _execute(self, sql: str, params: tuple, fetch: bool = False) -> list[tuple]:
        if self.kind == "sqlite":
            conn = getattr(self._local, "conn", None)
            if conn is None:
                conn = self._local.conn = sqlite3.connect(self._path, timeout=10)
            with conn:
                cur = conn.execute(sql, params)
                return cur.fetchall() if fetch else []
        with self._pool.connection() as conn:
            cur = conn.execute(sql, params)
            return cur.fetchall() if fetch else []

    def add(self, id: str, ticket_id: str, target: str, kind: str, reason: str) -> None:
        now = datetime.now(timezone.utc)
        self._execute(self._insert, (id, ticket_id, target, kind, reason,
                                     now.isoformat() if self.kind == "sqlite" else now))

    def for_ticket(self, ticket_id: str) -> list[dict[str, Any]]:
        return [dict(zip(COLUMNS, row)) for row in self._execute(self._select, (ticket_id,), fetch=True)]

    def close(self) -> None:
        if self.kind == "postgres":
            self._pool.close()
