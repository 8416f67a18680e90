"""Signing in to the console, its sessions and CSRF protection.

`weibao login-link STAFF_ID` prints a one-time link signed with the process's secret
key (itsdangerous, `activities.config.secret_key()`, as the acknowledgement links are)
that expires after WEIBAO_LOGIN_LINK_TTL (15 minutes by default). Opening it shows a
"sign in" button; pressing it uses the link up (its nonce is recorded in
`console_link_uses`, so a second use is refused) and opens a session: a random id in an
HttpOnly, SameSite=Strict cookie, of which only the SHA-256 is stored
(`console_sessions`), expiring after WEIBAO_CONSOLE_SESSION_TTL (12 hours). Signing out
ends it. The GET does not use the link up, so a chat app's link preview cannot burn it.

Every form of a session carries its CSRF token (a hidden field, or the X-CSRF-Token
header htmx sends); a POST without the session's token is refused. The customer's
sign-off link (`sign_token`) is a one-time link of the same kind for a ticket."""
from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any

from itsdangerous import BadSignature, SignatureExpired, URLSafeTimedSerializer

from activities import config
from activities.settings import duration
from api.db import Database

COOKIE = "weibao_session"
CSRF_FIELD = "csrf"
CSRF_HEADER = "X-CSRF-Token"

DDL = (
    "CREATE TABLE IF NOT EXISTS console_sessions (session_hash TEXT PRIMARY KEY, staff_id TEXT NOT NULL, "
    "csrf TEXT NOT NULL, created_at TEXT NOT NULL, expires_at TEXT NOT NULL, ended_at TEXT)",
    "CREATE TABLE IF NOT EXISTS console_link_uses (nonce TEXT PRIMARY KEY, purpose TEXT NOT NULL, "
    "subject TEXT NOT NULL, used_at TEXT NOT NULL)",
)


def login_link_ttl() -> timedelta:
    return duration(config.settings().login_link_ttl)  # WEIBAO_LOGIN_LINK_TTL


def session_ttl() -> timedelta:
    return duration(config.settings().console_session_ttl)  # WEIBAO_CONSOLE_SESSION_TTL


def sign_link_ttl() -> timedelta:
    return duration(config.settings().signoff_link_ttl)  # WEIBAO_SIGNOFF_LINK_TTL


class BadLink(ValueError):
    """A link that is forged, damaged, expired or already used; the message says which."""


def _serializer(purpose: str) -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(config.secret_key(), salt=f"weibao-console-{purpose}")


def _read(purpose: str, token: str, max_age: timedelta, what: str) -> dict[str, Any]:
    try:
        return _serializer(purpose).loads(token, max_age=int(max_age.total_seconds()))
    except SignatureExpired:
        raise BadLink(f"the {what} has expired; ask for a new one") from None
    except BadSignature:
        raise BadLink(f"the {what} is not valid") from None


def login_token(staff_id: str) -> str:
    return _serializer("signin").dumps({"s": staff_id, "n": secrets.token_urlsafe(12)})


def read_login_token(token: str) -> tuple[str, str]:
    """(staff id, nonce) of a valid sign-in link; BadLink otherwise."""
    payload = _read("signin", token, login_link_ttl(), "sign-in link")
    return payload["s"], payload["n"]


def login_link(staff_id: str) -> str:
    return f"{config.public_url()}/console/signin/{login_token(staff_id)}"


def sign_token(ticket_id: str, issued_by: str) -> str:
    """The customer's one-time sign-off link token for a ticket, issued by the engineer (or
    supervisor) whose right to take the step the sign-off is checked against."""
    return _serializer("signoff").dumps({"t": ticket_id, "b": issued_by, "n": secrets.token_urlsafe(12)})


def read_sign_token(token: str) -> tuple[str, str, str]:
    """(ticket id, issued by, nonce) of a valid sign-off link; BadLink otherwise."""
    payload = _read("signoff", token, sign_link_ttl(), "sign-off link")
    return payload["t"], payload["b"], payload["n"]


def link_csrf(token: str) -> str:
    """The CSRF token of a page opened by a one-time link (no session yet): bound to the link."""
    return hmac.new(config.secret_key().encode(), f"csrf:{token}".encode(), hashlib.sha256).hexdigest()


def link_csrf_ok(token: str, sent: str | None) -> bool:
    return bool(sent) and hmac.compare_digest(link_csrf(token), sent)


@dataclass(frozen=True)
class Session:
    staff_id: str
    csrf: str
    expires_at: datetime


def _hash(value: str) -> str:
    return hashlib.sha256(value.encode("utf-8", "surrogatepass")).hexdigest()


def _now() -> datetime:
    return datetime.now(timezone.utc)


class Sessions:
    """The console's sessions and used links, in the API's database (api.db)."""

    def __init__(self, db: Database):
        self.db = db
        for statement in DDL:
            db.execute(statement)

    def use_link(self, nonce: str, purpose: str, subject: str) -> bool:
        """Record a one-time link as used; False when it was used before."""
        return self.db.execute("INSERT INTO console_link_uses (nonce, purpose, subject, used_at) VALUES (?, ?, ?, ?) "
                               "ON CONFLICT (nonce) DO NOTHING", (nonce, purpose, subject, _now().isoformat())) == 1

    def link_used(self, nonce: str) -> bool:
        return self.db.fetchone("SELECT 1 FROM console_link_uses WHERE nonce = ?", (nonce,)) is not None

    def release_link(self, nonce: str) -> None:
        """Forget a use whose step was refused, so the link may be tried again."""
        self.db.execute("DELETE FROM console_link_uses WHERE nonce = ?", (nonce,))

    def open(self, staff_id: str) -> tuple[str, Session]:
        """A new session: (the cookie's value, the session)."""
        sid, csrf, now = secrets.token_urlsafe(32), secrets.token_urlsafe(24), _now()
        expires = now + session_ttl()
        self.db.execute("INSERT INTO console_sessions (session_hash, staff_id, csrf, created_at, expires_at) "
                        "VALUES (?, ?, ?, ?, ?)", (_hash(sid), staff_id, csrf, now.isoformat(), expires.isoformat()))
        return sid, Session(staff_id, csrf, expires)

    def get(self, sid: str | None) -> Session | None:
        """The live session of a cookie's value, or None (unknown, ended or expired)."""
        if not sid or len(sid) > 200:
            return None
        row = self.db.fetchone("SELECT staff_id, csrf, expires_at FROM console_sessions "
                               "WHERE session_hash = ? AND ended_at IS NULL", (_hash(sid),))
        if row is None:
            return None
        expires = datetime.fromisoformat(row[2])
        if expires <= _now():
            return None
        return Session(row[0], row[1], expires)

    def end(self, sid: str | None) -> None:
        if sid:
            self.db.execute("UPDATE console_sessions SET ended_at = ? WHERE session_hash = ? AND ended_at IS NULL",
                            (_now().isoformat(), _hash(sid)))


def csrf_ok(session: Session, sent: str | None) -> bool:
    return bool(sent) and hmac.compare_digest(session.csrf, sent)
