"""What metrics and tracing cost a full ticket lifecycle (issue 17; goal: at most 5 %).

    .venv/bin/python bench/observability.py [-n 200] [-c 8] [--rounds 3]

One dev server (SQLite file, WAL), one SQLite event store, two workers in this process on
two task queues, each with its own client: "off" as the tests and `bench/lifecycle.py` run
it (the SDK's default runtime, no plugin); "on" as `python worker.py` runs it with
OTEL_EXPORTER_OTLP_ENDPOINT set — the Temporal SDK runtime's Prometheus metrics (scraped
through the worker's ops server once a second while it runs), the SDK's OpenTelemetry
plugin on client and worker, the event store's append span, every span exported over
OTLP/HTTP in batches to a stand-in collector (a separate process that answers 200).
Rounds alternate which goes first. Lifecycles are `bench/lifecycle.py`'s: report + six
steps, each an Update recorded by the worker. Prints, for both, lifecycles/s (the best
round) and the CPU time this process spends per lifecycle (the median round: clients,
workers, the SDK core's threads and the span exporter; the dev server and the collector are
other processes), and the overhead by each. On a shared machine the throughput moves by a
factor of two between rounds with the others' load; the CPU per lifecycle is the steadier
figure."""
from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import textwrap
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from temporalio.client import Client  # noqa: E402
from temporalio.contrib.pydantic import pydantic_data_converter  # noqa: E402

from bench.common import dev_server, free_port  # noqa: E402
from bench.lifecycle import run_many, ticket_one  # noqa: E402

COLLECTOR = textwrap.dedent("""
    import sys
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    class Sink(BaseHTTPRequestHandler):
        def do_POST(self):
            self.rfile.read(int(self.headers.get("Content-Length", 0)))
            self.send_response(200)
            self.send_header("Content-Type", "application/x-protobuf")
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args):
            pass

    ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), Sink).serve_forever()
""")


async def scraping(url: str, stop: asyncio.Event) -> int:
    """Scrape `url` once a second until `stop`, as Prometheus would (more often than its default)."""
    import httpx

    scrapes = 0
    async with httpx.AsyncClient() as http:
        while not stop.is_set():
            (await http.get(url)).raise_for_status()
            scrapes += 1
            try:
                await asyncio.wait_for(stop.wait(), 1.0)
            except asyncio.TimeoutError:
                pass
    return scrapes


def cpu_seconds() -> float:
    """User and system CPU time of this process (its threads included: the SDK core's, the exporter's)."""
    t = os.times()
    return t.user + t.system


async def main(n: int, concurrency: int, rounds: int, switched: str = "both", temporal_spans: bool = True) -> None:
    collector_port = free_port()
    collector = subprocess.Popen([sys.executable, "-c", COLLECTOR, str(collector_port)])
    try:
        with dev_server() as (address, tmp):
            os.environ.update(WEIBAO_EVENT_STORE="sqlite", WEIBAO_SQLITE_PATH=str(tmp / "events.db"),
                              OTEL_EXPORTER_OTLP_ENDPOINT=f"http://127.0.0.1:{collector_port}")
            from activities import config, telemetry
            from activities.outbox import Outbox
            from activities.record import Recorder
            from activities.store import open_store
            from worker import build_worker

            assert telemetry.setup_tracing("weibao-bench")
            runtime, sdk_metrics = telemetry.sdk_runtime()
            ops = telemetry.OpsServer("127.0.0.1", free_port(), {}, sdk_metrics).start()
            off = await Client.connect(address, data_converter=pydantic_data_converter)
            metrics, tracing = switched in ("both", "metrics"), switched in ("both", "tracing")
            on = await Client.connect(address, data_converter=pydantic_data_converter,
                                      runtime=runtime if metrics else None,
                                      plugins=telemetry.plugins(temporal_spans) if tracing else [])
            acts = Recorder(open_store(), config.load_org(), Outbox())

            async def measure(which: str, count: int) -> tuple[float, float]:
                """(lifecycles/s, CPU ms of this process — clients, workers, exporter — per lifecycle)."""
                telemetry._tracing = which == "on" and tracing  # the append's span (the clients' plugins are fixed)
                cpu = cpu_seconds()
                if which == "off":
                    rate = await run_many(ticket_one, off, "off", count, concurrency)
                    return rate, (cpu_seconds() - cpu) * 1000 / count
                stop = asyncio.Event()
                scraper = asyncio.create_task(scraping(f"http://{ops.address}/metrics", stop)) if metrics else None
                try:
                    rate = await run_many(ticket_one, on, "on", count, concurrency)
                finally:
                    stop.set()
                    if scraper is not None:
                        await scraper
                telemetry.flush_traces()  # the batch exporter's work on this round's spans counts to it
                return rate, (cpu_seconds() - cpu) * 1000 / count

            async with build_worker(off, acts, task_queue="off"), build_worker(on, acts, task_queue="on"):
                await measure("off", 10)  # warm up both paths
                await measure("on", 10)
                best = {"off": 0.0, "on": 0.0}
                cpu: dict[str, list[float]] = {"off": [], "on": []}
                for r in range(rounds):
                    order = ("off", "on") if r % 2 == 0 else ("on", "off")
                    got = {which: await measure(which, n) for which in order}
                    print(f"round {r + 1}: off {got['off'][0]:.1f}/s {got['off'][1]:.1f} ms CPU each, "
                          f"on {got['on'][0]:.1f}/s {got['on'][1]:.1f} ms CPU each "
                          f"({' first, '.join(order)} second)", flush=True)
                    best = {k: max(best[k], got[k][0]) for k in best}
                    for k in cpu:
                        cpu[k].append(got[k][1])
            telemetry._tracing = True
            telemetry.flush_traces()
            ops.close()
    finally:
        collector.terminate()
        collector.wait()
    print(f"N={n} concurrency={concurrency} rounds={rounds} event store=sqlite; switched on: {switched} "
          "(spans exported over OTLP/HTTP)")
    mid = {k: statistics.median(v) for k, v in cpu.items()}
    print(f"off: {best['off']:.1f} lifecycles/s at best, {mid['off']:.1f} ms CPU per lifecycle (median)")
    print(f"on:  {best['on']:.1f} lifecycles/s at best, {mid['on']:.1f} ms CPU per lifecycle (median)")
    print(f"overhead: throughput {(1 - best['on'] / best['off']) * 100:.1f} %, "
          f"CPU per lifecycle {(mid['on'] / mid['off'] - 1) * 100:.1f} % (goal <= 5 %)")


if __name__ == "__main__":
    p = argparse.ArgumentParser()
    p.add_argument("-n", type=int, default=200)
    p.add_argument("-c", "--concurrency", type=int, default=8)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--switch", choices=["both", "metrics", "tracing", "none"], default="both",
                   help="what the 'on' worker has switched on (default both; none: the two alike, for the noise)")
    p.add_argument("--no-temporal-spans", action="store_true",
                   help="the plugin only carries the context (no spans of its own for Updates and activities)")
    a = p.parse_args()
    started = time.perf_counter()
    asyncio.run(main(a.n, a.concurrency, a.rounds, a.switch, not a.no_temporal_spans))
    print(f"({time.perf_counter() - started:.0f} s)")
