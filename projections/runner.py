"""Runs the read models over the tickets' notification log, in batches.

Each pull reads up to `batch_size` events after the lowest position among the read
models, decodes each event once, and gives every read model the events past its own
position: one transaction per read model per batch, its tracking position moved in
the same transaction. SQLite cannot subscribe, so the runner polls it; on PostgreSQL
it wakes on LISTEN/NOTIFY and also pulls on a timeout, because a notification can
be missed (eventsourcing issue #305).

Nothing stops a read model for good (`projections.quarantine`): an operational error
(the database restarting, a connection lost, a serialization failure) is retried with
backoff, that read model alone, until it goes through; an event that fails however often
it is tried is found by applying the failed batch in halves, quarantined, and the rest of
the batch applied."""
from __future__ import annotations

import logging
import os
import signal
import sys
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import psycopg
from eventsourcing.application import Application
from eventsourcing.persistence import InfrastructureFactory, Tracking
from eventsourcing.utils import Environment

from activities import config, logs, telemetry
from activities.store import open_store, store_env
from projections import metrics, quarantine
from projections.base import (EventKeys, PositionConflict, PostgresReadModelView, ReadModel, ReadModelView,
                              SQLiteReadModelView, event_keys)
from projections.candidates import Candidates
from projections.case_list import CaseList
from projections.departments import DepartmentAccountability
from projections.escalations import EscalationLog
from projections.faults import FaultRegister
from projections.gaps import GapGuard
from projections.scorecard import EngineerScorecard
from projections.sla_compliance import SlaCompliance
from projections.ticket_list import TicketList

log = logging.getLogger("weibao.projections")

READ_MODELS: tuple[type[ReadModel], ...] = (  # costliest to apply first (see `groups`)
    TicketList, EngineerScorecard, Candidates, SlaCompliance, EscalationLog, FaultRegister,
    DepartmentAccountability, CaseList,
)
BY_NAME = {m.name: m for m in READ_MODELS}
UPSTREAM = "tickets"  # the EventStore application's name: the tracked notification log
# A pooled connection is checked before it is handed out: after a restart of PostgreSQL
# a read (an API request) or a batch gets a live connection, not the one the server closed.
CHECKED = {"POSTGRES_PRE_PING": "y"}


class ReadModels:
    """The read models' views, in the event store's database (SQLite file or
    PostgreSQL), sharing one connection pool; their tables are created if missing."""

    def __init__(self, kind: str | None = None, models: tuple[type[ReadModel], ...] = READ_MODELS):
        self.kind = kind or config.store_kind()
        env = store_env(self.kind, POSTGRES_POOL_SIZE="2", POSTGRES_MAX_OVERFLOW="4", **CHECKED)
        self.factory = InfrastructureFactory.construct(Environment("projections", env))
        view_class = PostgresReadModelView if self.kind == "postgres" else SQLiteReadModelView
        self.projections: dict[str, ReadModel] = {}
        try:
            with self._ddl_lock():
                for model in models:
                    view = view_class(self.factory.datastore, tracking_table_name=f"{model.name}_tracking",
                                      tables=model.tables())
                    view.read_model = model.name
                    view.create_table()
                    self.projections[model.name] = model(view=view)
        except BaseException:
            self.factory.close()  # its pool's connections and threads
            raise

    @contextmanager
    def _ddl_lock(self) -> Iterator[None]:
        """PostgreSQL can fail two concurrent CREATE ... IF NOT EXISTS ("tuple concurrently
        updated"): processes that start together (runner, API) create tables in turn."""
        if self.kind != "postgres":
            yield
            return
        with psycopg.connect(config.postgres_conninfo(), autocommit=True) as conn:
            conn.execute("SELECT pg_advisory_lock(hashtext('weibao:read-models:ddl'))")
            try:
                yield
            finally:
                conn.execute("SELECT pg_advisory_unlock(hashtext('weibao:read-models:ddl'))")

    def view(self, name: str) -> ReadModelView:
        return self.projections[name].view

    def positions(self) -> dict[str, int | None]:
        return {name: p.view.max_tracking_id(UPSTREAM) for name, p in self.projections.items()}

    def reset(self, name: str) -> None:
        """Drop one read model's rows and position: the next run rebuilds it from the first event."""
        self.view(name).reset(UPSTREAM)

    def close(self) -> None:
        self.factory.close()


