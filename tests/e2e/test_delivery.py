"""Sending a warning or an escalation (activities/deliver.py) against real parts: a real
SMTP server (aiosmtpd) and a real HTTP server standing in for the WeCom and DingTalk
robot APIs and the company's webhook, all on 127.0.0.1. A channel that is down, or that
refuses, is an outcome with its reason, never an exception; a person without an address
for a channel is skipped. Also the notification settings' checks."""
from __future__ import annotations

import base64
import email
import email.policy
import hashlib
import hmac
import json
import os
import shutil
import socket
import ssl
import subprocess
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

from activities import config, settings
from activities.deliver import Outcome, channels_for, send
from activities.settings import PREFIXES, ConfigError
from domain.notices import message_for

TICKET = {"case_id": "T-20260302-7", "customer": "昆明市第二人民医院", "site": "Kunming",
          "contact_phone": "0871-6300000", "confidential_notes": "HIS admin password Hx!2026"}
ESCALATED = {"goal": "on_site", "deadline": "2026-03-02T05:00:00+00:00", "responsible": "E001", "level": 1,
             "reason": "on_site deadline 2026-03-02T05:00:00+00:00 missed"}
WECOM_KEY, DINGTALK_TOKEN, DINGTALK_SECRET = "KEY-after-sales-123", "tok0project9", "SECabc123def456"
WEBHOOK_SECRET = "shared-webhook-secret"


