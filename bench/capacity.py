"""How a step's latency holds up as open tickets pile up on one worker and one dev server.

    .venv/bin/python bench/capacity.py [--stages 1000 10000 50000] [--sample 50] [--rounds 2]
        [--store sqlite|postgres] [--cache N] [--then-cache N] [--server-cache N] [--profile PREFIX]

The worker is its own process (`python worker.py`, as deployed, with WEIBAO_WORKER_CACHE
from --cache or the setting's default), on a fresh dev server (SQLite file, WAL). Open
tickets are reported straight from a Temporal client (Update-with-start, --concurrency at
a time), major in zone B: each has a pending 48 h timer, and no alarm fires during the
run. At 50 open, then at each stage, it prints the creation rate, the worker's and the
dev server's RSS, and the latency of a step (`triage`, again, on --sample tickets drawn
at random from all open ones) at 1 and 8 in flight, against the baseline of the same
run: a bare Update (a no-op local activity, bench/bare.py) on a worker in this process;
with the worker's garbage-collector pauses meanwhile, and, from 20 stepped tickets'
histories, how long their workflow tasks waited for the worker and how long the worker
took on them. "ratio: X" is the step p50 at 8 in flight at the last stage over its value
at 50 open; "per cached ticket" is the worker's RSS growth per ticket opened, when the
cache holds them all. --then-cache N measures the same open tickets once more on a worker
restarted with cache N (empty at first, as a full small cache is for random steps).
--profile PREFIX records the worker with py-spy during each stage's timed steps (the
thread holding the GIL: where its CPU goes; raw folded stacks) into PREFIX-<open>.txt."""
from __future__ import annotations

import argparse
import asyncio
import os
import random
import signal
import subprocess
import sys
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from temporalio.client import Client, WithStartWorkflowOperation  # noqa: E402
from temporalio.common import WorkflowIDConflictPolicy  # noqa: E402
from temporalio.contrib.pydantic import pydantic_data_converter  # noqa: E402
from temporalio.worker import Worker  # noqa: E402

from bench.bare import BareWorkflow, noop  # noqa: E402
from bench.common import bare_handles, child_pid, dev_server, pct, rss_mb, timed, use_postgres  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
FIRST = 50  # the reference stage
TRIAGE = {"severity": "major", "zone": "B"}  # the same window again: the pending timer stays where it is


