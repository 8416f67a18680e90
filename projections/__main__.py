"""The projection runner: keeps the read models caught up with the event store.

    python -m projections                 all read models, one process
    python -m projections --processes 2   the read models split across two processes
    python -m projections --only ticket_list escalation_log
    python -m projections --once          catch up, then exit

The event store is the one configured (WEIBAO_EVENT_STORE, WEIBAO_SQLITE_PATH,
POSTGRES_*). Metrics, /healthz and /readyz on WEIBAO_PROJECTION_METRICS_PORT (9465; with
--processes n, one port each from there). SIGINT or SIGTERM ends it after the batch in hand; a SIGKILL loses
nothing either: a batch's rows and position are committed together or not at all."""
from __future__ import annotations

import argparse
import multiprocessing
import signal
import sys
import threading

from activities import config


def main(argv: list[str] | None = None) -> int:
    # A stop asked for while the heavy imports below still run must not be lost.
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    settings, _ = config.startup()  # a bad setting or org file: one line on stderr, exit 2
    from projections.runner import BY_NAME, groups, prepare, serve, serve_child, setup_logging

    parser = argparse.ArgumentParser(prog="python -m projections", description=__doc__.splitlines()[0])
    parser.add_argument("--only", nargs="+", choices=sorted(BY_NAME), help="run only these read models")
    parser.add_argument("--processes", type=int, default=settings.projection_processes)
    parser.add_argument("--batch-size", type=int, default=settings.projection_batch,
                        help="events pulled and applied per transaction at most "
                             "(default 5000 on PostgreSQL, 2000 on SQLite)")
    parser.add_argument("--workers", type=int, default=settings.projection_workers,
                        help="threads applying read models side by side in a process "
                             "(default 4 on PostgreSQL, 1 on SQLite)")
    parser.add_argument("--poll", type=float, default=settings.projection_poll,
                        help="seconds between pulls when idle (PostgreSQL also wakes on NOTIFY)")
    parser.add_argument("--once", action="store_true", help="catch up, then exit")
    args = parser.parse_args(argv)
    setup_logging()
    names = args.only or list(BY_NAME)
    if args.processes <= 1:
        return serve(names, args.batch_size, args.workers, args.poll, args.once, stop)

    prepare()
    ctx = multiprocessing.get_context("spawn")
    port = settings.projection_metrics_port  # each process its own: port, port + 1, ... (0: none)
    procs = [ctx.Process(target=serve_child, args=(part, args.batch_size, args.workers, args.poll, args.once,
                                                   port + i if port else 0),
                         name=f"projections-{i}") for i, part in enumerate(groups(names, args.processes))]
    for sig in (signal.SIGINT, signal.SIGTERM):  # pass a stop on to the children and wait for them
        signal.signal(sig, lambda *_: [p.terminate() for p in procs if p.is_alive()])
    for p in procs:
        if not stop.is_set():
            p.start()
    for p in procs:
        if p.pid is not None:
            p.join()
    return max((p.exitcode or 0) for p in procs) and 1


if __name__ == "__main__":
    sys.exit(main())
