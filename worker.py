"""Runs the weibao worker: ticket, complaint, return/exchange, maintenance plan and
inspection workflows and their activities on one task queue, and the deliveries of their
warnings and escalations on a queue of their own beside it (`<queue>-delivery`).

    TEMPORAL_ADDRESS=localhost:7233 python worker.py
"""
from __future__ import annotations

import asyncio
import gc
import logging
import signal
from datetime import timedelta
from concurrent.futures import ThreadPoolExecutor
from contextlib import AsyncExitStack

from temporalio.api.workflowservice.v1 import GetSystemInfoRequest
from temporalio.client import Client
from temporalio.worker import UnsandboxedWorkflowRunner, Worker, WorkflowRunner
from temporalio.worker.workflow_sandbox import SandboxedWorkflowRunner

from activities import config, logs, telemetry
from activities import deliver  # noqa: F401 - apprise loaded at start, not by the first alarm burst's first plan
from activities.outbox import Outbox
from activities.store import open_store
from activities.temporal import connect
from activities.delivery import Deliveries, DeliveryStarter, delivery_queue
from activities.visits import Visits
from activities.record import Recorder
from activities.relay import DeliveryRelay
from workflows.complaint import ComplaintWorkflow
from workflows.delivery import DeliveryWorkflow
from workflows.inspection import InspectionWorkflow
from workflows.plan import PlanWorkflow
from workflows import search
from workflows.returns import ReturnWorkflow
from workflows.ticket import TicketWorkflow

log = logging.getLogger("weibao.worker")
WORKFLOWS = [TicketWorkflow, ComplaintWorkflow, ReturnWorkflow, PlanWorkflow, InspectionWorkflow, DeliveryWorkflow]


def workflow_runner() -> WorkflowRunner:
    """Where the workflows run: outside the SDK's sandbox unless `WEIBAO_WORKFLOW_SANDBOX`.

    The sandbox re-imports a workflow's module for every run it caches and proxies every
    call the workflow's code makes; it cost a ticket's lifecycle 11-12 % of its throughput
    and each cached case about 40 KB (bench/lifecycle.py, bench/capacity.py; README "Temporal
    conventions"). What it guards against — reading the clock,
    randomness, I/O, module state shared between runs — weibao's workflows do not do: they
    read time as `workflow.now()`, make no ids, do everything else in activities, and pass
    every module but their own through the sandbox anyway, so their code is the same either
    way. The net stays where mistakes are made: the workflow tests (tests/workflows) run
    every workflow in the sandbox, and the replay tests replay the recorded histories in it."""
    return SandboxedWorkflowRunner() if config.settings().workflow_sandbox else UnsandboxedWorkflowRunner()


class Workers:
    """The workers of one process, run together (`async with`): the cases' on their task
    queue and the deliveries' on theirs (activities.delivery.delivery_queue), and the relay
    that starts the deliveries the cases' alarms leave in the outbox (activities/relay.py)."""

    def __init__(self, *workers: Worker, relay: DeliveryRelay):
        self.workers, self.relay = workers, relay

    async def __aenter__(self) -> "Workers":
        async with AsyncExitStack() as stack:
            for w in self.workers:
                await stack.enter_async_context(w)
            await stack.enter_async_context(self.relay)
            self._stack = stack.pop_all()
        return self

    async def __aexit__(self, *exc) -> None:
        await self._stack.__aexit__(*exc)