class Tickets:
    """Opens tickets from a client and steps random ones."""

    def __init__(self, client: Client, task_queue: str):
        self.client, self.tq = client, task_queue
        self.ids: list[str] = []
        self.run = uuid.uuid4().hex[:6]

    async def open_up_to(self, target: int, concurrency: int) -> float:
        """Reports tickets until `target` are open; returns tickets per second."""
        from domain.steps import ReportTicket
        from workflows.messages import CODE, ReportCommand, StartTicket
        from workflows.ticket import TicketWorkflow, ticket_workflow_id

        report = ReportCommand(actor="C001", report=ReportTicket(
            customer="Dali No.1 Hospital", site="Dali", contact_phone="0872-1234567", product_model="PACS",
            symptoms="PACS slow", channel="phone", severity="major", zone="B"))
        todo = [f"cap{self.run}-{i:06d}" for i in range(len(self.ids), target)]
        queue: asyncio.Queue[str] = asyncio.Queue()
        for tid in todo:
            queue.put_nowait(tid)

        async def reporter() -> None:
            while not queue.empty():
                tid = queue.get_nowait()
                op = WithStartWorkflowOperation(TicketWorkflow.run, StartTicket(ticket_id=tid, code=CODE),
                                                id=ticket_workflow_id(tid), task_queue=self.tq,
                                                id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING)
                await self.client.execute_update_with_start_workflow(TicketWorkflow.report, report,
                                                                     start_workflow_operation=op, id="report")
                self.ids.append(tid)

        async def progress(t0: float, start: int) -> None:
            while True:
                await asyncio.sleep(15)
                done = len(self.ids) - start
                print(f"    {len(self.ids)}/{target} open, {done / (time.perf_counter() - t0):.0f}/s", flush=True)

        t0, start = time.perf_counter(), len(self.ids)
        watch = asyncio.create_task(progress(t0, start))
        try:
            await asyncio.gather(*(reporter() for _ in range(concurrency)))
        finally:
            watch.cancel()
        return len(todo) / (time.perf_counter() - t0) if todo else 0.0

    def calls(self, n: int, rng: random.Random):
        from workflows.messages import StepCommand
        from workflows.ticket import TicketWorkflow, ticket_workflow_id

        cmd = StepCommand(step="triage", actor="S001", data=TRIAGE)

        def call(tid: str):
            handle = self.client.get_workflow_handle(ticket_workflow_id(tid))
            return lambda: handle.execute_update(TicketWorkflow.step, cmd)

        self.last = rng.sample(self.ids, n)
        return [call(t) for t in self.last]

    async def breakdown(self, ids: list[str]) -> tuple[list[float], list[float], list[float]]:
        """From each ticket's history, its last step in ms: the workflow tasks' wait between
        the server scheduling them and the worker picking them up, the worker's time on
        them (started to completed, the local activities inside), and the whole span from
        the first task's scheduling to the Update's completion."""
        from workflows.ticket import ticket_workflow_id

        waits, works, spans = [], [], []
        for tid in ids:
            events = (await self.client.get_workflow_handle(ticket_workflow_id(tid)).fetch_history()).events
            kinds = [e.WhichOneof("attributes") for e in events]
            accepted = max(i for i, k in enumerate(kinds) if k == "workflow_execution_update_accepted_event_attributes")
            first = max(i for i in range(accepted) if kinds[i] == "workflow_task_scheduled_event_attributes")
            done = next(i for i in range(accepted, len(kinds))
                        if kinds[i] == "workflow_execution_update_completed_event_attributes")

            def at(i: int) -> float:
                return events[i].event_time.ToMilliseconds()

            wait = work = 0.0
            started = None
            for i in range(first, done + 1):
                if kinds[i] == "workflow_task_started_event_attributes":
                    started = i
                    wait += at(i) - at(i - 1)
                elif kinds[i] == "workflow_task_completed_event_attributes" and started is not None:
                    work += at(i) - at(started)
            waits.append(wait)
            works.append(work)
            spans.append(at(done) - at(first))
        return waits, works, spans


def bare_calls(handles):
    def call(h):
        return lambda: h.execute_update(BareWorkflow.step, 1)

    return [call(h) for h in handles]


# worker.py as deployed, with a probe that logs each garbage-collector pause of 5 ms or more
WORKER = """
import gc, runpy, sys, time
def pause(phase, info, t=[0.0]):
    if phase == "start":
        t[0] = time.perf_counter()
    elif (ms := (time.perf_counter() - t[0]) * 1000) >= 5:
        print(f"GC_PAUSE {time.time():.3f} {info['generation']} {ms:.1f}", file=sys.stderr, flush=True)
gc.callbacks.append(pause)
sys.argv = ["worker.py"]
runpy.run_path("worker.py", run_name="__main__")
"""


def start_worker(env: dict[str, str], log: Path) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", WORKER], cwd=str(ROOT), env=env,
                            stdout=log.open("ab"), stderr=subprocess.STDOUT)


def gc_pauses(log: Path, since: float, until: float) -> list[tuple[int, float]]:
    """The worker's GC pauses (generation, ms) of 5 ms or more logged between two instants."""
    out = []
    for line in log.read_text(errors="replace").splitlines():
        if line.startswith("GC_PAUSE "):
            _, at, gen, ms = line.split()
            if since <= float(at) <= until:
                out.append((int(gen), float(ms)))
    return out


class Profile:
    """py-spy recording the worker (raw folded stacks) while the block runs."""

    def __init__(self, prefix: str | None, pid: int, stage: int):
        self.cmd = None if not prefix else [str(Path(sys.executable).parent / "py-spy"), "record", "--gil",
                                            "--format", "raw", "-o", f"{prefix}-{stage}.txt", "--pid", str(pid)]

    def __enter__(self) -> None:
        self.proc = subprocess.Popen(self.cmd, stdout=subprocess.DEVNULL) if self.cmd else None
        if self.proc:
            time.sleep(1)

    def __exit__(self, *exc: object) -> None:
        if self.proc:
            self.proc.send_signal(signal.SIGINT)
            self.proc.wait(timeout=60)


