"""Latency of one step through the HTTP API, end to end, against the floor it stands on.

    .venv/bin/python bench/api_steps.py [-n 200] [--rounds 3] [--in-flight 1 8]

On one fresh dev server (SQLite file, WAL), in the same run:
- step: `POST /tickets/{id}/steps/arrive` from an HTTP client to the API (`python -m api`,
  its own process), which checks the token and the role and sends the Update; the
  worker records the event in the SQLite event store (a local activity) before the
  Update, and so the HTTP request, answers 200;
- bare: an Update sent straight from a Temporal client to a workflow whose handler
  runs one no-op local activity (bench/bare.py).
Each is timed per request, with 1 and then 8 requests in flight, in alternating
rounds; prints p50 and p99 of both, the ratio of the p50s, and the number in flight."""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import httpx  # noqa: E402
from temporalio.client import Client, WithStartWorkflowOperation  # noqa: E402
from temporalio.common import WorkflowIDConflictPolicy  # noqa: E402
from temporalio.contrib.pydantic import pydantic_data_converter  # noqa: E402
from temporalio.worker import Worker  # noqa: E402

from bench.bare import BareWorkflow, noop  # noqa: E402
from bench.common import dev_server, free_port  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
REPORT = dict(customer="Kunming No.2 Hospital", site="Kunming", contact_phone="0871-1234567",
              product_model="HIS-Server", symptoms="HIS down", channel="phone", severity="critical", zone="A")


def cpu_seconds(pid: int) -> float:
    """User + system CPU time a process has used so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def child_pid(needle: str) -> int:
    """The pid of this process's child whose command line contains `needle`."""
    for proc in Path("/proc").iterdir():
        try:
            if (proc.name.isdigit() and needle in (proc / "cmdline").read_text().replace("\0", " ")
                    and int((proc / "stat").read_text().rsplit(")", 1)[1].split()[1]) == os.getpid()):
                return int(proc.name)
        except OSError:
            continue
    raise RuntimeError(f"no child process runs {needle!r}")


class CpuMeter:
    """CPU ms per request spent in each process of the run."""

    def __init__(self, pids: dict[str, int]):
        self.pids = pids

    def __enter__(self) -> "CpuMeter":
        self.start = {name: cpu_seconds(pid) for name, pid in self.pids.items()}
        return self

    def __exit__(self, *exc: object) -> None:
        self.used = {name: cpu_seconds(pid) - self.start[name] for name, pid in self.pids.items()}

    @staticmethod
    def total(meters: list["CpuMeter"], n: int) -> str:
        names = meters[0].used
        return ", ".join(f"{name} {1000 * sum(m.used[name] for m in meters) / n:.2f}" for name in names)


def pct(samples: list[float], p: float) -> float:
    s = sorted(samples)
    return s[min(len(s) - 1, int(round(p / 100 * (len(s) - 1))))]


async def timed(calls, in_flight: int) -> list[float]:
    """Run the zero-argument coroutine functions `calls`, `in_flight` at a time;
    returns each one's latency in ms."""
    sem = asyncio.Semaphore(in_flight)
    out: list[float] = []

    async def one(call) -> None:
        async with sem:
            t0 = time.perf_counter()
            await call()
            out.append((time.perf_counter() - t0) * 1000)

    await asyncio.gather(*(one(c) for c in calls))
    return out


class KeepAliveClient:
    """A minimal HTTP/1.1 client over a pool of keep-alive connections: the load
    generator, kept as light as wrk would be so that its own CPU (it shares the two
    cores with everything measured) stays out of the figures."""

    def __init__(self, host: str, port: int):
        self.host, self.port = host, port
        self.idle: list[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = []

    async def post(self, path: str, headers: dict[str, str], body: bytes) -> tuple[int, bytes]:
        head = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
        request = (f"POST {path} HTTP/1.1\r\nHost: {self.host}\r\nContent-Type: application/json\r\n"
                   f"Content-Length: {len(body)}\r\n{head}\r\n").encode() + body
        while True:
            conn = self.idle.pop() if self.idle else await asyncio.open_connection(self.host, self.port)
            reader, writer = conn
            writer.write(request)
            status_line = await reader.readline()
            if status_line:
                break
            writer.close()  # the server closed an idle connection: take another
        status = int(status_line.split()[1])
        length = 0
        while (line := await reader.readline()) not in (b"\r\n", b""):
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value)
        data = await reader.readexactly(length)
        self.idle.append(conn)
        return status, data

    async def close(self) -> None:
        for _, writer in self.idle:
            writer.close()