def read_models() -> ReadModels:
    """New read models over the store configured now (for the CLI); the caller closes
    them. A long-running process (the API, the runner) opens its own once."""
    return ReadModels()


@dataclass
class Backoff:
    """Retries of one read model (or of reading the event store) after operational errors:
    0.25 s, doubling to at most `MAX_BACKOFF`, for as long as it takes."""

    since: float
    attempts: int = 0
    due: float = 0.0
    reason: str = ""


MAX_BACKOFF = 15.0
GAP_POLL = 0.02  # seconds between looks at the appends that may fill a gap (they commit in milliseconds)
OBSERVE_EVERY = 1.0  # seconds between readings of the read models' lag for the metrics
READING = "(reading the event store)"


class Runner:
    """Applies the tickets' events to the read models, in batches, exactly once."""

    def __init__(self, app: Application, models: ReadModels, names: list[str] | None = None,
                 batch_size: int | None = None, workers: int | None = None):
        postgres = models.kind == "postgres"
        # On SQLite a batch holds the file's one write lock, which the worker's appends wait for:
        # smaller batches, one at a time. PostgreSQL overlaps read models' transactions well.
        batch_size = batch_size or (5000 if postgres else 2000)
        workers = workers or (4 if postgres else 1)
        self.app, self.models, self.batch_size = app, models, batch_size
        self.pool = ThreadPoolExecutor(workers + 1, thread_name_prefix="read-model") if workers > 1 else None
        self._next: tuple[int, Any] | None = None  # (start, future) of the batch being read ahead
        self.projections = [p for n, p in models.projections.items() if names is None or n in names]
        self.positions: dict[str, int | None] = {p.name: p.view.max_tracking_id(app.name) for p in self.projections}
        self.retrying: dict[str, Backoff] = {}  # read models (and READING) waiting to retry an operational error
        self.failed: dict[str, str] = {}  # read models given up on by `catch_up` (its patience ran out)
        self.applied = 0  # events read and applied since start
        # PostgreSQL's appends may commit out of id order: read up to a gap an open append may still fill
        self.gaps = GapGuard(app.recorder) if postgres else None

    def lag(self) -> dict[str, int]:
        head = self.app.recorder.max_notification_id() or 0
        return {name: head - (pos or 0) for name, pos in self.positions.items()}

    def observe(self) -> None:
        """Each read model's lag (events, and the age of the oldest one not applied) and its
        quarantined events, as metrics; read from the database."""
        head = self.app.recorder.max_notification_id() or 0
        now = time.time()
        ages: dict[int, float] = {}
        for name, pos in self.positions.items():
            behind = head - (pos or 0)
            metrics.LAG_EVENTS.labels(name).set(behind)
            if behind > 0 and (pos or 0) not in ages:
                first = self.app.recorder.select_notifications(start=pos or 0, limit=1, inclusive_of_start=False)
                try:
                    ages[pos or 0] = max(0.0, now - self.app.mapper.to_domain_event(first[0]).timestamp.timestamp())
                except Exception:  # noqa: BLE001 - an undecodable event: the quarantine says so, not this gauge
                    ages[pos or 0] = 0.0
            metrics.LAG_SECONDS.labels(name).set(ages.get(pos or 0, 0.0) if behind > 0 else 0.0)
        held = quarantine.counts(self.models)
        for name in self.positions:
            metrics.QUARANTINED.labels(name).set(held.get(name, 0))

    def step(self) -> int:
        """Pull one batch and apply it to every read model that is behind (and not waiting
        to retry); returns the number of events pulled (0: all caught up, or waiting)."""
        now = time.monotonic()
        if not self._due(READING, now):
            return 0
        active = [p for p in self.projections if p.name not in self.failed and self._due(p.name, now)]
        if not active:
            return 0
        start = min(self.positions[p.name] or 0 for p in active)
        prefetched, self._next = self._next, None
        try:
            if prefetched is not None and prefetched[0] == start:
                events, keys = prefetched[1].result()
            else:
                events, keys = self._read(start)
        except Exception as e:  # nothing here is an event's fault (those are decoded one by one)
            self._back_off(READING, e)
            return 0
        self._resumed(READING)
        if not events:  # the database answers and nothing is left to apply: none is waiting any more
            for p in active:
                self._resumed(p.name)
            return 0
        if len(events) == self.batch_size and self.pool is not None:  # read on while this batch is applied
            after = events[-1][1].notification_id
            self._next = (after, self.pool.submit(self._read, after))
        work = []
        for p in active:
            position = self.positions[p.name]
            if (position or 0) <= start:
                work.append((p, events, position, keys))
            elif items := [x for x in events if x[1].notification_id > position]:
                # its own keys: a ticket reported in the part of the batch this read model
                # has applied already has its row in the read model, to be read from there
                work.append((p, items, position, event_keys(items)))
            else:
                self._resumed(p.name)  # nothing of this batch left to apply
        if self.pool is None or len(work) < 2:
            for w in work:
                self._apply(*w)
        else:  # each read model in its own transaction: one's database round trips overlap another's Python
            list(self.pool.map(lambda w: self._apply(*w), work))
        self.applied += len(events)
        return len(events)

    def _read(self, start: int) -> tuple[list[tuple[Any, Tracking]], EventKeys]:
        """Up to batch_size events after `start`, decoded once for all read models; one
        that cannot be decoded stands as `Undecodable`, for each read model to quarantine."""
        if self.gaps is not None:
            notifications = self.gaps.read(start, self.batch_size)
        else:
            notifications = self.app.recorder.select_notifications(start=start, limit=self.batch_size,
                                                                   inclusive_of_start=False)
        to_event, name = self.app.mapper.to_domain_event, self.app.name
        events = []
        for n in notifications:
            try:
                event = to_event(n)
            except Exception as e:
                event = quarantine.Undecodable(n, e)
            events.append((event, Tracking(name, n.id)))
        return events, event_keys(events)

    def _apply(self, p: ReadModel, items: list[tuple[Any, Tracking]], position: int | None,
               keys: EventKeys) -> None:
        try:
            try:
                p.process_batch(items, position, keys)
            except PositionConflict:
                raise
            except Exception as e:
                if quarantine.is_operational(e):
                    raise
                self._set_aside(p, items, e)  # an event of the batch fails however often it is tried
            else:
                self.positions[p.name] = items[-1][1].notification_id
            if p.name == metrics.COUNTED_BY:
                metrics.count(e for e, _ in items)  # once, with this read model's progress
            self._resumed(p.name)
        except PositionConflict:
            self._moved_elsewhere(p)
        except Exception as e:
            self._back_off(p.name, e)

    def _moved_elsewhere(self, p: ReadModel) -> None:
        try:
            self.positions[p.name] = p.view.max_tracking_id(self.app.name)
        except Exception as e:
            self._back_off(p.name, e)
            return
        self._resumed(p.name)  # the database answered: whatever it retried was applied elsewhere
        log.warning("%s: position moved elsewhere (a rebuild or another runner); now %s",
                    p.name, self.positions[p.name])

    def _set_aside(self, p: ReadModel, items: list[tuple[Any, Tracking]], error: Exception) -> None:
        """The batch `items` failed with `error`, not an operational one: apply it in halves,
        and again in halves what fails, until the events that fail alone are found; each is
        quarantined and the position moves on. An operational error is raised, to retry."""
        if len(items) == 1:
            p.quarantine(items[0], self.positions[p.name], quarantine.reason(error))
            self.positions[p.name] = items[0][1].notification_id
            return
        middle = len(items) // 2
        for half in (items[:middle], items[middle:]):
            try:
                p.process_batch(half, self.positions[p.name], event_keys(half))
            except PositionConflict:
                raise
            except Exception as e:
                if quarantine.is_operational(e):
                    raise
                self._set_aside(p, half, e)
            else:
                self.positions[p.name] = half[-1][1].notification_id

    def _due(self, name: str, now: float) -> bool:
        backoff = self.retrying.get(name)
        return backoff is None or now >= backoff.due

    def _back_off(self, name: str, error: Exception) -> None:
        """An operational error (or anything else outside an event): retry `name` later."""
        now = time.monotonic()
        backoff = self.retrying.setdefault(name, Backoff(since=now))
        backoff.attempts += 1
        delay = min(MAX_BACKOFF, 0.25 * 2 ** (backoff.attempts - 1))
        backoff.due, backoff.reason = now + delay, quarantine.reason(error)
        if not quarantine.is_operational(error):  # not expected: a bug of the runner's own, say
            log.error("%s: %s", name, backoff.reason, exc_info=error)
        log.warning("%s: %s; retrying in %.2fs (attempt %d)", name, backoff.reason, delay, backoff.attempts)

    def _resumed(self, name: str) -> None:
        backoff = self.retrying.pop(name, None)
        if backoff is not None:
            log.info("%s: resumed after %d failed attempts over %.1fs", name, backoff.attempts,
                     time.monotonic() - backoff.since)

    def next_retry(self) -> float | None:
        """Seconds until the earliest retry is due, or until a look at a gap in the log that an
        open append may still fill (None: nothing waits)."""
        due = [max(0.0, b.due - time.monotonic()) for b in self.retrying.values()]
        if self.gaps is not None and self.gaps.waiting is not None:
            due.append(GAP_POLL)
        return min(due) if due else None

    def close(self) -> None:
        if self.pool is not None:
            self.pool.shutdown(wait=True, cancel_futures=True)

    def catch_up(self, stop: threading.Event | None = None, patience: float = 120.0) -> int:
        """Apply everything recorded so far (or until `stop`); returns the number of events
        pulled. An operational error is retried for up to `patience` seconds; a read model
        still failing then is given up on (`failed`)."""
        stop = stop or threading.Event()
        total = 0
        while not stop.is_set():
            n = self.step()
            total += n
            if n:
                continue
            wait = self.next_retry()
            if wait is None:
                break
            now = time.monotonic()
            for name, backoff in list(self.retrying.items()):
                if now - backoff.since > patience:
                    self.failed[name] = backoff.reason
                    del self.retrying[name]
                    log.error("%s: gave up after %.0fs: %s", name, now - backoff.since, backoff.reason)
            waiting = self.gaps.waiting if self.gaps is not None else None
            if waiting is not None and now - waiting > patience:
                self.failed[READING] = "an append holding notification ids below those read is still open"
                log.error("gave up after %.0fs: %s", now - waiting, self.failed[READING])
            if READING in self.failed:
                break
            stop.wait(wait)
        return total

    def run(self, stop: threading.Event, poll_interval: float = 1.0, report_every: float = 10.0) -> None:
        """Apply events until `stop` is set, logging progress. Nothing ends it but `stop`:
        operational errors are retried with backoff, poisoned events quarantined."""
        waiter = _Waiter(self.app, self.models.kind, poll_interval, stop)
        try:
            started, last_report, last_applied = time.monotonic(), time.monotonic(), 0
            caught_up = False
            observed = 0.0
            while not stop.is_set():
                try:
                    n = self.step()
                except Exception as e:  # not expected (step catches its own): never let it end the runner
                    self._back_off(READING, e)
                    n = 0
                now = time.monotonic()
                if now - observed >= OBSERVE_EVERY:
                    observed = now
                    try:
                        self.observe()
                    except Exception as e:  # noqa: BLE001 - the database is away: the backoff logs it
                        log.debug("lag not observed: %s", quarantine.reason(e))
                if n and (now - last_report >= report_every):
                    rate = (self.applied - last_applied) / (now - last_report)
                    log.info("applied %d events (%.0f/s); positions %s", self.applied, rate, self.positions)
                    last_report, last_applied = now, self.applied
                if n == self.batch_size:
                    caught_up = False
                    continue
                if not caught_up and not self.retrying:
                    log.info("caught up after %d events in %.1fs; positions %s", self.applied,
                             now - started, self.positions)
                    caught_up = True
                if n == 0:
                    retry = self.next_retry()
                    waiter.wait(poll_interval if retry is None else min(poll_interval, retry))
        finally:
            waiter.close()


