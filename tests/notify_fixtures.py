"""A real SMTP server for delivery tests (aiosmtpd), configured as weibao's mail channel,
and the waits they share."""
from __future__ import annotations

import asyncio
import socket
from datetime import timedelta
from email import message_from_bytes
from email.header import decode_header, make_header

import pytest
from aiosmtpd.controller import Controller

def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Mailbox:
    def __init__(self):
        self.received = []

    async def handle_DATA(self, server, session, envelope):
        self.received.append(envelope)
        return "250 OK"

    def to(self, address: str) -> list[str]:
        """The decoded subject and body of every mail to `address`."""
        out = []
        for envelope in self.received:
            if address in envelope.rcpt_tos:
                mail = message_from_bytes(envelope.content)
                body = b"".join(part.get_payload(decode=True) or b"" for part in mail.walk()
                                if part.get_content_type() == "text/plain").decode()
                out.append(f"{make_header(decode_header(mail['Subject']))}\n{body}")
        return out


class Smtp:
    """A real SMTP server on a fixed port that a test can stop and start again."""

    def __init__(self):
        self.port, self.mailbox, self.controller = free_port(), Mailbox(), None

    def start(self):
        self.controller = Controller(self.mailbox, hostname="127.0.0.1", port=self.port)
        self.controller.start()

    def stop(self):
        if self.controller:
            self.controller.stop()
            self.controller = None


@pytest.fixture
def smtp(monkeypatch):
    server = Smtp()
    for name, value in {"SMTP_HOST": "127.0.0.1", "SMTP_PORT": str(server.port), "SMTP_SECURITY": "none",
                        "SMTP_FROM": "weibao@example.com", "SECRET_KEY": "test-secret",
                        "DELIVERY_FIRST_RETRY": "1m", "DELIVERY_LONGEST_RETRY": "5m", "ACK_WITHIN": "2h"}.items():
        monkeypatch.setenv(f"WEIBAO_{name}", value)
    yield server
    server.stop()


async def eventually(probe, what: str, seconds: float = 15.0):
    """Poll `probe()` until it returns something truthy (a positive signal), then return it."""
    for _ in range(int(seconds / 0.05)):
        found = probe()
        if found:
            return found
        await asyncio.sleep(0.05)
    raise AssertionError(f"never happened: {what}")


async def skip_until(env, probe, what: str, step: timedelta = timedelta(minutes=1), steps: int = 30):
    """Move the time-skipping server's clock `step` at a time until `probe()` is truthy; return
    it. For what a Delivery workflow does after a timer: the relay starts that workflow in
    real time after its own send, so the timer may be armed after any one long skip of the
    clock, and would then wait in real time."""
    for _ in range(steps):
        found = probe()
        if found:
            return found
        await env.sleep(step)
    return await eventually(probe, what)


def events(stack, tid: str, kind: str) -> list[dict]:
    """The ticket's recorded events of one type."""
    return [e for e in stack.store.history("ticket", tid) if e["type"] == kind]
