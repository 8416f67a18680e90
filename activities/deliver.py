"""Sending one warning or escalation to one person on one channel: email, the WeCom or
DingTalk group robot of their department (mentioning them), or the company's JSON webhook.
`send` raises nothing for a delivery that does not happen: it answers an `Outcome` —
sent, failed (worth retrying) or undeliverable (no address, nothing configured, refused
as malformed: retrying cannot help) — with the reason, free of keys, tokens, passwords
and the person's contacts. The caller (activities/delivery.py) retries and records.

Which library does what, and why:

- **Email: apprise** (`mailto://` for WEIBAO_SMTP_SECURITY=none, `mailtos://?mode=starttls`
  or `mailtos://?mode=ssl` for starttls and tls). apprise does everything email needs;
  its per-call result carries the warning it logged, which becomes the reason.
- **WeCom, DingTalk and the webhook: a few lines of httpx.** apprise's `wecombot://` posts
  `{"msgtype":"text","text":{"content":…}}` without `mentioned_list`/`mentioned_mobile_list`,
  and `dingtalk://` takes only mobile numbers to @ (no `atUserIds`); both post to the
  public hosts only (no base URL to point at a test server), and both count any HTTP 200
  as sent although these robots answer a refusal with 200 and `{"errcode": …}`. Its
  `json://` cannot sign the body: the webhook needs `X-Weibao-Signature: sha256=<hex
  HMAC-SHA256 of the raw body>`, which must be computed over the exact bytes sent.

Robot payloads as documented: WeCom `POST {WEIBAO_WECOM_URL}/cgi-bin/webhook/send?key=KEY`
with `{"msgtype":"text","text":{"content","mentioned_list":[userid],"mentioned_mobile_list":
[mobile]}}`; DingTalk `POST {WEIBAO_DINGTALK_URL}/robot/send?access_token=TOKEN` (and, with
a signing secret, `&timestamp=<ms>&sign=<urlencode(base64(HMAC-SHA256(secret,
"{timestamp}\\n{secret}")))>`) with `{"msgtype":"text","text":{"content"},"at":{"atUserIds",
"atMobiles","isAtAll":false}}`. Mentions travel in those fields only, never in the text.
Synchronous (apprise is): run it on a thread (a plain `def` activity)."""
from __future__ import annotations

import base64
import copy
import functools
import hashlib
import hmac
import json
import os
import ssl
import threading
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Literal, Mapping
from urllib.parse import quote, urlencode

import apprise
import httpx
from apprise.plugins.email import smtp as apprise_smtp

from activities.settings import Settings
from domain.org import ADDRESS_OF, CHANNELS, Staff

Status = Literal["sent", "failed", "undeliverable"]
ROBOT_TEXT_LIMIT = 2048  # bytes of a WeCom robot's text content (DingTalk allows more)
RETRY_STATUSES = frozenset({408, 425, 429})  # 4xx answers worth another attempt


@dataclass(frozen=True)
class Outcome:
    """What one attempt on one channel came to: `sent`; `failed` (a server down, a timeout,
    a robot's refusal: worth another attempt); `undeliverable` (no address, the channel not
    configured, a request refused as malformed: another attempt cannot help). `reason`
    says why it was not sent, with no secret and no contact in it."""

    channel: str
    status: Status
    reason: str = ""

    @property
    def sent(self) -> bool:
        return self.status == "sent"

    @property
    def permanent(self) -> bool:
        return self.status == "undeliverable"


def channels_for(staff: Staff, settings: Settings) -> list[str]:
    """The channels to reach `staff` on, in their order of preference: only those
    configured here and for which they have an address."""
    return [c for c in staff.channels if _unavailable(c, staff, settings) is None]