class _Waiter:
    """Waits for new events: LISTEN/NOTIFY on PostgreSQL, with `poll_interval` as a
    timeout all the same; a plain poll on SQLite. A lost LISTEN connection (a restart)
    is opened again, at most every few seconds; meanwhile it polls."""

    RECONNECT_EVERY = 2.0

    def __init__(self, app: Application, kind: str, poll_interval: float, stop: threading.Event):
        self.poll_interval, self.stop, self.conn = poll_interval, stop, None
        channel = getattr(app.recorder, "channel_name", None)
        self.channel = channel if channel and kind == "postgres" else None
        self._next_connect = 0.0
        self._connect()

    def _connect(self) -> None:
        if self.channel is None or time.monotonic() < self._next_connect:
            return
        self._next_connect = time.monotonic() + self.RECONNECT_EVERY
        try:
            self.conn = psycopg.connect(config.postgres_conninfo(), autocommit=True, connect_timeout=5)
            self.conn.execute(psycopg.sql.SQL("LISTEN {}").format(psycopg.sql.Identifier(self.channel)))
        except psycopg.Error as e:
            log.warning("LISTEN failed (%s); polling every %.1fs meanwhile", quarantine.reason(e), self.poll_interval)
            self.close()

    def wait(self, timeout: float | None = None) -> None:
        timeout = self.poll_interval if timeout is None else timeout
        if self.conn is None:
            self._connect()
        if self.conn is None:
            self.stop.wait(timeout)
            return
        try:
            for _ in self.conn.notifies(timeout=timeout, stop_after=1):
                pass  # woken by a notification: pull
        except psycopg.Error as e:
            log.warning("LISTEN connection lost (%s); polling until it is back", quarantine.reason(e))
            self.close()

    def close(self) -> None:
        if self.conn is not None:
            try:
                self.conn.close()
            except psycopg.Error:
                pass
            self.conn = None


