"""The event store's ceiling on PostgreSQL: appends per second of new single-event
aggregates through `activities.store.open_store("postgres")` (eventsourcing's PostgreSQL
recorder without its table lock: `activities.store.ConcurrentAppends`), with 1, 2, 4 and 8
threads, against plain psycopg INSERTs of rows of the same size (one row per transaction, a
connection per thread) in the same run; and, to tell the lock from the rest of the library,
the library's own recorder (`LOCK TABLE … IN EXCLUSIVE MODE` in every append, as weibao's
store was before 2026-12-07) and the same plain INSERTs with that LOCK TABLE before each.

    .venv/bin/python bench/store_ceiling.py [-n 3000] [--threads 1 2 4 8] [--dbname weibao_bench]

The database named (its name must contain "bench") is dropped and created anew. The
server is POSTGRES_HOST / POSTGRES_PORT / POSTGRES_USER / POSTGRES_PASSWORD (127.0.0.1:5432
postgres by default). Prints appends/s per thread count and "ratio: X" (store / plain)."""
from __future__ import annotations

import argparse
import os
import sys
import threading
import time
import uuid
from datetime import datetime, timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import psycopg  # noqa: E402
from psycopg import sql  # noqa: E402

from activities import config  # noqa: E402

RAW_TABLE = sql.SQL("""CREATE TABLE IF NOT EXISTS raw_events (
    originator_id uuid NOT NULL, originator_version bigint NOT NULL, topic text, state bytea,
    notification_id bigserial, PRIMARY KEY (originator_id, originator_version))""")
RAW_INSERT = sql.SQL("INSERT INTO {} (originator_id, originator_version, topic, state) "
                     "VALUES (%s, 1, %s, %s) RETURNING notification_id")
LOCK = sql.SQL("LOCK TABLE {} IN EXCLUSIVE MODE")


def fresh_database(dbname: str) -> None:
    if "bench" not in dbname:
        raise SystemExit(f"--dbname {dbname!r}: the bench drops it, so its name must contain 'bench'")
    pg = {**config.postgres(), "POSTGRES_DBNAME": "postgres"}
    with psycopg.connect(config.postgres_conninfo(pg), autocommit=True) as c:
        c.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(dbname)))
        c.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(dbname)))


def ticket(n: int):
    """A new fault ticket: one `Reported` event, as the recorder opens one."""
    from domain.kinds import AGGREGATES

    data = {"customer": "Kunming First People's Hospital", "site": "157 Jinbi Rd, Kunming",
            "contact_phone": "0871-6300000", "product_model": "HIS-Server R740",
            "symptoms": "HIS down in all wards", "channel": "phone", "severity": "critical", "zone": "A",
            "received_by": "C001"}
    tid = f"bench-{uuid.uuid4().hex[:12]}-{n}"
    return AGGREGATES["ticket"].open(tid, at=datetime.now(timezone.utc), actor="C001",
                                     command_id=f"ticket-{tid}:report", data=data)


def run_threads(threads: int, per_thread: int, work, prepare=lambda count: count) -> float:
    """`work(prepare(count))` in `threads` threads at once, each thread's input prepared
    before the clock starts; appends per second over them all."""
    start = threading.Barrier(threads + 1)
    errors: list[BaseException] = []

    def body(i: int) -> None:
        items = prepare(per_thread)
        start.wait()
        try:
            work(items)
        except BaseException as e:  # noqa: BLE001 (reported below)
            errors.append(e)

    pool = [threading.Thread(target=body, args=(i,)) for i in range(threads)]
    for t in pool:
        t.start()
    start.wait()
    t0 = time.perf_counter()
    for t in pool:
        t.join()
    elapsed = time.perf_counter() - t0
    if errors:
        raise errors[0]
    return threads * per_thread / elapsed


def main(n: int, thread_counts: list[int], dbname: str) -> None:
    os.environ.update(WEIBAO_EVENT_STORE="postgres", POSTGRES_DBNAME=dbname)
    fresh_database(dbname)
    from activities.store import open_store

    # the store's pool holds a connection per thread (4 + 4 overflow by default)
    store = open_store("postgres", POSTGRES_POOL_SIZE=str(max(thread_counts)), POSTGRES_MAX_OVERFLOW="0")
    locking = open_store("postgres", POSTGRES_POOL_SIZE=str(max(thread_counts)), POSTGRES_MAX_OVERFLOW="0",
                         APPLICATION_RECORDER_TOPIC="eventsourcing.postgres:PostgresApplicationRecorder")
    sample = ticket(0)
    stored = store.mapper.to_stored_event(sample.pending_events[0])
    row_size = len(stored.state)
    events_table = store.recorder.events_table_name
    conninfo = config.postgres_conninfo()
    with psycopg.connect(conninfo, autocommit=True) as c:
        c.execute(RAW_TABLE)
        c.execute("CREATE TABLE IF NOT EXISTS raw_locked (LIKE raw_events INCLUDING ALL)")

    def new_tickets(count: int) -> list:
        return [ticket(k) for k in range(count)]

    def through(app):
        def work(cases: list) -> None:
            for case in cases:
                app.save(case)
        return work

    through_store = through(store)

    def plain(table: str, lock: bool):
        insert = RAW_INSERT.format(sql.Identifier(table))
        lock_table = LOCK.format(sql.Identifier(table))

        def work(count: int) -> None:
            with psycopg.connect(conninfo, autocommit=True) as c:
                for _k in range(count):
                    with c.transaction():
                        if lock:
                            c.execute(lock_table, prepare=True)
                        c.execute(insert, (uuid.uuid4(), stored.topic, os.urandom(row_size)), prepare=True)
        return work

    print(f"PostgreSQL {dbname}: {n} appends per thread count; one event of {row_size} bytes per aggregate "
          f"(table {events_table})", flush=True)
    through_store(new_tickets(50))  # warm up the pool and the prepared statements
    rows = []
    for threads in thread_counts:
        per = max(1, n // threads)
        es = run_threads(threads, per, through_store, new_tickets)
        es_locked = run_threads(threads, per, through(locking), new_tickets)
        raw = run_threads(threads, per, plain("raw_events", lock=False))
        locked = run_threads(threads, per, plain("raw_locked", lock=True))
        rows.append((threads, es, raw, locked))
        print(f"threads {threads}: store {es:,.0f}/s, the library's locking recorder {es_locked:,.0f}/s, "
              f"plain INSERT {raw:,.0f}/s, plain INSERT after LOCK TABLE {locked:,.0f}/s, ratio {es / raw:.2f}",
              flush=True)
    store.close(), locking.close()
    best = max(rows, key=lambda r: r[1])
    print(f"store ceiling: {best[1]:,.0f} appends/s at {best[0]} threads; plain INSERTs "
          f"{max(r[2] for r in rows):,.0f}/s at best")
    print(f"ratio: {best[1] / max(r[2] for r in rows):.2f}")


if __name__ == "__main__":
    p = argparse.ArgumentParser()
    p.add_argument("-n", type=int, default=3000, help="appends per thread count (split over the threads)")
    p.add_argument("--threads", type=int, nargs="+", default=[1, 2, 4, 8])
    p.add_argument("--dbname", default="weibao_bench", help="dropped and created anew; must contain 'bench'")
    a = p.parse_args()
    main(a.n, a.threads, a.dbname)
