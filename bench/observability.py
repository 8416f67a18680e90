"""What metrics and tracing cost a full ticket lifecycle (issue 17; goal: at most 5 %).

    .venv/bin/python bench/observability.py [-n 20] [-c 8] [--rounds 30] [--switch both]

One dev server (SQLite file, WAL), one SQLite event store, two workers in this process on
two task queues, each with its own client: "off" as the tests and `bench/lifecycle.py` run
it (the SDK's default runtime, no plugin); "on" as `python worker.py` runs it with
OTEL_EXPORTER_OTLP_ENDPOINT set — the Temporal SDK runtime's Prometheus metrics (scraped
through the worker's ops server once a second while it runs), weibao's trace context on
client and worker (activities/trace_context.py; `--sdk-plugin`: the SDK's OpenTelemetry
plugin instead), the event store's append span, every span exported over OTLP/HTTP in
batches to a stand-in collector (a separate process that answers 200). Lifecycles are
`bench/lifecycle.py`'s: report + six steps, each an Update recorded by the worker.

The two run in pairs of short rounds back to back (which goes first alternates): the
shared machine's speed moves by a third from one minute to the next, so figures from two
long phases, or a best and a median taken apart, compare different machines. Prints, for
both, the median lifecycles/s and the CPU time this process spends per lifecycle (clients,
workers, the SDK core's threads and the span exporter; the dev server and the collector
are other processes), then the overhead as the median of the pairs' ratios with its
quartiles. `--switch none` runs the two alike: what it prints is the measurement's own
error."""
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

from bench.common import dev_server, free_port, paired  # noqa: E402
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


async def main(n: int, concurrency: int, rounds: int, switched: str = "both", sdk_plugin: bool = False) -> None:
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

            assert telemetry.setup_tracing("weibao-bench", replay_safe=sdk_plugin)
            runtime, sdk_metrics = telemetry.sdk_runtime()
            ops = telemetry.OpsServer("127.0.0.1", free_port(), {}, sdk_metrics).start()
            off = await Client.connect(address, data_converter=pydantic_data_converter)
            metrics, tracing = switched in ("both", "metrics"), switched in ("both", "tracing")
            on = await Client.connect(address, data_converter=pydantic_data_converter,
                                      runtime=runtime if metrics else None,
                                      plugins=telemetry.plugins(sdk_plugin) if tracing else [])
            acts = Recorder(open_store(), config.load_org(), Outbox())

            async def measure(which: str, count: int) -> tuple[float, float]:
                """(lifecycles/s, CPU ms of this process — clients, workers, exporter — per lifecycle)."""
                telemetry._tracing = which == "on" and tracing  # the append's span (the clients' plugins are fixed)
                cpu = time.process_time()
                if which == "off":
                    rate = await run_many(ticket_one, off, "off", count, concurrency)
                    return rate, (time.process_time() - cpu) * 1000 / count
                stop = asyncio.Event()
                scraper = asyncio.create_task(scraping(f"http://{ops.address}/metrics", stop)) if metrics else None
                try:
                    rate = await run_many(ticket_one, on, "on", count, concurrency)
                finally:
                    stop.set()
                    if scraper is not None:
                        await scraper
                telemetry.flush_traces()  # the batch exporter's work on this round's spans counts to it
                return rate, (time.process_time() - cpu) * 1000 / count

            async with build_worker(off, acts, task_queue="off"), build_worker(on, acts, task_queue="on"):
                await measure("off", 10)  # warm up both paths
                await measure("on", 10)
                got: dict[str, list[tuple[float, float]]] = {"off": [], "on": []}
                for r in range(rounds):
                    order = ("off", "on") if r % 2 == 0 else ("on", "off")
                    for which in order:
                        got[which].append(await measure(which, n))
                    if (r + 1) % 10 == 0 or r + 1 == rounds:
                        print(f"{r + 1}/{rounds} pairs: CPU per lifecycle, on/off this pair "
                              f"{got['on'][-1][1]:.1f}/{got['off'][-1][1]:.1f} ms", flush=True)
            telemetry._tracing = True
            telemetry.flush_traces()
            ops.close()
    finally:
        collector.terminate()
        collector.wait()
    print(f"N={n} concurrency={concurrency} rounds={rounds} event store=sqlite; switched on: {switched} "
          f"(spans exported over OTLP/HTTP; tracing by {'the SDK plugin' if sdk_plugin else 'trace_context'})")
    for k in ("off", "on"):
        rates, cpus = [g[0] for g in got[k]], [g[1] for g in got[k]]
        print(f"{k + ':':4} {statistics.median(rates):.1f} lifecycles/s, {statistics.median(cpus):.1f} ms CPU per "
              f"lifecycle (medians over the rounds; CPU {min(cpus):.1f}-{max(cpus):.1f})")
    # each pair ran back to back, so a pair's ratio is free of the machine's slower and faster minutes
    slower = paired([off[0] / on[0] for off, on in zip(got["off"], got["on"])])
    dearer = paired([on[1] / off[1] for off, on in zip(got["off"], got["on"])])
    mid, low, high = ((x - 1) * 100 for x in slower)
    cpu_mid, cpu_low, cpu_high = ((x - 1) * 100 for x in dearer)
    print(f"overhead (median of the {rounds} pairs' ratios, quartiles in brackets): "
          f"throughput {mid:.1f} % [{low:.1f}, {high:.1f}], "
          f"CPU per lifecycle {cpu_mid:.1f} % [{cpu_low:.1f}, {cpu_high:.1f}] (goal <= 5 %)")


if __name__ == "__main__":
    p = argparse.ArgumentParser()
    p.add_argument("-n", type=int, default=20, help="lifecycles per round (default 20)")
    p.add_argument("-c", "--concurrency", type=int, default=8)
    p.add_argument("--rounds", type=int, default=30, help="pairs of rounds, on and off back to back (default 30)")
    p.add_argument("--switch", choices=["both", "metrics", "tracing", "none"], default="both",
                   help="what the 'on' worker has switched on (default both; none: the two alike, for the noise)")
    p.add_argument("--sdk-plugin", action="store_true",
                   help="trace with the Temporal SDK's OpenTelemetryPlugin (spans in the workflows too) instead of "
                        "weibao's trace context (activities/trace_context.py), for comparison")
    a = p.parse_args()
    started = time.perf_counter()
    asyncio.run(main(a.n, a.concurrency, a.rounds, a.switch, a.sdk_plugin))
    print(f"({time.perf_counter() - started:.0f} s)")