def status(models: ReadModels | None = None, app: Any | None = None) -> list[dict[str, Any]]:
    """Each read model's position, lag behind the event store's last event and number of
    quarantined events (over the configured store unless given one; what is opened here
    is closed here)."""
    with _opened(models, app) as (models, app):
        head = app.recorder.max_notification_id() or 0
        held = quarantine.counts(models)
        return [{"name": name, "title": p.title, "position": pos or 0, "head": head, "lag": head - (pos or 0),
                 "quarantined": held[name]}
                for name, pos, p in ((n, p.view.max_tracking_id(UPSTREAM), p) for n, p in models.projections.items())]


def rebuild(name: str, models: ReadModels | None = None, app: Any | None = None,
            batch_size: int | None = None) -> int:
    """Rebuild one read model from the first event; returns the number of events applied.
    Safe beside a running runner: the position check lets only one apply each batch."""
    if name not in BY_NAME:
        raise KeyError(f"no read model {name!r}; read models are {', '.join(BY_NAME)}")
    with _opened(models, app) as (models, app):
        models.reset(name)
        runner = Runner(app, models, names=[name], batch_size=batch_size)
        try:
            return runner.catch_up()
        finally:
            runner.close()


@contextmanager
def _opened(models: ReadModels | None, app: Any | None) -> Iterator[tuple[ReadModels, Any]]:
    """`models` and `app`, or the configured ones, opened here and closed on the way out."""
    own_models, own_app = models is None, app is None
    models = models or read_models()
    try:
        app = app or open_store(models.kind)
        try:
            yield models, app
        finally:
            if own_app:
                app.close()
    finally:
        if own_models:
            models.close()