class StepBench:
    def __init__(self, http: KeepAliveClient, tokens: dict[str, str]):
        self.http, self.tokens = http, tokens

    async def post(self, path: str, who: str, body: dict) -> dict:
        status, data = await self.http.post(path, {"Authorization": f"Bearer {self.tokens[who]}"},
                                            json.dumps(body).encode())
        if status not in (200, 201):
            raise RuntimeError(f"{path}: {status} {data[:300]!r}")
        return json.loads(data)

    async def dispatched(self) -> str:
        tid = (await self.post("/tickets", "C001", REPORT))["ticket_id"]
        await self.post(f"/tickets/{tid}/steps/triage", "S001", {"severity": "critical", "zone": "A"})
        await self.post(f"/tickets/{tid}/steps/dispatch", "S001", {"engineer": "E001", "travel_mode": "taxi"})
        return tid

    async def prepare(self, n: int) -> list[str]:
        sem = asyncio.Semaphore(8)

        async def one() -> str:
            async with sem:
                return await self.dispatched()

        return list(await asyncio.gather(*(one() for _ in range(n))))

    def calls(self, ticket_ids: list[str]):
        def call(tid: str):
            return lambda: self.post(f"/tickets/{tid}/steps/arrive", "E001", {"staff_id_shown": True})

        return [call(t) for t in ticket_ids]


class DirectBench:
    """The same step as an Update sent straight from a Temporal client: what the API adds
    is the step's latency minus this one's."""

    def __init__(self, client: Client, step: StepBench):
        self.client, self.step = client, step

    async def prepare(self, n: int) -> list[str]:
        return await self.step.prepare(n)

    def calls(self, ticket_ids: list[str]):
        from workflows.messages import StepCommand
        from workflows.ticket import TicketWorkflow, ticket_workflow_id

        def call(tid: str):
            handle = self.client.get_workflow_handle(ticket_workflow_id(tid))
            cmd = StepCommand(step="arrive", actor="E001", data={"staff_id_shown": True})
            return lambda: handle.execute_update(TicketWorkflow.step, cmd)

        return [call(t) for t in ticket_ids]


class BareBench:
    def __init__(self, client: Client):
        self.client = client

    async def prepare(self, n: int):
        sem = asyncio.Semaphore(8)

        async def one():
            async with sem:
                op = WithStartWorkflowOperation(BareWorkflow.run, id=f"bare-{uuid.uuid4()}", task_queue="bare",
                                                id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING)
                await self.client.execute_update_with_start_workflow(BareWorkflow.step, 0,
                                                                     start_workflow_operation=op)
                return await op.workflow_handle()

        return list(await asyncio.gather(*(one() for _ in range(n))))

    def calls(self, handles):
        def call(h):
            return lambda: h.execute_update(BareWorkflow.step, 1)

        return [call(h) for h in handles]


def start_api(env: dict[str, str], port: int) -> subprocess.Popen:
    proc = subprocess.Popen([sys.executable, "-m", "api"], cwd=str(ROOT), env=env)
    deadline = time.monotonic() + 60
    while True:
        try:
            httpx.get(f"http://127.0.0.1:{port}/openapi.json", timeout=1).raise_for_status()
            return proc
        except httpx.HTTPError:
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("the API did not start")
            time.sleep(0.2)


