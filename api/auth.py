"""Bearer tokens: `weibao token STAFF_ID` issues one and prints it once; only its
SHA-256 is stored (table `api_tokens` in the event store's database), so a leaked
database yields no usable token. `weibao token --revoke STAFF_ID` revokes every
token of that person."""
from __future__ import annotations

import hashlib
import secrets
from datetime import datetime, timezone

from api.db import Database

PREFIX = "wb_"
DDL = ("CREATE TABLE IF NOT EXISTS api_tokens (token_hash TEXT PRIMARY KEY, staff_id TEXT NOT NULL, "
       "issued_at TEXT NOT NULL, revoked_at TEXT)")


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()


class Tokens:
    def __init__(self, db: Database):
        self.db = db
        db.execute(DDL)

    def issue(self, staff_id: str) -> str:
        token = PREFIX + secrets.token_urlsafe(32)
        self.db.execute("INSERT INTO api_tokens (token_hash, staff_id, issued_at) VALUES (?, ?, ?)",
                        (token_hash(token), staff_id, _now()))
        return token

    def revoke(self, staff_id: str) -> int:
        """Revoke all of `staff_id`'s live tokens; returns how many."""
        return self.db.execute("UPDATE api_tokens SET revoked_at = ? WHERE staff_id = ? AND revoked_at IS NULL",
                               (_now(), staff_id))

    def staff_of(self, token: str) -> str | None:
        """The staff id a live token belongs to, or None."""
        row = self.db.fetchone("SELECT staff_id FROM api_tokens WHERE token_hash = ? AND revoked_at IS NULL",
                               (token_hash(token),))
        return row[0] if row else None


def _now() -> str:
    return datetime.now(timezone.utc).isoformat()
