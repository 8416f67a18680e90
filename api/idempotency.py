"""Idempotency-Key: a client that timed out may send the same request again.

The key (scoped to the caller) is claimed with a fingerprint of the request; the
workflow id or Update id is derived from it, so Temporal itself deduplicates a
repeat that races the first, and the recording activity appends a command id once.
The first answer is kept here too, so a repeat after the ticket's workflow has
closed still gets it. The same key with a different request is refused.

What is kept holds no personal data (§四.5): the fingerprint is the request's method and
path (ids only) and a SHA-256 of its body, and the answer is kept with the contact phone,
a case's contact and confidential notes masked (`domain.permissions.PERSONAL_FIELDS`).
A repeat still answers what the first answered: the masked values are read back from
the case as it stood at the answer's version in the event store (they come from the
case's registration, which the store keeps anyway; an answer that is no case's state keeps
them masked for good). Rows are purged once older than
WEIBAO_IDEMPOTENCY_TTL (7 days), by the API as it claims keys (at most once a minute): a
key is a retry window, not an archive; a request repeated after that is a new request."""
from __future__ import annotations

import hashlib
import json
import logging
import threading
import time
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Annotated, Any, Protocol

from fastapi import Header

from activities import config
from activities.settings import duration
from activities.store import open_store
from api.db import Database
from domain.permissions import MASK, PERSONAL_FIELDS

log = logging.getLogger("weibao.api")

IdempotencyKey = Annotated[str | None, Header(
    alias="Idempotency-Key", min_length=1, max_length=200,
    description="retry safely: the same key and body answer the first answer and record nothing new")]

DDL = ("CREATE TABLE IF NOT EXISTS api_idempotency (scope TEXT PRIMARY KEY, fingerprint TEXT NOT NULL, "
       "status INTEGER, response TEXT, created_at TEXT NOT NULL, restore TEXT)")
PURGE_EVERY = 60.0  # seconds between purges of expired keys, per process
# the first segment of a path -> the case kind its answers are states of
KIND_OF_PATH = {"tickets": "ticket", "complaints": "complaint", "returns": "return", "contracts": "plan",
                "inspections": "inspection"}


class KeyReused(Exception):
    """The key was first used for a different request."""


class CaseReader(Protocol):
    def aggregate(self, kind: str, case_id: str, **kwargs: Any) -> Any: ...


@dataclass(frozen=True)
class Claim:
    scope: str
    status: int | None = None  # set when the first request's answer is known
    response: Any = None
    path: str | None = None  # the request's path, from its fingerprint

    @property
    def token(self) -> str:
        """Stable id derived from the key: a ticket id or an Update id."""
        return self.scope[:24]


def scope_of(staff_id: str, key: str) -> str:
    return hashlib.sha256(f"{staff_id}\x00{key}".encode("utf-8", "surrogatepass")).hexdigest()


def fingerprint(method: str, path: str, body: Any) -> str:
    """'METHOD PATH SHA-256': the request line in clear (ids only), its body as a digest."""
    canon = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)
    digest = hashlib.sha256(f"{method} {path}\n{canon}".encode("utf-8", "surrogatepass")).hexdigest()
    return f"{method} {path} {digest}"


def _same_request(first: str, fp: str) -> bool:
    # a key claimed before the fingerprint carried the request line holds the digest alone
    return first == fp or first == fp.rpartition(" ")[2]


def _stamp(t: datetime) -> str:
    return t.isoformat(timespec="microseconds")  # one width, so that text order is time order


def _now() -> datetime:
    return datetime.now(timezone.utc)


def _state_of(answer: Any) -> dict[str, Any] | None:
    """The case state an answer carries: the answer itself, or its `state`."""
    if not isinstance(answer, dict):
        return None
    return answer["state"] if isinstance(answer.get("state"), dict) else answer


def without_personal(answer: Any) -> tuple[Any, list[list[Any]]]:
    """`answer` with every personal field masked (a copy), and the paths masked within its
    case state (those a repeat reads back)."""
    state = _state_of(answer)
    paths: list[list[Any]] = []

    def walk(node: Any, path: list[Any] | None) -> Any:
        if isinstance(node, dict):
            if node is state:
                path = []
            out = {}
            for k, v in node.items():
                if k in PERSONAL_FIELDS and isinstance(v, str) and v not in ("", MASK):
                    out[k] = MASK
                    if path is not None:
                        paths.append([*path, k])
                else:
                    out[k] = walk(v, None if path is None else [*path, k])
            return out
        if isinstance(node, list):
            return [walk(v, None if path is None else [*path, i]) for i, v in enumerate(node)]
        return node

    return walk(answer, None), paths


def _put(node: Any, path: list[Any], value: Any) -> None:
    for step in path[:-1]:
        node = node[step]
    node[path[-1]] = value


def _get(node: Any, path: list[Any]) -> Any:
    for step in path:
        node = node[step]
    return node