def build_worker(client: Client, recorder: Recorder, task_queue: str | None = None,
                 executor: ThreadPoolExecutor | None = None, **options) -> Workers:
    """The worker, its sizes taken together: `WEIBAO_WORKER_THREADS` threads for the local
    activities (the appends a step or an alarm waits for) and `WEIBAO_DELIVERY_SLOTS` more
    for the regular ones, one executor of both sizes, so a slot never waits for a thread;
    `WEIBAO_WORKER_CACHE` open cases stay in memory (a case evicted replays its history on
    its next step). Beside it, on the deliveries' own task queue, a worker for the Delivery
    workflows with `WEIBAO_DELIVERY_SLOTS` slots and threads of its own: a send, a burst of
    them or a mail server that hangs never holds a slot, a thread or a workflow task that
    an alarm or a step is waiting for. (Deliveries started before it had its own queue
    finish on the cases' queue, where the Delivery workflow and its activities stay.)"""
    s = config.settings()
    local, deliveries = s.worker_threads, s.delivery_slots
    if executor is not None:  # a caller's executor: its threads split the same way
        local = max(1, executor._max_workers * s.worker_threads // (s.worker_threads + s.delivery_slots))
        deliveries = max(1, executor._max_workers - local)
    sizes = dict(max_cached_workflows=s.worker_cache, max_concurrent_local_activities=local,
                 max_concurrent_activities=deliveries, graceful_shutdown_timeout=timedelta(seconds=10),
                 workflow_runner=workflow_runner())
    queue = task_queue or config.task_queue()
    sending = Deliveries(recorder.org, recorder.outbox).all()
    cases = Worker(
        client,
        task_queue=queue,
        workflows=WORKFLOWS,
        # the client lets a plan start its visits and an inspection finding open a fault ticket
        activities=[*recorder.all(), *Visits(client).all(), *sending, *DeliveryStarter(client, recorder.org).all()],
        activity_executor=executor or ThreadPoolExecutor(max_workers=local + deliveries),
        **{**sizes, **options},
    )
    delivery = Worker(
        client,
        task_queue=delivery_queue(queue),
        workflows=[DeliveryWorkflow],
        activities=[recorder.record_case, *sending],  # what the Delivery workflow calls
        activity_executor=ThreadPoolExecutor(max_workers=s.delivery_slots, thread_name_prefix="delivery"),
        max_concurrent_local_activities=s.delivery_slots, max_concurrent_activities=s.delivery_slots,
        graceful_shutdown_timeout=timedelta(seconds=10), workflow_runner=workflow_runner(),
    )
    return Workers(cases, delivery, relay=DeliveryRelay(client, recorder, queue))


async def main() -> None:
    settings, org = config.startup()  # a bad setting or org file: one line on stderr, exit 2
    logs.setup()
    telemetry.setup_tracing("weibao-worker")  # only when OTEL_EXPORTER_OTLP_ENDPOINT is set
    runtime, sdk_metrics = telemetry.sdk_runtime()  # the SDK's own metrics, served on our port
    recorder = Recorder(open_store(), org, Outbox())
    client = await connect(runtime=runtime)
    await search.register(client)  # the attributes every case upserts (workflows/search.py)
    worker = build_worker(client, recorder)
    # what start-up made (modules, classes, the org, the connections) lives as long as the
    # process: out of the collector's reach, so a full collection — which every Update in
    # flight waits out (README "Performance") — walks only what the cases made since
    gc.collect()
    gc.freeze()
    log.info("worker on %s, task queues %s and %s, event store %s, org %s (%d staff)",
             client.service_client.config.target_host, settings.task_queue, delivery_queue(settings.task_queue),
             settings.event_store,
             settings.org_file, len(org.staff))
    # SIGINT or SIGTERM (whatever the disposition inherited from the parent) drains the
    # worker: in-flight tasks finish while the server still answers, then it exits
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        asyncio.get_running_loop().add_signal_handler(sig, stop.set)
    ops = telemetry.serve_ops("worker", settings.metrics_host, settings.worker_metrics_port,
                              ready_checks(client, recorder, asyncio.get_running_loop()), sdk_metrics)
    try:
        async with worker:
            await stop.wait()
            log.info("worker stopping")
    finally:
        telemetry.flush_traces()
        if ops is not None:
            ops.close()


def ready_checks(client: Client, recorder: Recorder, loop: asyncio.AbstractEventLoop) -> dict:
    """What `/readyz` on the worker's metrics port asks: Temporal and the event store answer."""
    def temporal() -> None:
        call = client.workflow_service.get_system_info(GetSystemInfoRequest(), timeout=timedelta(seconds=3))
        asyncio.run_coroutine_threadsafe(call, loop).result(timeout=telemetry.CHECK_SECONDS)

    return {"temporal": temporal, "event_store": recorder.store.recorder.max_notification_id}


if __name__ == "__main__":
    asyncio.run(main())