async def measure(tickets: Tickets, client: Client, worker: subprocess.Popen, server: int, log: Path, stage: int,
                  cache: int, rate: float, sample: int, rounds: int, rng: random.Random, profile: str | None) -> dict:
    """One row: RSS now, then the step and the bare Update at 1 and 8 in flight."""
    row = {"open": stage, "cache": cache, "rate": rate, "worker": rss_mb(worker.pid), "server": rss_mb(server),
           "load": os.getloadavg()[0]}
    since = time.time()
    with Profile(profile, worker.pid, stage):
        for load in (1, 8):
            step: list[float] = []
            bare: list[float] = []
            for _ in range(rounds):
                bare_prepared = bare_calls(await bare_handles(client, sample))
                step += await timed(tickets.calls(min(sample, stage), rng), load)
                bare += await timed(bare_prepared, load)
            row[load] = (step, bare)
    row["inside"] = await tickets.breakdown(tickets.last[:20])  # steps of the last round at 8 in flight
    row["gc"] = gc_pauses(log, since, time.time())
    print_row(row)
    return row


def stop(worker: subprocess.Popen) -> None:
    worker.send_signal(signal.SIGTERM)
    try:
        worker.wait(timeout=30)
    except subprocess.TimeoutExpired:
        worker.kill()
        worker.wait()


async def main(stages: list[int], sample: int, rounds: int, store: str, cache: int | None, concurrency: int,
               pg_db: str, profile: str | None, seed: int, then_cache: int | None, server_cache: int | None) -> None:
    rng = random.Random(seed)
    # the dev server runs one history shard, which keeps 512 workflows' mutable state in memory
    # by default (history.cacheMaxSize): a step on one it does not hold reads it from its database
    with dev_server({"history.cacheMaxSize": server_cache} if server_cache else None) as (address, tmp):
        env = {**os.environ, "TEMPORAL_ADDRESS": address, "WEIBAO_TASK_QUEUE": "tickets", "WEIBAO_DATA_DIR": str(tmp),
               "WEIBAO_SECRET_KEY": "bench"}
        if store == "postgres":
            use_postgres(pg_db)
            env.update(WEIBAO_EVENT_STORE="postgres", POSTGRES_DBNAME=os.environ["POSTGRES_DBNAME"])
        else:
            env.update(WEIBAO_EVENT_STORE="sqlite", WEIBAO_SQLITE_PATH=str(tmp / "events.db"))
        if cache is not None:
            env["WEIBAO_WORKER_CACHE"] = str(cache)
        os.environ.update(env)
        from activities import config

        cache = config.settings().worker_cache
        log = tmp / "worker.log"
        worker = start_worker(env, log)
        server = child_pid("start-dev")
        print(f"event store {store}, worker cache {cache}, dev server cache {server_cache or 'default (512)'}, "
              f"worker pid {worker.pid}, dev server pid {server}, load average {os.getloadavg()[0]:.1f}", flush=True)
        client = await Client.connect(address, data_converter=pydantic_data_converter)
        tickets = Tickets(client, "tickets")
        rows = []
        try:
            bare_worker = Worker(client, task_queue="bare", workflows=[BareWorkflow], activities=[noop],
                                 activity_executor=ThreadPoolExecutor(16), max_cached_workflows=10_000)
            async with bare_worker:
                for stage in sorted({FIRST, *stages}):
                    print(f"opening tickets up to {stage}", flush=True)
                    rate = await tickets.open_up_to(stage, concurrency)
                    if not rows:  # warm up both paths
                        await timed(tickets.calls(min(sample, stage), rng), 8)
                        await timed(bare_calls(await bare_handles(client, 20)), 8)
                    rows.append(await measure(tickets, client, worker, server, log, stage, cache, rate, sample,
                                              rounds, rng, profile))
                if then_cache is not None:
                    # the same open tickets on a worker restarted with another cache (empty at first:
                    # what a smaller cache makes of random steps once it is full, minus its few hits)
                    stop(worker)
                    print(f"worker restarted with cache {then_cache}", flush=True)
                    worker = start_worker({**env, "WEIBAO_WORKER_CACHE": str(then_cache)}, log)
                    await asyncio.sleep(20)  # the old worker's sticky queue is given up on meanwhile
                    rows.append(await measure(tickets, client, worker, server, log, len(tickets.ids), then_cache,
                                              0.0, sample, rounds, rng, profile and f"{profile}-cache{then_cache}"))
        finally:
            stop(worker)
    print_table(rows, store, sample, rounds)


