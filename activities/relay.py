"""The delivery relay: sends the first round of the deliveries that alarms left in the
outbox (`delivery_starts`) and starts their Delivery workflows (workflows/delivery.py), in
every worker process, for the cases on its task queue.

An alarm records its breach, its warning or escalation, the notification and the delivery
to start in one local activity (`raise_alarm`, since the patch `deliveries-by-relay`), and
its workflow task completes without starting anything: a Temporal start inside the alarm's
task cost the server more than the alarm itself, in the middle of the burst of alarms that
share a deadline (bench/escalation_lag.py: breach p99 with the starts in the burst about
twice the bare timers', without them at par).

Once this process has raised no alarm for `QUIET` seconds (never later than `MAX_DEFER`
after it was woken), so the alarms due together are recorded first, the relay claims the
deliveries waiting (`Outbox.claim`) and sends the first round of each on its channels, on
`WEIBAO_DELIVERY_SLOTS` threads of its own, each attempt on record in
`notification_attempts` as the `deliver` activity records it; then it starts their
Delivery workflows, which own the rest. A workflow's first task finds its round on record
as sent and records `NotificationSent` on the case; a round that failed here is sent again
by its activities on their whole retry budget, as if the relay had not tried; the
acknowledgement and its re-send are the workflow's own. A send costs the Temporal server
nothing: before, each mail waited for its workflow's start and first task, 200 of them
behind a burst (bench/escalation_lag.py: mail p99 7.3 s, 5.7 s with the relay sending).
Sending in the burst instead, before the pause, put the mails beside the breaches but made
the alarms late (breach p99 1.4 times the bare timers', leadership p99 3.6 s against 1 s).

- A channel that fails here is not tried again by the relay in the same look (one look of
  a mail server that hangs costs the sends in flight one timeout, not one per delivery).
- The relay sends a round only within `FRESH` seconds of its alarm and of its claim. A claim
  lapses after `lease()` seconds (FRESH and a send's two timeouts: 30 s by default), so a
  relay that died holding one leaves it to the next look of any relay on the queue, which
  finds it old and only starts its workflow, which sends it: never two senders of one
  round at once (and a round on record as sent is never sent again).

Nothing is lost to a crash: the delivery to start is on record with the alarm (the local
activity runs again until its task completes), and the relay looks for deliveries not yet
started when it starts and every `SCAN` seconds. A delivery starts once however often it
is tried (its workflow id is the notification's; activities.delivery.start_delivery)."""
from __future__ import annotations

import asyncio
import logging
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import suppress
from datetime import datetime, timezone
from typing import Any

from temporalio.client import Client

from activities import config
from activities.delivery import ChannelDelivery, DeliveryRequest, attempt_round, make_plan, start_delivery
from activities.record import Recorder

log = logging.getLogger("weibao.relay")

QUIET = 0.25  # seconds without an alarm in this process before its deliveries are sent and started
MAX_DEFER = 10.0  # a stream of alarms holds them back no longer than this
SCAN = 5.0  # seconds between looks for deliveries nobody woke the relay for
BATCH = 100  # deliveries claimed at a time
STARTS = 8  # starts in flight at once
FRESH = 10.0  # the relay sends a round only within this many seconds of its alarm and of its claim
STOP = 10.0  # seconds a stopping relay gives the looks in progress before they are cancelled


def ready(now: float, last_alarm: float, woken: float) -> bool:
    """Whether the deliveries may go now: no alarm raised here for QUIET seconds, or the
    relay has held them back for MAX_DEFER."""
    return now - last_alarm >= QUIET or now - woken >= MAX_DEFER


def lease(notify_timeout: float) -> float:
    """Seconds a claim holds: a relay begins a send only within FRESH seconds of its claim,
    and a send ends within its connection's and its answer's timeouts. (An SMTP server that
    takes nearly the timeout over each of its replies could outlast it; the delivery taken
    over is then started, and its workflow may mail it a second time: never lost.)"""
    return FRESH + 2 * notify_timeout


def age(created_at: Any, now: datetime) -> float:
    """Seconds since a delivery was left to start (`created_at`: ISO text on SQLite)."""
    created = datetime.fromisoformat(created_at) if isinstance(created_at, str) else created_at
    return (now - created).total_seconds()


