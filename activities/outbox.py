"""The notification outbox: each warning and escalation as a row (target, case, reason),
written once per command id by the case's workflow, and every delivery attempt of it
(`notification_attempts`: channel, round, attempt, sent or failed with the reason, or
given up) written by the delivery activities (workflows/delivery.py). The API's
`GET /notifications` and `weibao notifications` read both. `delivery_starts` holds the
deliveries that alarms raised and the relay (activities/relay.py) has yet to start, each
claimed by one relay at a time (`claim`: the relay sends its first round itself)."""
from __future__ import annotations

import sqlite3
import threading
from datetime import datetime, timedelta, timezone
from typing import Any

from activities import config

COLUMNS = ("id", "ticket_id", "target", "kind", "reason", "created_at")
ATTEMPT_COLUMNS = ("notice", "channel", "round", "attempt", "status", "reason", "at")
STATUSES = ("pending", "sent", "failed", "given_up")


class Outbox:
    def __init__(self, kind: str | None = None):
        self.kind = kind or config.store_kind()
        self._local = threading.local()
        ts = "TEXT" if self.kind == "sqlite" else "TIMESTAMPTZ"
        ddl = [f"CREATE TABLE IF NOT EXISTS notifications (id TEXT PRIMARY KEY, ticket_id TEXT, target TEXT, "
               f"kind TEXT, reason TEXT, created_at {ts})",
               f"CREATE TABLE IF NOT EXISTS notification_attempts (notice TEXT, channel TEXT, round INT, "
               f"attempt INT, status TEXT, reason TEXT, at {ts}, PRIMARY KEY (notice, channel, round, attempt))",
               f"CREATE TABLE IF NOT EXISTS delivery_starts (notice TEXT PRIMARY KEY, task_queue TEXT, "
               f"request TEXT, created_at {ts}, started_at {ts}, claimed_at {ts})",
               "CREATE INDEX IF NOT EXISTS delivery_starts_pending ON delivery_starts (task_queue, created_at) "
               "WHERE started_at IS NULL"]
        if self.kind == "sqlite":
            self._path = str(config.sqlite_file())
            self._p = "?"
        else:
            import psycopg_pool
            # as many connections as the worker has threads for the alarms that write here
            # (opened as they are needed): with four, the alarms of a burst queued for them
            size = max(4, config.settings().worker_threads)
            self._pool = psycopg_pool.ConnectionPool(config.postgres_conninfo(), min_size=1, max_size=size, open=True,
                                                     check=psycopg_pool.ConnectionPool.check_connection)
            self._p = "%s"
        for statement in ddl:
            self._execute(statement, ())
        self._add_claims(ts)

    def _add_claims(self, ts: str) -> None:
        """`delivery_starts.claimed_at` in a table made before it (the relay's claims)."""
        if self.kind == "postgres":
            self._execute(f"ALTER TABLE delivery_starts ADD COLUMN IF NOT EXISTS claimed_at {ts}", ())
        elif "claimed_at" not in {r[1] for r in self._execute("PRAGMA table_info(delivery_starts)", (), fetch=True)}:
            try:
                self._execute(f"ALTER TABLE delivery_starts ADD COLUMN claimed_at {ts}", ())
            except sqlite3.OperationalError as e:  # another process added it first
                if "duplicate column" not in str(e):
                    raise

    def _sql(self, sql: str) -> str:
        return sql.replace("?", self._p)

    def _execute(self, sql: str, params: tuple, fetch: bool = False) -> list[tuple]:
        return self._transaction([(sql, params)], fetch)

    def _transaction(self, statements: list[tuple[str, tuple]], fetch: bool = False) -> list[tuple]:
        """The statements in one transaction; the last one's rows when `fetch`."""
        cur = None
        if self.kind == "sqlite":
            conn = getattr(self._local, "conn", None)
            if conn is None:
                conn = self._local.conn = sqlite3.connect(self._path, timeout=10)
            with conn:
                for sql, params in statements:
                    cur = conn.execute(sql, params)
                return cur.fetchall() if fetch else []
        with self._pool.connection() as conn:
            for sql, params in statements:
                cur = conn.execute(self._sql(sql), params)
            return cur.fetchall() if fetch else []

    def _now(self) -> Any:
        now = datetime.now(timezone.utc)
        return now.isoformat() if self.kind == "sqlite" else now

    def add(self, id: str, ticket_id: str, target: str, kind: str, reason: str,
            start: tuple[str, str] | None = None) -> None:
        """The notification; with `start` (task queue, request JSON), its delivery for the
        relay to start, in the same transaction."""
        now = self._now()
        statements = [("INSERT INTO notifications VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (id) DO NOTHING",
                       (id, ticket_id, target, kind, reason, now))]
        if start is not None:
            statements.append((self._TO_START, (id, *start, now)))
        self._transaction(statements)

    def for_ticket(self, ticket_id: str) -> list[dict[str, Any]]:
        rows = self._execute("SELECT * FROM notifications WHERE ticket_id = ? ORDER BY created_at, id", (ticket_id,),
                             fetch=True)
        return [dict(zip(COLUMNS, row)) for row in rows]

    # --- deliveries to start (activities/relay.py) -------------------------------------------

    _TO_START = ("INSERT INTO delivery_starts (notice, task_queue, request, created_at) VALUES (?, ?, ?, ?) "
                 "ON CONFLICT (notice) DO NOTHING")

    def unstarted(self, task_queue: str, limit: int = 100) -> list[tuple[str, str]]:
        """(notice, request) of the deliveries on `task_queue` not started yet, oldest first."""
        return self._execute("SELECT notice, request FROM delivery_starts WHERE task_queue = ? AND started_at IS NULL "
                             "ORDER BY created_at, notice LIMIT ?", (task_queue, limit), fetch=True)

    def claim(self, task_queue: str, limit: int = 100, lease: float = 60.0) -> list[tuple[str, str, Any]]:
        """(notice, request, created_at) of up to `limit` deliveries on `task_queue` not started yet, oldest
        first, claimed for the caller: none that another relay claimed less than `lease`
        seconds ago, and none twice within it, so that only one relay sends a delivery's first
        round (activities/relay.py). A claim lapses after `lease`, or at `release`."""
        now = datetime.now(timezone.utc)
        lapsed = now - timedelta(seconds=lease)
        now_, lapsed_ = (now.isoformat(timespec="microseconds"), lapsed.isoformat(timespec="microseconds")) \
            if self.kind == "sqlite" else (now, lapsed)
        free = "started_at IS NULL AND (claimed_at IS NULL OR claimed_at < ?)"
        rows = self._execute(f"UPDATE delivery_starts SET claimed_at = ? WHERE {free} AND notice IN ("
                             f"SELECT notice FROM delivery_starts WHERE task_queue = ? AND {free} "
                             "ORDER BY created_at, notice LIMIT ?) RETURNING notice, request, created_at",
                             (now_, lapsed_, task_queue, lapsed_, limit), fetch=True)
        return sorted((tuple(r) for r in rows), key=lambda r: (r[2], r[0]))

    def release(self, notices: list[str]) -> None:
        """Claims given back (a start that failed): the next look may take them at once."""
        self._transaction([("UPDATE delivery_starts SET claimed_at = NULL WHERE notice = ? AND started_at IS NULL",
                            (notice,)) for notice in notices])

    def started(self, notices: list[str]) -> None:
        now = self._now()
        self._transaction([("UPDATE delivery_starts SET started_at = ? WHERE notice = ? AND started_at IS NULL",
                            (now, notice)) for notice in notices])

    # --- delivery attempts -----------------------------------------------------------------

    def attempt(self, notice: str, channel: str, round_: int, status: str, reason: str = "") -> None:
        """One attempt on record, numbered after those already on record for the channel and
        round: the first send runs in the Delivery workflow's task, and run again after a
        crash before that task completed it knows no other number than 1 (the retries'
        numbers, from the server, would not say it either)."""
        self._execute("INSERT INTO notification_attempts SELECT ?, ?, ?, COALESCE(MAX(attempt), 0) + 1, ?, ?, ? "
                      "FROM notification_attempts WHERE notice = ? AND channel = ? AND round = ? "
                      "ON CONFLICT (notice, channel, round, attempt) DO NOTHING",
                      (notice, channel, round_, status, reason[:1000], self._now(), notice, channel, round_))

    def sent(self, notice: str, channel: str, round_: int) -> bool:
        """Whether this round already reached the channel (a retry after a crash sends nothing twice)."""
        return bool(self._execute("SELECT 1 FROM notification_attempts WHERE notice = ? AND channel = ? AND round = ? "
                                  "AND status = 'sent'", (notice, channel, round_), fetch=True))

    def attempts(self, notice: str) -> list[dict[str, Any]]:
        rows = self._execute("SELECT * FROM notification_attempts WHERE notice = ? ORDER BY at, channel, round, attempt",
                             (notice,), fetch=True)
        return [dict(zip(ATTEMPT_COLUMNS, row)) for row in rows]

    def notice(self, notice: str) -> dict[str, Any] | None:
        rows = self._execute("SELECT * FROM notifications WHERE id = ?", (notice,), fetch=True)
        return self._with_status(dict(zip(COLUMNS, rows[0]))) if rows else None

    def _attempts_of(self, notices: list[str]) -> dict[str, list[dict[str, Any]]]:
        """The attempts of many notifications in one query."""
        out: dict[str, list[dict[str, Any]]] = {n: [] for n in notices}
        if notices:
            marks = ", ".join("?" for _ in notices)
            for row in self._execute(f"SELECT * FROM notification_attempts WHERE notice IN ({marks}) "
                                     "ORDER BY at, channel, round, attempt", tuple(notices), fetch=True):
                attempt = dict(zip(ATTEMPT_COLUMNS, row))
                out[attempt["notice"]].append(attempt)
        return out

    def _with_status(self, row: dict[str, Any], attempts: list[dict[str, Any]] | None = None) -> dict[str, Any]:
        """The notification with its attempts and its status: sent once any channel took it,
        given up when every channel tried gave up, failed while the last attempt failed."""
        attempts = self.attempts(row["id"]) if attempts is None else attempts
        last: dict[str, str] = {}
        for a in attempts:
            last[a["channel"]] = a["status"]
        if any(s == "sent" for s in last.values()):
            status = "sent"
        elif last and all(s == "given_up" for s in last.values()):
            status = "given_up"
        elif last:
            status = "failed"
        else:
            status = "pending"
        created = row["created_at"]
        return {**row, "case": row.pop("ticket_id"),
                "created_at": created if isinstance(created, str) else created.isoformat(),
                "status": status, "attempts": [{**a, "at": a["at"] if isinstance(a["at"], str) else a["at"].isoformat()}
                                               for a in attempts]}

    def list(self, status: str | None = None, target: str | None = None, start: str | None = None,
             end: str | None = None, limit: int = 500) -> list[dict[str, Any]]:
        """Notifications, newest first, with start <= created_at < end (ISO UTC), filtered."""
        where, params = [], []
        if target:
            where.append("target = ?"), params.append(target)
        if start:
            where.append("created_at >= ?"), params.append(start if self.kind == "sqlite" else datetime.fromisoformat(start))
        if end:
            where.append("created_at < ?"), params.append(end if self.kind == "sqlite" else datetime.fromisoformat(end))
        sql = "SELECT * FROM notifications" + (" WHERE " + " AND ".join(where) if where else "") + \
              " ORDER BY created_at DESC, id LIMIT ?"
        found = [dict(zip(COLUMNS, r)) for r in self._execute(sql, (*params, limit * 4), fetch=True)]
        attempts = self._attempts_of([r["id"] for r in found])
        rows = [self._with_status(r, attempts[r["id"]]) for r in found]
        return [r for r in rows if status is None or r["status"] == status][:limit]

    def close(self) -> None:
        if self.kind == "postgres":
            self._pool.close()