async def main(n: int, rounds: int, loads: list[int], verbose: bool) -> None:
    with dev_server() as (address, tmp):
        port = free_port()
        env = {**os.environ, "TEMPORAL_ADDRESS": address, "WEIBAO_EVENT_STORE": "sqlite",
               "WEIBAO_DATA_DIR": str(tmp), "WEIBAO_SQLITE_PATH": str(tmp / "events.db"),
               "WEIBAO_TASK_QUEUE": "tickets", "WEIBAO_API_PORT": str(port), "WEIBAO_API_HOST": "127.0.0.1",
               "WEIBAO_API_ACCESS_LOG": "0", "WEIBAO_API_LOG_LEVEL": "warning"}
        os.environ.update(env)
        from activities import config
        from activities.outbox import Outbox
        from activities.store import open_store
        from activities.record import Recorder
        from api.auth import Tokens
        from api.db import Database
        from workflows.ticket import TicketWorkflow

        db = Database()
        tokens = {who: Tokens(db).issue(who) for who in ("C001", "S001", "E001")}
        db.close()
        client = await Client.connect(address, data_converter=pydantic_data_converter)
        acts = Recorder(open_store(), config.load_org(), Outbox())
        bare_worker = Worker(client, task_queue="bare", workflows=[BareWorkflow], activities=[noop],
                             activity_executor=ThreadPoolExecutor(16))
        api = start_api(env, port)
        pids = {"dev server": child_pid("start-dev"), "bench+workers": os.getpid(), "API": api.pid}
        try:
            http = KeepAliveClient("127.0.0.1", port)
            ticket_worker = Worker(client, task_queue="tickets", workflows=[TicketWorkflow], activities=acts.all(),
                                   activity_executor=ThreadPoolExecutor(16), max_concurrent_local_activities=16)
            async with bare_worker, ticket_worker:
                step, bare = StepBench(http, tokens), BareBench(client)
                direct = DirectBench(client, step)
                for load in loads:
                    await timed(step.calls(await step.prepare(20)), load)  # warm up both paths
                    await timed(bare.calls(await bare.prepare(20)), load)
                    s_all: list[float] = []
                    b_all: list[float] = []
                    d_all: list[float] = []
                    for r in range(rounds):
                        # prepared ahead, then timed in interleaved chunks, so that the load the
                        # other tenants of the machine put on it falls on all three alike
                        paths = {"step": step.calls(await step.prepare(n)), "bare": bare.calls(await bare.prepare(n)),
                                 "direct": direct.calls(await direct.prepare(n))}
                        got: dict[str, list[float]] = {k: [] for k in paths}
                        meters: dict[str, list[CpuMeter]] = {k: [] for k in paths}
                        chunk = max(load * 8, 25)
                        for i in range(0, n, chunk):
                            for name, calls in paths.items():
                                with CpuMeter(pids) as meter:
                                    got[name] += await timed(calls[i:i + chunk], load)
                                meters[name].append(meter)
                        s, b, d = got["step"], got["bare"], got["direct"]
                        print(f"  in flight {load}, round {r + 1}: step p50 {statistics.median(s):.1f} ms, "
                              f"bare p50 {statistics.median(b):.1f} ms, direct p50 {statistics.median(d):.1f} ms",
                              flush=True)
                        if verbose:
                            print("    CPU ms per request: " + "; ".join(
                                f"{name} ({CpuMeter.total(meters[name], n)})" for name in paths), flush=True)
                        s_all += s
                        b_all += b
                        d_all += d
                    report(load, s_all, b_all, d_all)
                await http.close()
        finally:
            api.terminate()
            try:
                api.wait(timeout=15)
            except subprocess.TimeoutExpired:
                api.kill()
                api.wait()


def report(load: int, step: list[float], bare: list[float], direct: list[float]) -> None:
    s50, s99, b50, b99 = pct(step, 50), pct(step, 99), pct(bare, 50), pct(bare, 99)
    print(f"in flight: {load}  (N={len(step)} each)")
    print(f"  step  POST /tickets/{{id}}/steps/arrive (HTTP -> API -> Update -> record): "
          f"p50 {s50:.1f} ms  p99 {s99:.1f} ms")
    print(f"  bare  Update with one no-op local activity:                         "
          f"p50 {b50:.1f} ms  p99 {b99:.1f} ms")
    print(f"  direct  the arrive Update from a Temporal client (no HTTP, no API):     "
          f"p50 {pct(direct, 50):.1f} ms  p99 {pct(direct, 99):.1f} ms")
    print(f"  ratio (step p50 / bare p50): {s50 / b50:.2f}   (goal <= 1.5)", flush=True)


if __name__ == "__main__":
    p = argparse.ArgumentParser()
    p.add_argument("-n", type=int, default=200, help="timed requests per round and path")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--in-flight", type=int, nargs="+", default=[1, 8])
    p.add_argument("-v", "--verbose", action="store_true", help="also print CPU ms per request per process")
    a = p.parse_args()
    asyncio.run(main(a.n, a.rounds, a.in_flight, a.verbose))
