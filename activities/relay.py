"""The delivery relay: starts the Delivery workflows (workflows/delivery.py) that alarms
left in the outbox (`delivery_starts`), in every worker process, for the cases on its
task queue.

An alarm records its breach, its warning or escalation, the notification and the delivery
to start in one local activity (`raise_alarm`, since the patch `deliveries-by-relay`), and
its workflow task completes without starting anything: a Temporal start inside the alarm's
task cost the server more than the alarm itself, in the middle of the burst of alarms that
share a deadline (bench/escalation_lag.py: breach p99 with the starts in the burst about
twice the bare timers', without them at par). The relay starts the deliveries once this
process has raised no alarm for `QUIET` seconds, and never later than `MAX_DEFER` seconds
after it was woken, so the alarms due together are recorded first and their mails follow;
a single alarm's mail waits `QUIET` seconds.

Nothing is lost to a crash: the delivery to start is on record with the alarm (the local
activity runs again until its task completes), and the relay scans for deliveries not yet
started when it starts and every `SCAN` seconds, so a worker that died between the alarm
and the start leaves them to the next worker on the queue. A delivery starts once however
often it is tried (its workflow id is the notification's; activities.delivery.start_delivery)."""
from __future__ import annotations

import asyncio
import logging
import time
from contextlib import suppress

from temporalio.client import Client

from activities.delivery import DeliveryRequest, start_delivery
from activities.record import Recorder

log = logging.getLogger("weibao.relay")

QUIET = 0.25  # seconds without an alarm in this process before its deliveries start
MAX_DEFER = 10.0  # a stream of alarms holds the deliveries back no longer than this
SCAN = 5.0  # seconds between looks for deliveries nobody woke the relay for
BATCH = 100  # deliveries read at a time
STARTS = 8  # starts in flight at once
STOP = 10.0  # seconds a stopping relay gives the look in progress before it is cancelled


def ready(now: float, last_alarm: float, woken: float) -> bool:
    """Whether the deliveries may start now: no alarm raised here for QUIET seconds, or the
    relay has held them back for MAX_DEFER."""
    return now - last_alarm >= QUIET or now - woken >= MAX_DEFER


class DeliveryRelay:
    """Runs beside the workers of a process (`async with`, worker.Workers)."""

    def __init__(self, client: Client, recorder: Recorder, task_queue: str):
        self.client, self.recorder, self.task_queue = client, recorder, task_queue
        self._wake = asyncio.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._task: asyncio.Task | None = None
        self._stopping = False

    def wake(self) -> None:
        """From any thread (`raise_alarm` runs on the worker's): a delivery is waiting."""
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self._wake.set)

    async def __aenter__(self) -> "DeliveryRelay":
        self._loop = asyncio.get_running_loop()
        self.recorder.relays.append(self.wake)
        self._task = asyncio.create_task(self._run(), name=f"delivery relay {self.task_queue}")
        return self

    async def __aexit__(self, *exc) -> None:
        """Stop after the look in progress: a read or a start cut off by a cancellation would go
        on in its thread after the relay and its outbox are gone."""
        self.recorder.relays.remove(self.wake)
        self._stopping = True
        self._wake.set()
        if self._task is not None:
            with suppress(asyncio.CancelledError, asyncio.TimeoutError):
                await asyncio.wait_for(self._task, STOP)

    async def _run(self) -> None:
        while not self._stopping:
            try:
                more = await self.relay()
            except Exception:  # the store or Temporal unreachable: the rows wait for the next look
                log.warning("delivery relay on %s: will try again in %.0f s", self.task_queue, SCAN, exc_info=True)
                more = False
            if more or self._stopping:
                continue
            with suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._wake.wait(), SCAN)

    async def relay(self) -> bool:
        """Start the deliveries waiting, once the alarms let them; True when more are waiting."""
        self._wake.clear()
        woken = time.monotonic()
        while not ready(time.monotonic(), self.recorder.last_alarm, woken):
            if self._stopping:
                return False
            await asyncio.sleep(QUIET)
        outbox = self.recorder.outbox
        if outbox is None:
            return False
        rows = await asyncio.to_thread(outbox.unstarted, self.task_queue, BATCH)
        gate = asyncio.Semaphore(STARTS)

        async def start(notice: str, request: str) -> str | None:
            async with gate:
                try:
                    await start_delivery(self.client, self.recorder.org, DeliveryRequest.model_validate_json(request),
                                         self.task_queue)
                    return notice
                except Exception:
                    log.warning("delivery %s not started; will try again", notice, exc_info=True)
                    return None

        started = [n for n in await asyncio.gather(*(start(n, r) for n, r in rows)) if n is not None]
        if started:
            await asyncio.to_thread(outbox.started, started)
            log.debug("started %d deliveries on %s", len(started), self.task_queue)
        return len(rows) == BATCH and len(started) == len(rows)