class DeliveryRelay:
    """Runs beside the workers of a process (`async with`, worker.Workers)."""

    def __init__(self, client: Client, recorder: Recorder, task_queue: str, sends: int | None = None):
        self.client, self.recorder, self.task_queue = client, recorder, task_queue
        self.sends = sends or config.settings().delivery_slots
        self._wake = asyncio.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._task: asyncio.Task | None = None
        self._looks: set[asyncio.Task] = set()
        self._executor: ThreadPoolExecutor | None = None
        self._stopping = False

    def wake(self) -> None:
        """From any thread (`raise_alarm` runs on the worker's): a delivery is waiting."""
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self._wake.set)

    async def __aenter__(self) -> "DeliveryRelay":
        self._loop = asyncio.get_running_loop()
        self._executor = ThreadPoolExecutor(max_workers=self.sends, thread_name_prefix="relay")
        self.recorder.relays.append(self.wake)
        self._task = asyncio.create_task(self._run(), name=f"delivery relay {self.task_queue}")
        return self

    async def __aexit__(self, *exc) -> None:
        """Stop after the looks in progress: a read, a send or a start cut off by a
        cancellation would go on in its thread after the relay and its outbox are gone."""
        self.recorder.relays.remove(self.wake)
        self._stopping = True
        self._wake.set()
        if self._task is not None:
            with suppress(asyncio.CancelledError, asyncio.TimeoutError):
                await asyncio.wait_for(self._task, STOP)
        await self.settle(STOP)
        if self._executor is not None:
            self._executor.shutdown(wait=False, cancel_futures=True)

    async def settle(self, timeout: float | None = None) -> None:
        """Wait for the looks in progress (their sends and starts) to end."""
        if self._looks:
            with suppress(asyncio.CancelledError, asyncio.TimeoutError):
                await asyncio.wait_for(asyncio.gather(*self._looks, return_exceptions=True), timeout)

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

    async def _in_thread(self, fn, *args):
        return await asyncio.get_running_loop().run_in_executor(self._executor, fn, *args)

    async def relay(self) -> bool:
        """Claim the deliveries waiting and set them going (their first round sent now, their
        workflows started once the alarms let them: `settle` waits for that); True when more
        are waiting."""
        self._wake.clear()
        woken = time.monotonic()
        while not ready(time.monotonic(), self.recorder.last_alarm, woken):
            if self._stopping:
                return False
            await asyncio.sleep(QUIET)
        outbox = self.recorder.outbox
        if outbox is None:
            return False
        settings = config.settings()  # once per look: each call reads the environment
        claimed = time.monotonic()  # the lease runs from before the claim
        rows = await self._in_thread(outbox.claim, self.task_queue, BATCH, lease(settings.notify_timeout))
        if rows:
            look = asyncio.create_task(self._deliver(rows, woken, claimed, settings),
                                       name=f"deliveries {self.task_queue}")
            self._looks.add(look)
            look.add_done_callback(self._looks.discard)
        return len(rows) == BATCH

    async def _deliver(self, rows: list[tuple[str, str, Any]], woken: float, claimed: float, settings) -> None:
        """Send the first round of every fresh delivery claimed, then start their workflows
        (after the sends: 200 eager starts and their first tasks beside the sends took the
        worker's interpreter from them: mail p99 7.9 s against 5.7 s, bench/escalation_lag.py)."""
        outbox, now = self.recorder.outbox, datetime.now(timezone.utc)
        down: set[str] = set()  # channels that failed in this look: left to the workflows' retries
        starts = asyncio.Semaphore(STARTS)  # the sends are held to the executor's `sends` threads
        started: list[str] = []
        released: list[str] = []

        async def send(notice: str, raw: str, created_at: Any) -> DeliveryRequest | None:
            try:
                request = DeliveryRequest.model_validate_json(raw)
            except ValueError:
                log.error("delivery %s: its request on record is not readable", notice, exc_info=True)
                released.append(notice)
                return None
            try:
                request = request.model_copy(update={"plan": request.plan or make_plan(self.recorder.org, request)})
                if age(created_at, now) < FRESH:
                    await self._in_thread(self._send_first, request, settings, down, claimed)
            except Exception:  # its workflow sends it: nothing is lost
                log.warning("delivery %s: first round not sent by the relay", notice, exc_info=True)
            return request

        async def start(notice: str, request: DeliveryRequest) -> None:
            async with starts:
                try:
                    await start_delivery(self.client, self.recorder.org, request, self.task_queue)
                    started.append(notice)
                except Exception:
                    log.warning("delivery %s not started; will try again", notice, exc_info=True)
                    released.append(notice)

        requests = await asyncio.gather(*(send(*row) for row in rows))
        while not self._stopping and not ready(time.monotonic(), self.recorder.last_alarm, woken):
            await asyncio.sleep(QUIET)  # alarms raised meanwhile go first
        await asyncio.gather(*(start(row[0], r) for row, r in zip(rows, requests) if r is not None))
        try:
            if started:
                await self._in_thread(outbox.started, started)
                log.debug("started %d deliveries on %s", len(started), self.task_queue)
            if released:
                await self._in_thread(outbox.release, released)
        except Exception:  # their claims lapse; a start tried again is a no-op, a round sent is not sent again
            log.warning("delivery relay on %s: %d started and %d to try again not marked", self.task_queue,
                        len(started), len(released), exc_info=True)

    def _send_first(self, request: DeliveryRequest, settings, down: set[str], claimed: float) -> None:
        """The delivery's first round on each of its channels, each attempt on record (a round
        on record as sent is not sent again)."""
        plan = request.plan
        for channel in plan.channels:
            if channel in down or time.monotonic() - claimed >= FRESH:  # the claim may lapse before it ends
                continue
            job = ChannelDelivery.of(request, plan, channel, request.first_round)
            outcome = attempt_round(self.recorder.org, self.recorder.outbox, job, settings, last=False)
            if outcome is not None and not outcome.sent and not outcome.permanent:
                down.add(channel)
