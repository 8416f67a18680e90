"""Latency of one step through the HTTP API, end to end, against the floor it stands on.

    .venv/bin/python bench/api_steps.py [-n 200] [--rounds 3] [--in-flight 1 8]
        [--store sqlite|postgres|both] [--pg-db bench_cap] [--no-gc-freeze] [-v]

On one fresh dev server (SQLite file, WAL), in the same run:
- step: `POST /tickets/{id}/steps/arrive` from an HTTP client to the API (`python -m api`,
  its own process), which checks the token and the role and sends the Update; the
  worker (`worker.build_worker`, in this process) records the event in the event store
  (a local activity) before the Update, and so the HTTP request, answers 200;
- direct: the same Update sent straight from a Temporal client (no HTTP, no API);
- bare: an Update sent straight from a Temporal client to a workflow whose handler
  runs one no-op local activity (bench/bare.py);
- bare+index: the bare Update also upserting one search attribute, as every recorded
  step does (workflows/search.py).
Each is timed per request, with 1 and then 8 requests in flight, in interleaved chunks;
prints p50, p99 and max of each, the ratios of the step's p50 and p99 to the bare's
("ratio: X"), the step's p50 over the bare's split into the search attributes' write
(bare+index − bare), the rest of the worker's work (direct − bare+index) and the HTTP
and API (step − direct), and, to say where a tail comes from, what the worker did meanwhile: the
event store's save times (for SQLite with the wait for the process's one writer
connection) and the garbage collector's pauses. The event store is SQLite (a file beside
the dev server's) unless --store says postgres: the PostgreSQL of POSTGRES_HOST/PORT/
USER/PASSWORD, database --pg-db (created if missing); `both` runs one after the other."""
from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import statistics
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import httpx  # noqa: E402
from temporalio.client import Client  # noqa: E402
from temporalio.contrib.pydantic import pydantic_data_converter  # noqa: E402
from temporalio.worker import Worker  # noqa: E402

from bench.bare import BareWorkflow, noop  # noqa: E402
from bench.common import bare_handles, child_pid, dev_server, free_port, pct, timed, use_postgres  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
REPORT = dict(customer="Kunming No.2 Hospital", site="Kunming", contact_phone="0871-1234567",
              product_model="HIS-Server", symptoms="HIS down", channel="phone", severity="critical", zone="A")