def free_port() -> int:
    """A port on 127.0.0.1 that nothing listens on (a channel that is down)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(autouse=True)
def clean_env(tmp_path, monkeypatch):
    """No WEIBAO_*, POSTGRES_* or TEMPORAL_* from the caller: only what a test configures."""
    for name in list(os.environ):
        if name.upper().startswith(PREFIXES):
            monkeypatch.delenv(name)
    monkeypatch.setenv("HOME", str(tmp_path))


@pytest.fixture
def configure(monkeypatch):
    def _configure(**variables: str) -> settings.Settings:
        for name, value in variables.items():
            monkeypatch.setenv(f"WEIBAO_{name.upper()}", value)
        return settings.load()

    return _configure


@pytest.fixture
def org():
    return config.load_org()


def escalation(level: int = 1):
    return message_for("ticket", TICKET, {**ESCALATED, "level": level}, responsible_name="Wang Fang (engineer)",
                       ack_url="http://127.0.0.1:8000/ack/tok123")


# --- a real SMTP server -------------------------------------------------------------------------

class Mailbox:
    def __init__(self):
        self.received = []

    async def handle_DATA(self, server, session, envelope):
        self.received.append(envelope)
        return "250 OK"


@pytest.fixture
def smtp():
    mailbox = Mailbox()
    controller = Controller(mailbox, hostname="127.0.0.1", port=free_port())
    controller.start()
    yield controller.port, mailbox
    controller.stop()


def test_an_escalation_email_reaches_its_target_through_a_real_smtp_server(smtp, configure, org):
    port, mailbox = smtp
    s = configure(smtp_host="127.0.0.1", smtp_port=str(port), smtp_security="none", smtp_from="weibao@example.com")
    title, body = escalation()
    outcome = send("email", org.staff["E001"], title, body, s)
    assert outcome == Outcome("email", "sent")
    (envelope,) = mailbox.received
    assert envelope.mail_from == "weibao@example.com" and envelope.rcpt_tos == ["wang.fang@example.com"]
    mail = email.message_from_bytes(envelope.original_content, policy=email.policy.default)
    text = mail.get_content()
    assert "上报直接上级" in mail["subject"] and "Escalated to the direct superior" in mail["subject"]
    assert "T-20260302-7" in mail["subject"] and "T-20260302-7" in text
    assert "级别:上报直接上级" in text and "Level: escalated to the direct superior" in text
    assert "2026-03-02 13:00 (UTC+8)" in text and "http://127.0.0.1:8000/ack/tok123" in text
    raw = envelope.original_content.decode(errors="replace")
    for secret in ("0871-6300000", "Hx!2026", "13800000008"):  # the case's phone, its notes, the target's mobile
        assert secret not in raw and secret not in text


def test_the_smtp_login_carries_a_password_of_any_characters(configure, org):
    seen = []

    def authenticator(server, session, envelope, mechanism, auth_data):
        assert isinstance(auth_data, LoginPassword)
        seen.append((auth_data.login.decode(), auth_data.password.decode()))
        return AuthResult(success=auth_data.password == b"p@ss:w/rd %?&#")

    mailbox = Mailbox()
    controller = Controller(mailbox, hostname="127.0.0.1", port=free_port(), authenticator=authenticator,
                            auth_require_tls=False)
    controller.start()
    try:
        s = configure(smtp_host="127.0.0.1", smtp_port=str(controller.port), smtp_security="none",
                      smtp_user="weibao@example.com", smtp_password="p@ss:w/rd %?&#", smtp_from="weibao@example.com")
        assert send("email", org.staff["M003"], *escalation(2), s).sent
        assert seen == [("weibao@example.com", "p@ss:w/rd %?&#")] and len(mailbox.received) == 1
        bad = configure(smtp_password="wrong", notify_timeout="2")  # smtplib waits after a refused login
        outcome = send("email", org.staff["M003"], *escalation(2), bad)
        assert outcome.status == "failed" and "wrong" not in outcome.reason
    finally:
        controller.stop()


@pytest.fixture
def certificate(tmp_path, monkeypatch):
    """A self-signed certificate for 127.0.0.1, trusted by this process (SSL_CERT_FILE)."""
    assert shutil.which("openssl"), "openssl makes the test's certificate: run 'apt-get install -y openssl'"
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=127.0.0.1",
                    "-addext", "subjectAltName=IP:127.0.0.1", "-keyout", str(key), "-out", str(cert)],
                   check=True, capture_output=True)
    monkeypatch.setenv("SSL_CERT_FILE", str(cert))
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    return context


@pytest.mark.parametrize("security", ["starttls", "tls"])
def test_email_goes_over_starttls_or_tls_as_configured(certificate, configure, org, security, monkeypatch):
    mailbox = Mailbox()
    tls = {"tls_context": certificate, "require_starttls": True} if security == "starttls" \
        else {"ssl_context": certificate}
    controller = Controller(mailbox, hostname="127.0.0.1", port=free_port(), **tls)
    controller.start()
    try:
        s = configure(smtp_host="127.0.0.1", smtp_port=str(controller.port), smtp_security=security,
                      smtp_from="weibao@example.com")
        assert send("email", org.staff["E001"], *escalation(), s).sent
        assert mailbox.received[0].rcpt_tos == ["wang.fang@example.com"]
        plain = configure(smtp_security="none", notify_timeout="1")  # a TLS server does not talk plain SMTP
        assert send("email", org.staff["E001"], *escalation(), plain).status == "failed"
        assert len(mailbox.received) == 1
        monkeypatch.delenv("SSL_CERT_FILE")  # the server's certificate no longer trusted: refused
        assert send("email", org.staff["E001"], *escalation(), s).status == "failed"
        assert len(mailbox.received) == 1
    finally:
        controller.stop()


def test_a_tls_context_is_made_once_per_thread_and_trust_and_put_back_to_verifying(monkeypatch):
    """apprise's SMTP module makes a default TLS context for every mail (loading every CA
    certificate); it gets one per thread instead, verifying again whatever apprise set on
    it for the last mail, and a new one when the trusted certificates change."""
    import ssl
    import threading

    import certifi
    from apprise.plugins.email import smtp as apprise_smtp

    from activities import deliver

    monkeypatch.delenv("SSL_CERT_FILE", raising=False)
    made = apprise_smtp.ssl.create_default_context
    first = made()
    first.check_hostname, first.verify_mode = False, ssl.CERT_NONE  # what apprise does for verify=no
    again = made()
    assert again is first and again.verify_mode == ssl.CERT_REQUIRED and again.check_hostname
    other: list = []
    thread = threading.Thread(target=lambda: other.append(made()))
    thread.start(), thread.join()
    assert other[0] is not first
    monkeypatch.setenv("SSL_CERT_FILE", certifi.where())
    assert made() is not first
    assert deliver._tls() is not deliver._tls_for((None, None)) and deliver._tls() is deliver._tls()
    assert apprise_smtp.ssl.CERT_REQUIRED == ssl.CERT_REQUIRED  # the rest of `ssl` as it is


def test_an_smtp_server_that_is_down_is_a_failed_outcome_with_a_reason_not_an_exception(configure, org):
    port = free_port()
    s = configure(smtp_host="127.0.0.1", smtp_port=str(port), smtp_security="none", smtp_from="weibao@example.com")
    outcome = send("email", org.staff["E001"], *escalation(), s)
    assert outcome.status == "failed" and not outcome.sent and not outcome.permanent
    assert f"127.0.0.1:{port}" in outcome.reason and "wang.fang@example.com" not in outcome.reason


# --- a real HTTP server standing in for the robots and the webhook ------------------------------

@dataclass
class Request:
    path: str
    query: str
    headers: dict[str, str]
    raw: bytes

    @property
    def json(self):
        return json.loads(self.raw)


class Endpoint:
    """An HTTP server on 127.0.0.1 that keeps every POST and answers as `answer` says."""

    def __init__(self):
        self.requests: list[Request] = []
        self.answer: tuple[int, dict] = (200, {"errcode": 0, "errmsg": "ok"})
        endpoint = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                parts = urlsplit(self.path)
                endpoint.requests.append(Request(parts.path, parts.query, dict(self.headers), raw))
                status, payload = endpoint.answer
                out = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(out)))
                self.end_headers()
                self.wfile.write(out)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self.thread.start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def endpoint():
    e = Endpoint()
    yield e
    e.close()


def test_the_wecom_robot_gets_its_documented_text_message_mentioning_the_target(endpoint, configure, org):
    s = configure(wecom_url=endpoint.url, wecom_robots=f"after_sales={WECOM_KEY},project=OTHER-KEY")
    title, body = escalation()
    assert send("wecom", org.staff["E001"], title, body, s) == Outcome("wecom", "sent")
    (request,) = endpoint.requests
    assert request.path == "/cgi-bin/webhook/send" and parse_qs(request.query) == {"key": [WECOM_KEY]}
    assert request.headers["Content-Type"].startswith("application/json")
    assert request.json == {"msgtype": "text", "text": {"content": f"{title}\n\n{body}", "mentioned_list": ["wangfang"],
                                                        "mentioned_mobile_list": ["13800000008"]}}
    content = request.json["text"]["content"]
    assert "T-20260302-7" in content and "上报直接上级" in content and "escalated to the direct superior" in content
    assert "13800000008" not in content and "0871-6300000" not in content and len(content.encode()) <= 2048


def test_a_wecom_robots_refusal_is_a_failed_outcome_and_its_key_stays_out_of_the_reason(endpoint, configure, org):
    s = configure(wecom_url=endpoint.url, wecom_robots=f"*={WECOM_KEY}")
    endpoint.answer = (200, {"errcode": 93000, "errmsg": f"invalid webhook url, key={WECOM_KEY}"})
    outcome = send("wecom", org.staff["L001"], *escalation(2), s)  # leadership: the '*' robot
    assert outcome.status == "failed" and "errcode 93000" in outcome.reason and WECOM_KEY not in outcome.reason
    assert len(endpoint.requests) == 1


def test_the_dingtalk_robot_gets_its_documented_message_signed_with_the_secret(endpoint, configure, org):
    s = configure(dingtalk_url=endpoint.url, dingtalk_robots=f"project={DINGTALK_TOKEN}:{DINGTALK_SECRET}")
    title, body = escalation()
    before = int(time.time() * 1000)
    assert send("dingtalk", org.staff["E002"], title, body, s).sent
    (request,) = endpoint.requests
    query = parse_qs(request.query)
    assert request.path == "/robot/send" and query["access_token"] == [DINGTALK_TOKEN]
    timestamp, sign = query["timestamp"][0], query["sign"][0]
    assert before - 1000 <= int(timestamp) <= int(time.time() * 1000) + 1000
    expected = base64.b64encode(hmac.new(DINGTALK_SECRET.encode(), f"{timestamp}\n{DINGTALK_SECRET}".encode(),
                                         hashlib.sha256).digest()).decode()
    assert sign == expected  # DingTalk's check, after the query is URL-decoded
    assert request.json == {"msgtype": "text", "text": {"content": f"{title}\n\n{body}"},
                            "at": {"atUserIds": ["ding-fengtao"], "atMobiles": ["13800000009"], "isAtAll": False}}
    assert "13800000009" not in request.json["text"]["content"]


def test_a_dingtalk_robot_without_a_secret_is_called_unsigned(endpoint, configure, org):
    s = configure(dingtalk_url=endpoint.url, dingtalk_robots=f"project={DINGTALK_TOKEN}")
    assert send("dingtalk", org.staff["S002"], *escalation(), s).sent
    assert parse_qs(endpoint.requests[0].query) == {"access_token": [DINGTALK_TOKEN]}


def test_the_webhook_body_is_signed_with_the_shared_secret(endpoint, configure, org):
    s = configure(webhook_url=f"{endpoint.url}/weibao/hook", webhook_secret=WEBHOOK_SECRET)
    title, body = escalation()
    outcome = send("webhook", org.staff["S001"], title, body, s, data={"notice": "ticket-T1:on_site:escalated"})
    assert outcome.sent
    (request,) = endpoint.requests
    expected = hmac.new(WEBHOOK_SECRET.encode(), request.raw, hashlib.sha256).hexdigest()
    assert request.path == "/weibao/hook" and request.headers["X-Weibao-Signature"] == f"sha256={expected}"
    sent = request.json
    assert (sent["to"], sent["title"], sent["body"]) == ("S001", title, body)
    assert sent["data"] == {"notice": "ticket-T1:on_site:escalated"} and sent["sent_at"].endswith("+00:00")
    assert "wu.gang@example.com" not in request.raw.decode() and "13800000006" not in request.raw.decode()
    forged = hmac.new(b"another secret", request.raw, hashlib.sha256).hexdigest()
    assert request.headers["X-Weibao-Signature"] != f"sha256={forged}"


@pytest.mark.parametrize("status,outcome", [(500, "failed"), (503, "failed"), (429, "failed"),
                                            (400, "undeliverable"), (404, "undeliverable")])
def test_a_webhooks_answer_decides_between_another_attempt_and_giving_up(endpoint, configure, org, status, outcome):
    s = configure(webhook_url=f"{endpoint.url}/hook", webhook_secret=WEBHOOK_SECRET)
    endpoint.answer = (status, {"error": "no"})
    result = send("webhook", org.staff["S001"], *escalation(), s)
    assert result.status == outcome and result.reason.startswith(f"HTTP {status}")


@pytest.mark.parametrize("channel,staff_id", [("wecom", "E001"), ("dingtalk", "E002"), ("webhook", "S001")])
def test_a_channel_that_is_down_is_a_failed_outcome_with_a_reason_never_an_exception(configure, org, channel, staff_id):
    down = f"http://127.0.0.1:{free_port()}"
    s = configure(wecom_url=down, wecom_robots=f"*={WECOM_KEY}", dingtalk_url=down,
                  dingtalk_robots=f"*={DINGTALK_TOKEN}:{DINGTALK_SECRET}", webhook_url=f"{down}/hook",
                  webhook_secret=WEBHOOK_SECRET)
    outcome = send(channel, org.staff[staff_id], *escalation(), s)
    assert outcome.status == "failed" and outcome.reason.startswith("ConnectError")
    for secret in (WECOM_KEY, DINGTALK_TOKEN, DINGTALK_SECRET, WEBHOOK_SECRET):
        assert secret not in outcome.reason


# --- which channels, for whom ------------------------------------------------------------------

def test_channels_follow_the_persons_preference_and_only_those_configured(configure, org):
    e001, s001, e002 = org.staff["E001"], org.staff["S001"], org.staff["E002"]
    s = configure()
    assert channels_for(e001, s) == [] and channels_for(s001, s) == []
    s = configure(smtp_host="127.0.0.1", smtp_from="weibao@example.com")
    assert channels_for(e001, s) == ["email"]
    s = configure(wecom_robots=f"after_sales={WECOM_KEY}")
    assert channels_for(e001, s) == ["email", "wecom"]  # default order: email first
    assert channels_for(s001, s) == ["wecom", "email"]  # S001 prefers WeCom; no webhook configured
    s = configure(webhook_url="http://127.0.0.1:9/hook", webhook_secret=WEBHOOK_SECRET)
    assert channels_for(s001, s) == ["wecom", "email", "webhook"]
    assert channels_for(e001, s) == ["email", "wecom"]  # the webhook only for those who name it
    s = configure(dingtalk_robots=f"after_sales={DINGTALK_TOKEN}")
    assert channels_for(e002, s) == ["email"]  # no DingTalk robot for the project department
    s = configure(dingtalk_robots=f"after_sales={DINGTALK_TOKEN},*={DINGTALK_TOKEN}")
    assert channels_for(e002, s) == ["email", "dingtalk"]


def test_a_person_without_an_address_for_a_channel_is_skipped_and_sending_there_is_undeliverable(
        endpoint, configure, org):
    clerk = org.staff["C001"]  # email only
    s = configure(wecom_url=endpoint.url, wecom_robots=f"*={WECOM_KEY}", smtp_host="127.0.0.1",
                  smtp_from="weibao@example.com")
    assert channels_for(clerk, s) == ["email"]
    outcome = send("wecom", clerk, *escalation(), s)
    assert outcome == Outcome("wecom", "undeliverable", "C001 has no wecom_id in the org file") and outcome.permanent
    assert endpoint.requests == []  # nothing was sent
    assert send("email", None, "t", "b", s).permanent  # a target not on the staff
    assert send("sms", clerk, "t", "b", s).permanent
    assert send("webhook", org.staff["S001"], "t", "b", s).reason == "the webhook is not configured (WEIBAO_WEBHOOK_URL)"
    assert send("email", clerk, "t", "b", configure(smtp_host="", smtp_from="")).permanent


# --- the notification settings ------------------------------------------------------------------

BAD = [
    ("WEIBAO_SMTP_PORT", "mail", "must be a port number"),
    ("WEIBAO_SMTP_SECURITY", "ssl", "must be one of none, starttls, tls, not 'ssl'"),
    ("WEIBAO_SMTP_FROM", "weibao", "must be an email address, not 'weibao'"),
    ("WEIBAO_PUBLIC_URL", "weibao.example.com", "must be an http:// or https:// URL"),
    ("WEIBAO_WECOM_URL", "qyapi.weixin.qq.com", "must be an http:// or https:// URL"),
    ("WEIBAO_WEBHOOK_URL", "ftp://hooks.example.com", "must be an http:// or https:// URL"),
    ("WEIBAO_WECOM_ROBOTS", f"after_sales={WECOM_KEY},{WECOM_KEY}", "entry 2 of 2 is not department=KEY"),
    ("WEIBAO_WECOM_ROBOTS", "after_sales=a,after_sales=b", "department 'after_sales' has two robots"),
    ("WEIBAO_DINGTALK_ROBOTS", "project=tok:sec:more", "is not department=TOKEN or department=TOKEN:SECRET"),
    ("WEIBAO_NOTIFY_TIMEOUT", "soon", "must be a number of seconds above 0"),
]


@pytest.mark.parametrize("variable,value,problem", BAD, ids=[f"{b[0]}={b[1]}" for b in BAD])
def test_a_bad_notification_setting_is_one_line_naming_the_variable_and_never_a_key(monkeypatch, variable, value,
                                                                                     problem):
    monkeypatch.setenv(variable, value)
    with pytest.raises(ConfigError) as e:
        settings.load()
    assert str(e.value).startswith(f"{variable}: ") and problem in str(e.value) and "\n" not in str(e.value)
    assert WECOM_KEY not in str(e.value) and "tok:sec" not in str(e.value)


def test_an_smtp_host_needs_a_sender_and_a_webhook_its_secret(monkeypatch):
    monkeypatch.setenv("WEIBAO_SMTP_HOST", "smtp.example.com")
    with pytest.raises(ConfigError, match="^WEIBAO_SMTP_FROM: must be set when WEIBAO_SMTP_HOST is"):
        settings.load()
    monkeypatch.setenv("WEIBAO_SMTP_FROM", "weibao@example.com")
    monkeypatch.setenv("WEIBAO_WEBHOOK_URL", "https://hooks.example.com/weibao?token=t0ken")
    with pytest.raises(ConfigError, match="^WEIBAO_WEBHOOK_SECRET: must be set when WEIBAO_WEBHOOK_URL is") as e:
        settings.load()
    assert "t0ken" not in str(e.value)


def test_notification_defaults(configure):
    s = configure()
    assert s.public_url == "http://127.0.0.1:8000" and s.smtp_host is None and s.smtp_security == "starttls"
    assert (s.wecom_url, s.dingtalk_url) == ("https://qyapi.weixin.qq.com", "https://oapi.dingtalk.com")
    assert s.webhook_url is None and s.notify_timeout == 10.0 and s.robot("wecom", "after_sales") is None
    assert [configure(smtp_security=m).smtp_port_or_default() for m in ("none", "starttls", "tls")] == [25, 587, 465]
    assert configure(smtp_port="2525").smtp_port_or_default() == 2525
    assert configure(public_url="https://weibao.example.com/").public_url == "https://weibao.example.com"


def test_a_robot_for_a_department_the_org_file_lacks_stops_the_process_at_start(monkeypatch, capsys):
    monkeypatch.setenv("WEIBAO_DINGTALK_ROBOTS", f"aftersales={DINGTALK_TOKEN}")
    with pytest.raises(SystemExit) as stopped:
        config.startup()
    assert stopped.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("weibao: configuration error: WEIBAO_DINGTALK_ROBOTS: unknown department 'aftersales'")
    assert err.count("\n") == 1 and DINGTALK_TOKEN not in err