def groups(names: list[str], n: int) -> list[list[str]]:
    """Split read models across n processes, the costliest first and dealt round, so
    each process has a similar share (READ_MODELS lists them costliest first)."""
    n = max(1, min(n, len(names)))
    return [names[i::n] for i in range(n)]


def _catch_up_child(names: list[str], batch_size: int | None, workers: int | None, barrier: Any,
                    results: Any) -> None:
    app, models = open_store(), ReadModels()
    runner = Runner(app, models, names=names, batch_size=batch_size, workers=workers)
    barrier.wait()
    results.put((names, runner.catch_up(), runner.failed))
    runner.close()
    models.close()


def catch_up_in_processes(n: int, batch_size: int | None = None, workers: int | None = None,
                          names: list[str] | None = None) -> tuple[float, int, dict[str, str]]:
    """Catch all read models up in n processes (the runner's --processes); returns the
    seconds from the moment all were ready to the last one done, the events pulled by
    the busiest, and any failures."""
    import multiprocessing

    ctx = multiprocessing.get_context("spawn")
    prepare()
    parts = groups(names or list(BY_NAME), n)
    barrier, results = ctx.Barrier(len(parts) + 1), ctx.Queue()
    procs = [ctx.Process(target=_catch_up_child, args=(part, batch_size, workers, barrier, results))
             for part in parts]
    for p in procs:
        p.start()
    barrier.wait(timeout=120)
    started = time.perf_counter()
    done = [results.get(timeout=3600) for _ in procs]
    elapsed = time.perf_counter() - started
    for p in procs:
        p.join()
    failed = {k: v for _, _, f in done for k, v in f.items()}
    return elapsed, max(count for _, count, _ in done), failed


