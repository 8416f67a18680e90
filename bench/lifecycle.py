"""Full ticket lifecycles per second through the worker, against the floor this design
stands on: bare workflows taking as many Updates, each running a no-op local activity.

    .venv/bin/python bench/lifecycle.py [-n 25] [--rounds 20] [-c 8] [--store sqlite|postgres|both]
                                        [--bare-unsandboxed] [--bare-indexed] [--code N]

Both run in the same process on the same dev server (SQLite file, WAL), in pairs of short
rounds back to back (which goes first alternates), so that each pair meets the shared
machine at the same speed; "ratio: X" is the median of the pairs' ratios (with its
quartiles, and the best round of each over the other as this bench printed it before). The
event store is SQLite (a file beside the dev server's) unless --store says postgres:
then the PostgreSQL of POSTGRES_HOST/PORT/USER/PASSWORD, database --pg-db (created if
missing; tickets get new ids, so nothing is dropped); `both` runs one after the other.

weibao's worker is built as `worker.py` builds it, so its workflows run outside the SDK's
sandbox unless WEIBAO_WORKFLOW_SANDBOX=true; the bare workflows run in it (the SDK's
default) unless --bare-unsandboxed, which takes the sandbox's cost out of the baseline too.
--bare-indexed has each bare Update also upsert one search attribute, as each of the
ticket's Updates does (bench/bare.py): the baseline then writes to the dev server's
visibility store as often as the tickets do.
The tickets are started as today's API starts them (workflows/messages.CODE) unless
--code 0 starts them as runs started before it were: asking `workflow.patched` at each
change, with a marker and a TemporalChangeVersion upsert for each."""
from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from temporalio.client import Client, WithStartWorkflowOperation  # noqa: E402
from temporalio.common import WorkflowIDConflictPolicy  # noqa: E402
from temporalio.contrib.pydantic import pydantic_data_converter  # noqa: E402
from temporalio.worker import UnsandboxedWorkflowRunner, Worker  # noqa: E402

from bench.bare import UPDATES, BareWorkflow, noop  # noqa: E402
from bench.common import dev_server, paired, use_postgres  # noqa: E402

STEPS = [  # report + these six = the seven steps of a lifecycle
    ("triage", "S001", {"severity": "critical", "zone": "A", "service_category": "free"}),
    ("dispatch", "S001", {"engineer": "E001", "travel_mode": "taxi"}),
    ("arrive", "E001", {"staff_id_shown": True}),
    ("resolve", "E001", {"cause": "PSU failed", "resolution": "replaced PSU", "parts_used": ["PSU"]}),
    ("sign-off", "E001", {"signature": "Li Wei", "satisfaction": 5}),
    ("close", "S001", {"time_rating": 5, "quality_rating": 5}),
]
assert UPDATES == 1 + len(STEPS)


BARE_UPDATE = BareWorkflow.step  # --bare-indexed: BareWorkflow.indexed_step


async def bare_one(client: Client, tq: str) -> None:
    op = WithStartWorkflowOperation(BareWorkflow.run, id=f"bare-{uuid.uuid4()}", task_queue=tq,
                                    id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING)
    await client.execute_update_with_start_workflow(BARE_UPDATE, 0, start_workflow_operation=op)
    handle = await op.workflow_handle()
    for i in range(1, UPDATES):
        await handle.execute_update(BARE_UPDATE, i)
    await handle.result()


START_CODE: int | None = None  # --code: None for today's


async def ticket_one(client: Client, tq: str) -> None:
    from domain.steps import ReportTicket
    from workflows.messages import CODE
    from workflows.ticket import ReportCommand, StartTicket, StepCommand, TicketWorkflow, ticket_workflow_id

    tid = f"b{uuid.uuid4().hex[:12]}"
    code = CODE if START_CODE is None else START_CODE
    op = WithStartWorkflowOperation(TicketWorkflow.run, StartTicket(ticket_id=tid, code=code),
                                    id=ticket_workflow_id(tid),
                                    task_queue=tq, id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING)
    report = ReportTicket(customer="Kunming No.2 Hospital", site="Kunming", contact_phone="0871-1234567",
                          product_model="HIS-Server", symptoms="HIS down", channel="phone",
                          severity="critical", zone="A")
    await client.execute_update_with_start_workflow(
        TicketWorkflow.report, ReportCommand(actor="C001", report=report), start_workflow_operation=op, id="report")
    handle = await op.workflow_handle()
    for name, actor, data in STEPS:
        await handle.execute_update(TicketWorkflow.step, StepCommand(step=name, actor=actor, data=data))
    await handle.result()