def cpu_seconds(pid: int) -> float:
    """User + system CPU time a process has used so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


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
    def __init__(self, client: Client, update=BareWorkflow.step):
        self.client = client
        self.update = update

    async def prepare(self, n: int):
        return await bare_handles(self.client, n)

    def calls(self, handles):
        def call(h):
            return lambda: h.execute_update(self.update, 1)

        return [call(h) for h in handles]


class Stopwatch:
    """Where a step's time goes inside this process (which hosts the ticket worker): each
    `EventStore.save` (for SQLite also the wait for the process's one writer connection,
    part of the save), and each pause of the garbage collector, per timed path."""

    def __init__(self, store):
        self.saves: list[float] = []
        self.writer_waits: list[float] = []
        self.gc: list[tuple[int, float]] = []
        self._gc_start = 0.0
        save = store.save

        def timed_save(*args, **kwargs):
            t0 = time.perf_counter()
            try:
                return save(*args, **kwargs)
            finally:
                self.saves.append((time.perf_counter() - t0) * 1000)

        store.save = timed_save
        pool = getattr(store.recorder.datastore, "pool", None)
        if pool is not None and hasattr(pool, "get_connection"):  # eventsourcing's own pool (SQLite)
            get = pool.get_connection

            def timed_get(*args, **kwargs):
                t0 = time.perf_counter()
                try:
                    return get(*args, **kwargs)
                finally:
                    if kwargs.get("is_writer"):
                        self.writer_waits.append((time.perf_counter() - t0) * 1000)

            pool.get_connection = timed_get
        gc.callbacks.append(self._on_gc)

    def _on_gc(self, phase: str, info: dict) -> None:
        if phase == "start":
            self._gc_start = time.perf_counter()
        else:
            self.gc.append((info["generation"], (time.perf_counter() - self._gc_start) * 1000))

    def take(self) -> tuple[list[float], list[float], list[tuple[int, float]]]:
        out = (self.saves, self.writer_waits, self.gc)
        self.saves, self.writer_waits, self.gc = [], [], []
        return out


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


async def main(n: int, rounds: int, loads: list[int], verbose: bool, store: str, pg_db: str,
               gc_freeze: bool = True) -> dict:
    with dev_server() as (address, tmp):
        port = free_port()
        os.environ.update(WEIBAO_EVENT_STORE="sqlite", WEIBAO_SQLITE_PATH=str(tmp / "events.db"))
        if store == "postgres":
            use_postgres(pg_db)
        env = {**os.environ, "TEMPORAL_ADDRESS": address, "WEIBAO_DATA_DIR": str(tmp), "WEIBAO_SECRET_KEY": "bench",
               "WEIBAO_TASK_QUEUE": "tickets", "WEIBAO_API_PORT": str(port), "WEIBAO_API_HOST": "127.0.0.1",
               "WEIBAO_API_ACCESS_LOG": "0", "WEIBAO_API_LOG_LEVEL": "warning"}
        os.environ.update(env)
        from activities import config
        from activities.outbox import Outbox
        from activities.store import open_store
        from activities.record import Recorder
        from api.auth import Tokens
        from api.db import Database
        from worker import build_worker

        db = Database()
        tokens = {who: Tokens(db).issue(who) for who in ("C001", "S001", "E001")}
        db.close()
        client = await Client.connect(address, data_converter=pydantic_data_converter)
        acts = Recorder(open_store(), config.load_org(), Outbox())
        watch = Stopwatch(acts.store)
        bare_worker = Worker(client, task_queue="bare", workflows=[BareWorkflow], activities=[noop],
                             activity_executor=ThreadPoolExecutor(16))
        api = start_api(env, port)
        pids = {"dev server": child_pid("start-dev"), "bench+workers": os.getpid(), "API": api.pid}
        results = {}
        try:
            http = KeepAliveClient("127.0.0.1", port)
            async with bare_worker, build_worker(client, acts, task_queue="tickets"):
                step, bare = StepBench(http, tokens), BareBench(client)
                direct, indexed = DirectBench(client, step), BareBench(client, BareWorkflow.indexed_step)
                print(f"event store {store}, load average {os.getloadavg()[0]:.1f}", flush=True)
                for load in loads:
                    await timed(step.calls(await step.prepare(20)), load)  # warm up both paths
                    await timed(bare.calls(await bare.prepare(20)), load)
                    if gc_freeze:  # as worker.py does once started
                        gc.collect()
                        gc.freeze()
                    got_all: dict[str, list[float]] = {"step": [], "bare": [], "direct": [], "indexed": []}
                    inside: dict[str, list] = {k: [[], [], []] for k in got_all}
                    for r in range(rounds):
                        # prepared ahead, then timed in interleaved chunks, so that the load the
                        # other tenants of the machine put on it falls on all three alike
                        paths = {"step": step.calls(await step.prepare(n)), "bare": bare.calls(await bare.prepare(n)),
                                 "direct": direct.calls(await direct.prepare(n)),
                                 "indexed": indexed.calls(await indexed.prepare(n))}
                        got: dict[str, list[float]] = {k: [] for k in paths}
                        meters: dict[str, list[CpuMeter]] = {k: [] for k in paths}
                        chunk = max(load * 8, 25)
                        for i in range(0, n, chunk):
                            for name, calls in paths.items():
                                watch.take()
                                with CpuMeter(pids) as meter:
                                    got[name] += await timed(calls[i:i + chunk], load)
                                meters[name].append(meter)
                                for into, part in zip(inside[name], watch.take()):
                                    into += part
                        s, b, d, x = got["step"], got["bare"], got["direct"], got["indexed"]
                        print(f"  in flight {load}, round {r + 1}: step p50 {statistics.median(s):.1f} ms, "
                              f"bare p50 {statistics.median(b):.1f} ms, direct p50 {statistics.median(d):.1f} ms, "
                              f"bare+index p50 {statistics.median(x):.1f} ms, "
                              f"load average {os.getloadavg()[0]:.1f}", flush=True)
                        if verbose:
                            print("    CPU ms per request: " + "; ".join(
                                f"{name} ({CpuMeter.total(meters[name], n)})" for name in paths), flush=True)
                        for k in got_all:
                            got_all[k] += got[k]
                    results[load] = report(load, got_all, inside)
                await http.close()
        finally:
            api.terminate()
            try:
                api.wait(timeout=15)
            except subprocess.TimeoutExpired:
                api.kill()
                api.wait()
    return results


def report(load: int, got: dict[str, list[float]], inside: dict[str, list]) -> tuple[float, ...]:
    step, bare, direct, indexed = got["step"], got["bare"], got["direct"], got["indexed"]
    s50, s99, b50, b99 = pct(step, 50), pct(step, 99), pct(bare, 50), pct(bare, 99)
    print(f"in flight: {load}  (N={len(step)} each)")
    print(f"  step  POST /tickets/{{id}}/steps/arrive (HTTP -> API -> Update -> record): "
          f"p50 {s50:.1f} ms  p99 {s99:.1f} ms  max {max(step):.1f} ms")
    print(f"  bare  Update with one no-op local activity:                         "
          f"p50 {b50:.1f} ms  p99 {b99:.1f} ms  max {max(bare):.1f} ms")
    print(f"  direct  the arrive Update from a Temporal client (no HTTP, no API):     "
          f"p50 {pct(direct, 50):.1f} ms  p99 {pct(direct, 99):.1f} ms  max {max(direct):.1f} ms")
    print(f"  bare+index  the bare Update also upserting one search attribute:    "
          f"p50 {pct(indexed, 50):.1f} ms  p99 {pct(indexed, 99):.1f} ms  max {max(indexed):.1f} ms")
    for name in ("step", "direct", "bare"):
        saves, waits, pauses = inside[name]
        line = f"    inside the worker while timing {name}: "
        if saves:
            line += f"event store save p50 {pct(saves, 50):.1f} p99 {pct(saves, 99):.1f} max {max(saves):.1f} ms"
        if waits:
            line += f" (of which the writer's wait p99 {pct(waits, 99):.1f} max {max(waits):.1f} ms)"
        full = [ms for gen, ms in pauses if gen == 2]
        longest = max((ms for _, ms in pauses), default=0)
        line += (f"{'; ' if saves else ''}GC {len(pauses)} pauses, longest {longest:.1f} ms, "
                 f"{len(full)} full (longest {max(full, default=0):.1f} ms)")
        print(line)
    print(f"  ratio (step p50 / bare p50): {s50 / b50:.2f}   (goal <= 1.3)")
    print(f"  ratio (step p99 / bare p99): {s99 / b99:.2f}   (goal <= 2)")
    # where the step's extra time goes: the search attributes' write (bare+index over bare),
    # the rest of the worker's work (direct over bare+index), the API (step over direct)
    x50, d50 = pct(indexed, 50), pct(direct, 50)
    print(f"  step p50 over bare p50: {s50 - b50:+.1f} ms = search attribute upsert {x50 - b50:+.1f} ms, "
          f"rest of the worker {d50 - x50:+.1f} ms, HTTP and API {s50 - d50:+.1f} ms; "
          f"ratio (step p50 / bare+index p50): {s50 / x50:.2f}", flush=True)
    return s50 / b50, s99 / b99, pct(direct, 99) / b99, s50 / x50


if __name__ == "__main__":
    p = argparse.ArgumentParser()
    p.add_argument("-n", type=int, default=200, help="timed requests per round and path")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--in-flight", type=int, nargs="+", default=[1, 8])
    p.add_argument("-v", "--verbose", action="store_true", help="also print CPU ms per request per process")
    p.add_argument("--store", choices=["sqlite", "postgres", "both"], default="sqlite")
    p.add_argument("--pg-db", default="bench_cap", help="the PostgreSQL database of --store postgres")
    p.add_argument("--gc-freeze", action=argparse.BooleanOptionalAction, default=True,
                   help="gc.freeze() this process (workers, client) after the warm-up, as worker.py freezes itself "
                        "once started: its full collections then walk only what came after (the default since "
                        "2026-12-07; --no-gc-freeze as before)")
    a = p.parse_args()
    summary = {}
    for kind in (["sqlite", "postgres"] if a.store == "both" else [a.store]):
        summary[kind] = asyncio.run(main(a.n, a.rounds, a.in_flight, a.verbose, kind, a.pg_db, a.gc_freeze))
    print("\nsummary (ratios against the bare Update of the same run; goals p50 <= 1.3, p99 <= 2)")
    for kind, by_load in summary.items():
        for load, (r50, r99, d99, x50) in by_load.items():
            print(f"  {kind:8} in flight {load}: p50 ratio: {r50:.2f}  p99 ratio: {r99:.2f}  "
                  f"(client-direct Update p99 / bare p99: {d99:.2f}; step p50 / bare+index p50: {x50:.2f})")