def setup_logging() -> None:
    logs.setup()  # WEIBAO_LOG_LEVEL, WEIBAO_LOG_FORMAT: JSON lines unless stderr is a terminal


def serve(names: list[str] | None, batch_size: int | None, workers: int | None, poll: float, once: bool,
          stop: threading.Event | None = None, metrics_port: int | None = None) -> int:
    """Run read models until SIGINT or SIGTERM (or, with `once`, until caught up). A
    database that does not answer yet (starting, restarting) is waited for. Metrics and
    health on `metrics_port` (default WEIBAO_PROJECTION_METRICS_PORT; 0: none), from the start:
    not ready while the database does not answer."""
    stop = stop or stop_on_signals()
    settings = config.settings()
    port = settings.projection_metrics_port if metrics_port is None else metrics_port
    checks: dict[str, Any] = {"event_store": lambda: _raise("the runner is opening the event store")}
    ops = None if once else telemetry.serve_ops("projections", settings.metrics_host, port, checks)
    try:
        opened = _open(stop, names, batch_size, workers, checks)
        if opened is None:
            return 0  # stopped before the database answered
        return _serve(opened, once, poll, stop)
    finally:
        if ops is not None:
            ops.close()


def ready_checks(app: Application, models: ReadModels) -> dict[str, Any]:
    """What `/readyz` on the runner's metrics port asks: the event store and the read models'
    tables answer (the runner needs no Temporal)."""
    return {"event_store": app.recorder.max_notification_id, "read_models": lambda: quarantine.counts(models)}


def _serve(opened: tuple[Application, ReadModels, "Runner"], once: bool, poll: float, stop: threading.Event) -> int:
    app, models, runner = opened
    log.info("pid %d: %s over the %s store; positions %s", os.getpid(),
             ", ".join(p.name for p in runner.projections), models.kind, runner.positions)
    try:
        if once:
            n = runner.catch_up(stop)
            log.info("caught up: %d events; positions %s", n, runner.positions)
        else:
            runner.run(stop, poll_interval=poll)
    finally:
        runner.close()
        models.close()
        app.close()
    if runner.failed:
        log.error("read models stopped on an error: %s", runner.failed)
        return 1
    return 0


def _open(stop: threading.Event, names: list[str] | None, batch_size: int | None,
          workers: int | None, checks: dict[str, Any] | None = None) -> tuple[Application, ReadModels, Runner] | None:
    """The event store, the read models and their runner, retried with backoff while the
    database has an operational error; None if stopped meanwhile. `checks` (the ops server's
    readiness) says why meanwhile, and takes the real checks once they are open."""
    delay = 0.25
    checks = {} if checks is None else checks
    while not stop.is_set():
        app = models = None
        try:
            app = open_store(**CHECKED)
            models = ReadModels()
            runner = Runner(app, models, names=names, batch_size=batch_size, workers=workers)
            checks.clear()
            checks.update(ready_checks(app, models))
            return app, models, runner
        except Exception as e:
            for opened in (models, app):
                if opened is not None:
                    try:
                        opened.close()
                    except Exception:
                        pass
            if not quarantine.is_operational(e):
                raise
            log.warning("the event store does not answer (%s); trying again in %.2fs", quarantine.reason(e), delay)
            reason = f"{type(e).__name__}: {quarantine.reason(e)[:200]}"
            checks["event_store"] = lambda reason=reason: _raise(reason)
            stop.wait(delay)
            delay = min(MAX_BACKOFF, delay * 2)
    return None


def _raise(reason: str) -> None:
    raise ConnectionError(f"not open yet: {reason}")


def serve_child(names: list[str], batch_size: int | None, workers: int | None, poll: float, once: bool,
                metrics_port: int | None = None) -> None:
    setup_logging()
    sys.exit(serve(names, batch_size, workers, poll, once, metrics_port=metrics_port))


def stop_on_signals() -> threading.Event:
    """An event set by SIGINT or SIGTERM: the runner finishes the batch in hand and exits."""
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    return stop


def prepare() -> None:
    """Create the event store's and the read models' tables once, before processes
    that would otherwise race to create them start."""
    app = open_store()
    app.close()
    ReadModels().close()