async def run_many(fn, client: Client, tq: str, n: int, concurrency: int) -> float:
    sem = asyncio.Semaphore(concurrency)

    async def one() -> None:
        async with sem:
            await fn(client, tq)

    t0 = time.perf_counter()
    await asyncio.gather(*(one() for _ in range(n)))
    return n / (time.perf_counter() - t0)


async def main(n: int, concurrency: int, rounds: int, store: str = "sqlite", pg_db: str = "weibao_bench",
               bare_unsandboxed: bool = False) -> None:
    with dev_server() as (address, tmp):
        if store == "postgres":
            use_postgres(pg_db)
        else:
            os.environ.update(WEIBAO_EVENT_STORE="sqlite", WEIBAO_SQLITE_PATH=str(tmp / "events.db"))
        from activities import config
        from activities.outbox import Outbox
        from activities.store import open_store
        from activities.record import Recorder
        from worker import build_worker

        client = await Client.connect(address, data_converter=pydantic_data_converter)
        acts = Recorder(open_store(), config.load_org(), Outbox())
        bare_worker = Worker(client, task_queue="bare", workflows=[BareWorkflow], activities=[noop],
                             activity_executor=ThreadPoolExecutor(16),
                             **({"workflow_runner": UnsandboxedWorkflowRunner()} if bare_unsandboxed else {}))
        async with bare_worker, build_worker(client, acts, task_queue="tickets"):
            await run_many(bare_one, client, "bare", 10, concurrency)  # warm up both paths
            await run_many(ticket_one, client, "tickets", 10, concurrency)
            paths = {"bare": (bare_one, "bare"), "weibao": (ticket_one, "tickets")}
            rates: dict[str, list[float]] = {"bare": [], "weibao": []}
            for r in range(rounds):
                for which in (("bare", "weibao") if r % 2 == 0 else ("weibao", "bare")):
                    one, tq = paths[which]
                    rates[which].append(await run_many(one, client, tq, n, concurrency))
                if (r + 1) % 5 == 0 or r + 1 == rounds:
                    print(f"{r + 1}/{rounds} pairs: bare {rates['bare'][-1]:.1f}/s, weibao {rates['weibao'][-1]:.1f}/s",
                          flush=True)
    ratio, low, high = paired([t / b for t, b in zip(rates["weibao"], rates["bare"])])
    print(f"N={n} per round, {rounds} pairs, concurrency={concurrency} updates per lifecycle={UPDATES} "
          f"event store={store} bare workflows {'outside' if bare_unsandboxed else 'in'} the sandbox"
          f"{'' if START_CODE is None else f' tickets started as code {START_CODE}'}"
          f"{' bare Updates upserting a search attribute' if BARE_UPDATE is not BareWorkflow.step else ''}")
    what = "and an upsert " if BARE_UPDATE is not BareWorkflow.step else ""
    print(f"bare workflows (no-op local activity {what}per Update): {statistics.median(rates['bare']):.1f} lifecycles/s "
          f"(median round; best {max(rates['bare']):.1f})")
    print(f"weibao ticket lifecycles:                          {statistics.median(rates['weibao']):.1f} lifecycles/s "
          f"(median round; best {max(rates['weibao']):.1f})")
    print(f"ratio: {ratio:.2f} (median of the pairs' ratios; quartiles {low:.2f}-{high:.2f}; "
          f"best round over best round {max(rates['weibao']) / max(rates['bare']):.2f})")


if __name__ == "__main__":
    p = argparse.ArgumentParser()
    p.add_argument("-n", type=int, default=25, help="lifecycles per round (default 25)")
    p.add_argument("-c", "--concurrency", type=int, default=8)
    p.add_argument("--rounds", type=int, default=20, help="pairs of rounds (default 20)")
    p.add_argument("--store", choices=["sqlite", "postgres", "both"], default="sqlite")
    p.add_argument("--pg-db", default="weibao_bench", help="the PostgreSQL database of --store postgres")
    p.add_argument("--bare-unsandboxed", action="store_true", help="the bare workflows outside the sandbox too")
    p.add_argument("--code", type=int, default=None,
                   help="start the tickets as workflow code N (0: as runs started before workflows/messages.CODE)")
    p.add_argument("--bare-indexed", action="store_true",
                   help="each bare Update also upserts one search attribute, as each ticket Update does")
    a = p.parse_args()
    START_CODE = a.code
    if a.bare_indexed:
        BARE_UPDATE = BareWorkflow.indexed_step
    for kind in (["sqlite", "postgres"] if a.store == "both" else [a.store]):
        asyncio.run(main(a.n, a.concurrency, a.rounds, kind, a.pg_db, a.bare_unsandboxed))