def send(channel: str, staff: Staff | None, title: str, body: str, settings: Settings, *,
         data: Mapping[str, Any] | None = None) -> Outcome:
    """Send `title` and `body` to `staff` on `channel`; never raises for a failed delivery.
    `data`: extra JSON fields for the webhook (the notice id, the case), ignored elsewhere."""
    if staff is None:
        return Outcome(channel, "undeliverable", "the target is not on the staff of the org file")
    if channel not in CHANNELS:
        return Outcome(channel, "undeliverable", f"unknown channel {channel!r}; channels are {', '.join(CHANNELS)}")
    missing = _unavailable(channel, staff, settings)
    if missing:
        return Outcome(channel, "undeliverable", missing)
    senders = {"email": _email, "wecom": _wecom, "dingtalk": _dingtalk, "webhook": _webhook}
    try:
        outcome = senders[channel](staff, title, body, settings, data or {})
    except (httpx.HTTPError, httpx.InvalidURL, OSError) as e:  # a delivery problem is an outcome
        outcome = Outcome(channel, "failed", f"{type(e).__name__}: {e}")
    return Outcome(outcome.channel, outcome.status, _redact(outcome.reason, staff, settings))


def _unavailable(channel: str, staff: Staff, settings: Settings) -> str | None:
    """Why `staff` cannot be reached on `channel` here (None: they can)."""
    field = ADDRESS_OF.get(channel)
    if field and not getattr(staff, field):
        return f"{staff.id} has no {field} in the org file"
    if channel == "email" and not settings.smtp_host:
        return "email is not configured (WEIBAO_SMTP_HOST)"
    if channel in ("wecom", "dingtalk") and settings.robot(channel, staff.department) is None:
        variable = "WEIBAO_WECOM_ROBOTS" if channel == "wecom" else "WEIBAO_DINGTALK_ROBOTS"
        return f"no {channel} robot for department {staff.department!r} ({variable})"
    if channel == "webhook" and not settings.webhook_url:
        return "the webhook is not configured (WEIBAO_WEBHOOK_URL)"
    return None


# --- TLS contexts made once ----------------------------------------------------------------
# Making a default TLS context loads every CA certificate of the system (or certifi's),
# 20-40 ms of CPU. apprise makes one for every mail (even over plain SMTP) and an
# `httpx.Client` one for every robot post; in bench/escalation_lag.py's burst of 600 mails
# that was 27 % of the worker's CPU, taken from the alarms and the deliveries behind them.

class _ReusedDefaultContext:
    """What apprise's SMTP module sees as `ssl`: the module itself, except that
    `create_default_context()` answers one context per thread, made once and put back to
    the defaults (the certificate and the host name verified) before each use, because
    apprise turns both off on it for a `verify=no` URL. Per thread, so no mail's connection
    sees another's settings change under it, and per set of trusted certificates
    (`SSL_CERT_FILE`, `SSL_CERT_DIR`)."""

    def __init__(self) -> None:
        self._local = threading.local()

    def __getattr__(self, name: str) -> Any:
        return getattr(ssl, name)

    def create_default_context(self, *args: Any, **kwargs: Any) -> ssl.SSLContext:
        if args or kwargs:
            return ssl.create_default_context(*args, **kwargs)
        made, trust = self._local.__dict__.setdefault("made", {}), _trust()
        context = made.get(trust)
        if context is None:
            context = made[trust] = ssl.create_default_context()
        context.verify_mode = ssl.CERT_REQUIRED
        context.check_hostname = True
        return context


if apprise_smtp.ssl is ssl:  # once per process; an apprise whose SMTP module no longer has `ssl` fails here
    apprise_smtp.ssl = _ReusedDefaultContext()


def _trust() -> tuple[str | None, str | None]:
    """Where a default context takes the certificates it trusts from, besides its defaults."""
    return os.environ.get("SSL_CERT_FILE"), os.environ.get("SSL_CERT_DIR")


def _tls() -> ssl.SSLContext:
    """The robots' and the webhook's TLS context, as httpx makes it by default, made once
    per set of trusted certificates (a context is safe to share between threads as long as
    nobody changes it)."""
    return _tls_for(_trust())


@functools.cache
def _tls_for(trust: tuple[str | None, str | None]) -> ssl.SSLContext:
    return httpx.create_ssl_context()  # reads SSL_CERT_FILE / SSL_CERT_DIR itself; `trust` keys the cache


