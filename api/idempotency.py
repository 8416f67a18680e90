"""Idempotency-Key: a client that timed out may send the same request again.

The key (scoped to the caller) is claimed with a fingerprint of the request; the
workflow id or Update id is derived from it, so Temporal itself deduplicates a
repeat that races the first, and the recording activity appends a command id once.
The first answer is kept here too, so a repeat after the ticket's workflow has
closed still gets it. The same key with a different request is refused."""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Annotated, Any

from fastapi import Header

from api.db import Database

IdempotencyKey = Annotated[str | None, Header(
    alias="Idempotency-Key", min_length=1, max_length=200,
    description="retry safely: the same key and body answer the first answer and record nothing new")]

DDL = ("CREATE TABLE IF NOT EXISTS api_idempotency (scope TEXT PRIMARY KEY, fingerprint TEXT NOT NULL, "
       "status INTEGER, response TEXT, created_at TEXT NOT NULL)")


class KeyReused(Exception):
    """The key was first used for a different request."""


@dataclass(frozen=True)
class Claim:
    scope: str
    status: int | None = None  # set when the first request's answer is known
    response: Any = None

    @property
    def token(self) -> str:
        """Stable id derived from the key: a ticket id or an Update id."""
        return self.scope[:24]


def scope_of(staff_id: str, key: str) -> str:
    return hashlib.sha256(f"{staff_id}\x00{key}".encode("utf-8", "surrogatepass")).hexdigest()


def fingerprint(method: str, path: str, body: Any) -> str:
    canon = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)
    return hashlib.sha256(f"{method} {path}\n{canon}".encode("utf-8", "surrogatepass")).hexdigest()


class IdempotencyKeys:
    def __init__(self, db: Database):
        self.db = db
        db.execute(DDL)

    def claim(self, staff_id: str, key: str, fp: str) -> Claim:
        """Claim `key` for the request `fp`; a repeat gets the first answer if known.
        Raises KeyReused when the key was first used for another request."""
        scope = scope_of(staff_id, key)
        self.db.execute("INSERT INTO api_idempotency (scope, fingerprint, created_at) VALUES (?, ?, ?) "
                        "ON CONFLICT (scope) DO NOTHING", (scope, fp, datetime.now(timezone.utc).isoformat()))
        row = self.db.fetchone("SELECT fingerprint, status, response FROM api_idempotency WHERE scope = ?", (scope,))
        if row is None:  # released meanwhile by a failed first attempt: claim again
            return self.claim(staff_id, key, fp)
        first_fp, status, response = row
        if first_fp != fp:
            raise KeyReused
        return Claim(scope, status, json.loads(response) if response is not None else None)

    def complete(self, claim: Claim, status: int, response: Any) -> None:
        self.db.execute("UPDATE api_idempotency SET status = ?, response = ? WHERE scope = ?",
                        (status, json.dumps(response, ensure_ascii=False), claim.scope))

    def release(self, claim: Claim) -> None:
        """Forget a claim whose request was refused, so the key may carry a corrected one."""
        self.db.execute("DELETE FROM api_idempotency WHERE scope = ? AND status IS NULL", (claim.scope,))
