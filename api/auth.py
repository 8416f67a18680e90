"""Bearer tokens: `weibao token STAFF_ID [--days N]` issues one and prints it once; only its
SHA-256 is stored (table `api_tokens` in the event store's database), so a leaked
database yields no usable token.

Every token expires (30 days unless `--days` says otherwise) and records when it was last
used (to the minute: a busy token is not written on every request). A token is known by
its id, the first 12 hex digits of its SHA-256 (printed when it is issued, computable from
the token, useless to an attacker): `weibao token --list` shows each token's id, staff,
creation, expiry, last use and revocation; `weibao token --revoke-token ID` revokes one,
`weibao token --revoke STAFF_ID` every token of that person.

A table made before tokens expired lacks `expires_at` and `last_used_at`: they are added,
and its tokens keep working until DEFAULT_DAYS after that upgrade."""
from __future__ import annotations

import hashlib
import secrets
import threading
import time
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

from api.db import Database
from api.errors import unauthorized

PREFIX = "wb_"
DEFAULT_DAYS = 30
ID_LENGTH = 12  # hex digits of the token's SHA-256 that name it
TOUCH_EVERY = 60.0  # seconds: last use is written at most this often per token and process
DDL = ("CREATE TABLE IF NOT EXISTS api_tokens (token_hash TEXT PRIMARY KEY, staff_id TEXT NOT NULL, "
       "issued_at TEXT NOT NULL, revoked_at TEXT, expires_at TEXT, last_used_at TEXT)")
ADDED_COLUMNS = ("expires_at", "last_used_at")  # columns tables made before expiry lack


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()


def token_id(token: str) -> str:
    """The id a token is listed and revoked by."""
    return token_hash(token)[:ID_LENGTH]


class UnknownToken(LookupError):
    """No token, or more than one, has that id; the message says which."""


@dataclass(frozen=True)
class TokenInfo:
    id: str
    staff_id: str
    created: datetime
    expires: datetime | None
    last_used: datetime | None
    revoked: datetime | None

    def status(self, now: datetime) -> str:
        if self.revoked is not None:
            return "revoked"
        return "expired" if self.expires is not None and self.expires <= now else "live"


class Tokens:
    def __init__(self, db: Database):
        self.db = db
        self._touched: dict[str, float] = {}
        self._lock = threading.Lock()
        db.execute(DDL)
        self._add_missing_columns()

    def _add_missing_columns(self) -> None:
        for column in ADDED_COLUMNS:
            if self.db.kind == "postgres":
                self.db.execute(f"ALTER TABLE api_tokens ADD COLUMN IF NOT EXISTS {column} TEXT")
                continue
            try:
                self.db.execute(f"ALTER TABLE api_tokens ADD COLUMN {column} TEXT")
            except Exception as e:  # noqa: BLE001 - sqlite3.OperationalError: duplicate column name
                if "duplicate column" not in str(e):
                    raise
        # tokens issued before expiry existed keep working for a token's lifetime from now
        self.db.execute("UPDATE api_tokens SET expires_at = ? WHERE expires_at IS NULL",
                        (_stamp(_now() + timedelta(days=DEFAULT_DAYS)),))

    def issue(self, staff_id: str, days: int = DEFAULT_DAYS) -> str:
        """A new token for `staff_id`, valid for `days` (at least 1)."""
        if days < 1:
            raise ValueError("a token is valid for at least 1 day")
        token = PREFIX + secrets.token_urlsafe(32)
        now = _now()
        self.db.execute("INSERT INTO api_tokens (token_hash, staff_id, issued_at, expires_at) VALUES (?, ?, ?, ?)",
                        (token_hash(token), staff_id, _stamp(now), _stamp(now + timedelta(days=days))))
        return token

    def revoke(self, staff_id: str) -> int:
        """Revoke all of `staff_id`'s live tokens; returns how many."""
        return self.db.execute("UPDATE api_tokens SET revoked_at = ? WHERE staff_id = ? AND revoked_at IS NULL",
                               (_stamp(_now()), staff_id))

    def revoke_token(self, id_or_token: str) -> TokenInfo:
        """Revoke one token, named by its id (or a unique start of it, 8 hex digits at
        least) or given whole; returns it as it now stands. UnknownToken if none or several
        match."""
        info = self.find(id_or_token)
        self.db.execute("UPDATE api_tokens SET revoked_at = ? WHERE token_hash LIKE ? AND revoked_at IS NULL",
                        (_stamp(_now()), info.id + "%"))
        return self.find(info.id)

    def find(self, id_or_token: str) -> TokenInfo:
        text = id_or_token.strip()
        prefix = token_hash(text) if text.startswith(PREFIX) else text.lower()
        if len(prefix) < 8 or any(c not in "0123456789abcdef" for c in prefix):
            raise UnknownToken(f"{id_or_token!r} is not a token id (8 to 64 hex digits, as `weibao token --list` "
                               "shows) nor a token")
        rows = self.db.fetchall(f"SELECT {_COLUMNS} FROM api_tokens WHERE token_hash LIKE ?", (prefix + "%",))
        if not rows:
            raise UnknownToken(f"no token has the id {prefix}")
        if len(rows) > 1:
            raise UnknownToken(f"{len(rows)} tokens have ids starting {prefix}: give more of the id")
        return _info(rows[0])

    def list(self, staff_id: str | None = None) -> list[TokenInfo]:
        """Every token (of `staff_id`), oldest first."""
        where, params = ("WHERE staff_id = ?", (staff_id,)) if staff_id else ("", ())
        rows = self.db.fetchall(f"SELECT {_COLUMNS} FROM api_tokens {where} ORDER BY issued_at, token_hash", params)
        return [_info(r) for r in rows]

    def staff_of(self, token: str) -> str | None:
        """The staff id a live token belongs to, or None; an expired token is refused
        (401) saying so. Records the use."""
        h = token_hash(token)
        row = self.db.fetchone("SELECT staff_id, expires_at FROM api_tokens WHERE token_hash = ? AND revoked_at IS NULL",
                               (h,))
        if row is None:
            return None
        staff_id, expires = row
        now = _now()
        if expires is not None and _parse(expires) <= now:
            raise unauthorized(f"the token {h[:ID_LENGTH]} expired at {expires[:19]}Z: ask for a new one "
                               "(weibao token STAFF_ID)")
        self._touch(h, now)
        return staff_id

    def _touch(self, h: str, now: datetime) -> None:
        with self._lock:
            due = time.monotonic() - self._touched.get(h, float("-inf")) >= TOUCH_EVERY
            if due:
                self._touched[h] = time.monotonic()
        if due:
            self.db.execute("UPDATE api_tokens SET last_used_at = ? WHERE token_hash = ?", (_stamp(now), h))


_COLUMNS = "token_hash, staff_id, issued_at, expires_at, last_used_at, revoked_at"


def _info(row: tuple) -> TokenInfo:
    h, staff_id, issued, expires, last_used, revoked = row
    return TokenInfo(id=h[:ID_LENGTH], staff_id=staff_id, created=_parse(issued), expires=_parse(expires),
                     last_used=_parse(last_used), revoked=_parse(revoked))


def _now() -> datetime:
    return datetime.now(timezone.utc)


def _stamp(t: datetime) -> str:
    return t.isoformat(timespec="microseconds")


def _parse(text: str | None) -> datetime | None:
    if text is None:
        return None
    t = datetime.fromisoformat(text)
    return t if t.tzinfo else t.replace(tzinfo=timezone.utc)