# --- email: apprise -------------------------------------------------------------------------

def smtp_url(settings: Settings, to: str) -> str:
    """The apprise URL that sends to `to` through the configured SMTP server."""
    scheme = "mailto" if settings.smtp_security == "none" else "mailtos"
    login = ""
    if settings.smtp_user:
        login = quote(settings.smtp_user, safe="")
        if settings.smtp_password is not None:
            login += ":" + quote(settings.smtp_password.get_secret_value(), safe="")
        login += "@"
    query = {"smtp": settings.smtp_host, "from": settings.smtp_from, "to": to, "format": "text",
             "cto": str(settings.notify_timeout), "rto": str(settings.notify_timeout)}
    if settings.smtp_security != "none":
        query["mode"] = "starttls" if settings.smtp_security == "starttls" else "ssl"
    host = f"[{settings.smtp_host}]" if ":" in (settings.smtp_host or "") else settings.smtp_host
    return f"{scheme}://{login}{host}:{settings.smtp_port_or_default()}/?{urlencode(query)}"


@functools.lru_cache(maxsize=1024)
def _smtp_tokens(url: str) -> dict[str, Any] | None:
    """apprise's tokens for an SMTP URL (what `Apprise.add` takes instead of the URL), parsed
    once per URL: parsing it and masking it for apprise's log took 0.75 ms of the 4.7 ms of
    CPU a mail cost (bench/mail_send.py), and the relay sends a burst's first rounds one
    after another (relay.py)."""
    return apprise.plugins.url_to_dict(url, secure_logging=True)


def _email(staff: Staff, title: str, body: str, settings: Settings, _data: Mapping) -> Outcome:
    asset = apprise.AppriseAsset(async_mode=False, storage_mode="memory", result_log_memory_size=65536)
    notifier = apprise.Apprise(asset=asset)
    tokens = _smtp_tokens(smtp_url(settings, staff.email or ""))
    if tokens is None or not notifier.add(copy.deepcopy(tokens)):  # a copy: apprise adds to what it is given
        return Outcome("email", "undeliverable", "apprise does not accept the SMTP settings (WEIBAO_SMTP_*)")
    result = notifier.notify(title=title, body=body, body_format=apprise.NotifyFormat.TEXT)
    if result:
        return Outcome("email", "sent")
    said = [log.message for r in getattr(result, "results", ()) for a in r.attempts for log in a.logs
            if log.level in ("WARNING", "ERROR", "CRITICAL")]
    where = f"{settings.smtp_host}:{settings.smtp_port_or_default()}"
    return Outcome("email", "failed", f"SMTP {where}: " + ("; ".join(said) or "the server did not take the mail"))


# --- WeCom and DingTalk group robots, the webhook: httpx ---------------------------------------

def _wecom(staff: Staff, title: str, body: str, settings: Settings, _data: Mapping) -> Outcome:
    key, _ = settings.robot("wecom", staff.department)
    text: dict[str, Any] = {"content": _robot_text(title, body), "mentioned_list": [staff.wecom_id]}
    if staff.mobile:
        text["mentioned_mobile_list"] = [staff.mobile]
    return _post_robot("wecom", f"{settings.wecom_url}/cgi-bin/webhook/send", {"key": key},
                       {"msgtype": "text", "text": text}, settings)


def dingtalk_sign(secret: str, timestamp_ms: int) -> str:
    """DingTalk's signature of a robot call: base64(HMAC-SHA256(secret, "{timestamp}\\n{secret}")),
    URL-encoded as it goes into the query."""
    digest = hmac.new(secret.encode(), f"{timestamp_ms}\n{secret}".encode(), hashlib.sha256).digest()
    return quote(base64.b64encode(digest).decode(), safe="")