class IdempotencyKeys:
    """The claimed keys (table `api_idempotency`, in the event store's database). `cases`
    reads a case's state at a version (the event store); when not given, the configured
    event store is opened the first time a repeat needs it."""

    def __init__(self, db: Database, cases: CaseReader | None = None, ttl: timedelta | None = None):
        self.db = db
        self.ttl = ttl if ttl is not None else duration(config.settings().idempotency_ttl)
        self._cases, self._own_cases = cases, None
        self._lock = threading.Lock()
        self._purged = float("-inf")
        db.execute(DDL)
        self._add_restore_column()

    def _add_restore_column(self) -> None:
        """Tables made before answers were kept masked lack `restore`: add it."""
        if self.db.kind == "postgres":
            self.db.execute("ALTER TABLE api_idempotency ADD COLUMN IF NOT EXISTS restore TEXT")
            return
        try:
            self.db.execute("ALTER TABLE api_idempotency ADD COLUMN restore TEXT")
        except Exception as e:  # noqa: BLE001 - sqlite3.OperationalError: duplicate column name
            if "duplicate column" not in str(e):
                raise

    def claim(self, staff_id: str, key: str, fp: str) -> Claim:
        """Claim `key` for the request `fp`; a repeat gets the first answer if known.
        Raises KeyReused when the key was first used for another request."""
        self.purge_if_due()
        scope = scope_of(staff_id, key)
        self.db.execute("INSERT INTO api_idempotency (scope, fingerprint, created_at) VALUES (?, ?, ?) "
                        "ON CONFLICT (scope) DO NOTHING", (scope, fp, _stamp(_now())))
        row = self.db.fetchone("SELECT fingerprint, status, response, restore FROM api_idempotency WHERE scope = ?",
                               (scope,))
        if row is None:  # released (or purged) meanwhile: claim again
            return self.claim(staff_id, key, fp)
        first_fp, status, response, restore = row
        if not _same_request(first_fp, fp):
            raise KeyReused
        answer = json.loads(response) if response is not None else None
        if answer is not None and restore:
            answer = self._restored(answer, json.loads(restore))
        return Claim(scope, status, answer, fp.split(" ")[1] if fp.count(" ") >= 2 else None)

    def complete(self, claim: Claim, status: int, response: Any) -> None:
        """Keep the answer, its personal fields masked, and where to read them back from."""
        kept, paths = without_personal(response)
        restore = None
        state = _state_of(response)
        kind = KIND_OF_PATH.get((claim.path or "").strip("/").split("/")[0])
        if paths and kind and state and state.get("case_id") and isinstance(state.get("version"), int):
            restore = json.dumps({"kind": kind, "case_id": state["case_id"], "version": state["version"],
                                  "paths": paths}, ensure_ascii=False)
        self.db.execute("UPDATE api_idempotency SET status = ?, response = ?, restore = ? WHERE scope = ?",
                        (status, json.dumps(kept, ensure_ascii=False), restore, claim.scope))

    def release(self, claim: Claim) -> None:
        """Forget a claim whose request was refused, so the key may carry a corrected one."""
        self.db.execute("DELETE FROM api_idempotency WHERE scope = ? AND status IS NULL", (claim.scope,))

    # --- the personal fields, read back for a repeat -----------------------------------------

    def _reader(self) -> CaseReader:
        with self._lock:
            if self._cases is None:  # the API's own event store, when none was given
                self._own_cases = self._cases = open_store(self.db.kind, POSTGRES_POOL_SIZE="1",
                                                           POSTGRES_MAX_OVERFLOW="1")
            return self._cases

    def _restored(self, answer: Any, restore: dict[str, Any]) -> Any:
        """The kept answer with its masked fields as the case held them at the answer's
        version; left masked (and logged) if the case cannot be read."""
        try:
            case = self._reader().aggregate(restore["kind"], restore["case_id"], version=restore["version"])
            state = case.state.model_dump(mode="json")
            target = _state_of(answer)
            for path in restore["paths"]:
                _put(target, path, _get(state, path))
        except Exception:  # noqa: BLE001 - the repeat still gets the first answer, masked
            log.exception("%s %s: the masked fields of a kept answer could not be read back",
                          restore.get("kind"), restore.get("case_id"))
        return answer

    # --- expiry ----------------------------------------------------------------------------------

    def purge(self, now: datetime | None = None) -> int:
        """Delete the keys claimed more than the TTL ago; returns how many."""
        cutoff = _stamp((now or _now()) - self.ttl)
        return self.db.execute("DELETE FROM api_idempotency WHERE created_at < ?", (cutoff,))

    def purge_if_due(self) -> None:
        if time.monotonic() - self._purged < PURGE_EVERY:
            return
        self._purged = time.monotonic()
        try:
            n = self.purge()
        except Exception:  # noqa: BLE001 - a failed purge must not fail the request; the next one retries
            log.exception("expired Idempotency-Keys could not be purged")
            return
        if n:
            log.info("purged %d Idempotency-Key(s) older than %s", n, self.ttl)

    def close(self) -> None:
        if self._own_cases is not None:
            self._own_cases.close()
            self._own_cases = self._cases = None