def print_row(row: dict) -> None:
    (s1, b1), (s8, b8) = row[1], row[8]
    print(f"  {row['open']} open, cache {row['cache']}: created {row['rate']:.0f}/s, worker {row['worker']:.0f} MB, "
          f"dev server {row['server']:.0f} MB; step p50 {pct(s1, 50):.1f} / {pct(s8, 50):.1f} ms at 1 / 8 in flight "
          f"(bare {pct(b1, 50):.1f} / {pct(b8, 50):.1f}), load average {row['load']:.1f}; worker GC pauses >= 5 ms "
          f"while timed: {len(row['gc'])}, {sum(ms for _, ms in row['gc']):.0f} ms in all, longest "
          f"{max((ms for _, ms in row['gc']), default=0):.0f} ms", flush=True)
    wait, work, span = row["inside"]
    print(f"    a step at 8 in flight, from its history (p50 of 20): task waits for the worker {pct(wait, 50):.0f} ms, "
          f"worker on the tasks {pct(work, 50):.0f} ms, first task scheduled to Update completed "
          f"{pct(span, 50):.0f} ms", flush=True)


def print_table(rows: list[dict], store: str, sample: int, rounds: int) -> None:
    print(f"\nevent store {store}, {sample} random tickets x {rounds} rounds per figure (p50 / p99 in ms)")
    print(f"{'open':>7} {'cache':>6} {'created/s':>9} {'worker MB':>9} {'server MB':>9} | {'step @1':>13} "
          f"{'bare @1':>13} | {'step @8':>13} {'bare @8':>13} | {'step/bare @8':>12} {'vs 50 @8':>8}")
    ref = pct(rows[0][8][0], 50)
    for r in rows:
        (s1, b1), (s8, b8) = r[1], r[8]

        def f(x: list[float]) -> str:
            return f"{pct(x, 50):.0f} / {pct(x, 99):.0f}"

        print(f"{r['open']:>7} {r['cache']:>6} {r['rate']:>9.0f} {r['worker']:>9.0f} {r['server']:>9.0f} | "
              f"{f(s1):>13} {f(b1):>13} | {f(s8):>13} {f(b8):>13} | {pct(s8, 50) / pct(b8, 50):>12.2f} "
              f"{pct(s8, 50) / ref:>8.2f}")
    first = rows[0]
    last = [r for r in rows if r["cache"] == first["cache"]][-1]
    if last["open"] <= last["cache"] and last["open"] > first["open"]:
        per = (last["worker"] - first["worker"]) * 1024 / (last["open"] - first["open"])
        print(f"worker RSS per cached open ticket: {per:.1f} KB ({first['open']} -> {last['open']} open)")
    ref_bare = pct(first[8][0], 50) / pct(first[8][1], 50)
    print(f"the same over the bare baseline: {pct(last[8][0], 50) / pct(last[8][1], 50) / ref_bare:.2f} "
          f"(step/bare p50 at 8 in flight, {last['open']} open / {first['open']} open)")
    print(f"ratio: {pct(last[8][0], 50) / ref:.2f}   (step p50 at 8 in flight, {last['open']} open / "
          f"{first['open']} open; goal <= 1.3)")


if __name__ == "__main__":
    p = argparse.ArgumentParser()
    p.add_argument("--stages", type=int, nargs="+", default=[1000, 10_000])
    p.add_argument("--sample", type=int, default=50, help="random tickets stepped per round")
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--store", choices=["sqlite", "postgres"], default="sqlite")
    p.add_argument("--cache", type=int, default=None, help="WEIBAO_WORKER_CACHE (default: the setting's)")
    p.add_argument("-c", "--concurrency", type=int, default=32, help="reports in flight while opening tickets")
    p.add_argument("--pg-db", default="bench_cap", help="the PostgreSQL database of --store postgres")
    p.add_argument("--profile", help="record the worker with py-spy into PREFIX-<open>.txt")
    p.add_argument("--seed", type=int, default=16)
    p.add_argument("--server-cache", type=int, help="the dev server's history.cacheMaxSize (default: its own, 512)")
    p.add_argument("--then-cache", type=int, help="after the last stage, restart the worker with this cache and "
                                                  "measure again")
    a = p.parse_args()
    asyncio.run(main(sorted(a.stages), a.sample, a.rounds, a.store, a.cache, a.concurrency, a.pg_db, a.profile,
                     a.seed, a.then_cache, a.server_cache))