def _dingtalk(staff: Staff, title: str, body: str, settings: Settings, _data: Mapping) -> Outcome:
    token, secret = settings.robot("dingtalk", staff.department)
    query = f"access_token={quote(token, safe='')}"
    if secret:
        now = int(time.time() * 1000)
        query += f"&timestamp={now}&sign={dingtalk_sign(secret, now)}"
    at = {"atUserIds": [staff.dingtalk_id], "atMobiles": [staff.mobile] if staff.mobile else [], "isAtAll": False}
    payload = {"msgtype": "text", "text": {"content": _robot_text(title, body)}, "at": at}
    return _post_robot("dingtalk", f"{settings.dingtalk_url}/robot/send?{query}", None, payload, settings)


def webhook_signature(secret: str, raw_body: bytes) -> str:
    """The `X-Weibao-Signature` header of a webhook call: sha256=<hex HMAC-SHA256 of the raw body>."""
    return "sha256=" + hmac.new(secret.encode(), raw_body, hashlib.sha256).hexdigest()


def _webhook(staff: Staff, title: str, body: str, settings: Settings, data: Mapping) -> Outcome:
    payload = {"to": staff.id, "to_name": staff.name, "department": staff.department, "title": title,
               "body": body, "sent_at": datetime.now(timezone.utc).isoformat(), "data": dict(data)}
    raw = json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode()
    headers = {"Content-Type": "application/json; charset=utf-8",
               "X-Weibao-Signature": webhook_signature(settings.webhook_secret.get_secret_value(), raw)}
    with httpx.Client(timeout=settings.notify_timeout, verify=_tls()) as client:
        answer = client.post(settings.webhook_url, content=raw, headers=headers)
    if answer.is_success:
        return Outcome("webhook", "sent")
    return _http_refusal("webhook", answer)


def _robot_text(title: str, body: str) -> str:
    """Title and body in one text, cut to what a robot takes (at a character boundary)."""
    text = f"{title}\n\n{body}"
    raw = text.encode()
    if len(raw) <= ROBOT_TEXT_LIMIT:
        return text
    return raw[:ROBOT_TEXT_LIMIT - 3].decode(errors="ignore") + "…"


def _post_robot(channel: str, url: str, params: dict | None, payload: dict, settings: Settings) -> Outcome:
    raw = json.dumps(payload, ensure_ascii=False).encode()
    with httpx.Client(timeout=settings.notify_timeout, verify=_tls()) as client:
        answer = client.post(url, params=params, content=raw,
                             headers={"Content-Type": "application/json; charset=utf-8"})
    if not answer.is_success:
        return _http_refusal(channel, answer)
    try:  # both robots answer HTTP 200 and say in the body whether they took it
        said = answer.json()
        code, message = int(said.get("errcode", 0)), str(said.get("errmsg", ""))
    except (ValueError, AttributeError, TypeError):
        return Outcome(channel, "failed", f"the {channel} robot answered something that is not its JSON")
    if code != 0:
        return Outcome(channel, "failed", f"the {channel} robot refused it: errcode {code}: {message[:200]}")
    return Outcome(channel, "sent")


def _http_refusal(channel: str, answer: httpx.Response) -> Outcome:
    status = "failed" if answer.status_code >= 500 or answer.status_code in RETRY_STATUSES \
        or answer.status_code < 400 else "undeliverable"
    return Outcome(channel, status, f"HTTP {answer.status_code} {answer.reason_phrase}".strip())


def _redact(reason: str, staff: Staff, settings: Settings) -> str:
    """`reason` with every key, token, password and contact of this send masked."""
    hidden = [staff.email, staff.mobile, staff.wecom_id, staff.dingtalk_id, settings.webhook_url,
              settings.smtp_password.get_secret_value() if settings.smtp_password else None,
              settings.webhook_secret.get_secret_value() if settings.webhook_secret else None]
    for channel in ("wecom", "dingtalk"):
        robot = settings.robot(channel, staff.department)
        hidden += list(robot or ())
    for value in sorted({h for h in hidden if h and len(h) >= 4}, key=len, reverse=True):
        reason = reason.replace(value, "***").replace(quote(value, safe=""), "***")
    return reason[:500]
