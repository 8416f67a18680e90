"""The API's own small tables (bearer tokens, idempotency keys), kept in the event
store's database: the SQLite file or the PostgreSQL database of WEIBAO_EVENT_STORE.

Statements are written with `?` placeholders and run on either."""
from __future__ import annotations

import sqlite3
import threading
from contextlib import contextmanager
from typing import Any, Iterator, Sequence

from activities import config


class Database:
    def __init__(self, kind: str | None = None):
        self.kind = kind or config.store_kind()
        self._lock = threading.Lock()
        if self.kind == "sqlite":
            path = config.sqlite_file()
            self._conn = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None, timeout=10)
            self._pool = None
        else:
            from psycopg_pool import ConnectionPool

            # checked before use: a connection a database restart broke is replaced, not handed out
            self._pool = ConnectionPool(config.postgres_conninfo(), min_size=1, max_size=4,
                                        kwargs={"autocommit": True}, open=True,
                                        check=ConnectionPool.check_connection)

    def _sql(self, statement: str) -> str:
        return statement if self.kind == "sqlite" else statement.replace("?", "%s")

    @contextmanager
    def _cursor(self) -> Iterator[Any]:
        if self._pool is None:
            with self._lock:
                yield self._conn.cursor()
        else:
            with self._pool.connection() as conn:
                yield conn.cursor()

    def execute(self, statement: str, params: Sequence[Any] = ()) -> int:
        """Run one statement; returns the number of rows it changed."""
        with self._cursor() as c:
            c.execute(self._sql(statement), params)
            return c.rowcount

    def fetchone(self, statement: str, params: Sequence[Any] = ()) -> tuple | None:
        with self._cursor() as c:
            c.execute(self._sql(statement), params)
            return c.fetchone()

    def fetchall(self, statement: str, params: Sequence[Any] = ()) -> list[tuple]:
        with self._cursor() as c:
            c.execute(self._sql(statement), params)
            return c.fetchall()

    def close(self) -> None:
        if self._pool is None:
            self._conn.close()
        else:
            self._pool.close()
