"""How fast the read models catch up, against plain psycopg inserts.

    .venv/bin/python bench/projections.py [--events 100000] [--batch-size 1000]

Appends EVENTS ticket events to PostgreSQL (a fresh database, BENCH_POSTGRES_DBNAME,
default `weibao_bench`, created if missing), then times the catch-up of all read
models from the first event, and in the same run a plain psycopg insert of as many
rows into a bare table, one transaction per 100 rows. Prints events/s for both and
"ratio: X" (goal: at least 0.3)."""
from __future__ import annotations

import argparse
import json
import os
import random
import sys
import time
import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import psycopg  # noqa: E402

from activities import config  # noqa: E402
from domain import policy  # noqa: E402

CUSTOMERS = ["Kunming First People's Hospital", "Yunnan Cancer Hospital", "Dali Prefecture Hospital",
             "Qujing Maternity Hospital", "Chuxiong Chinese Medicine Hospital"]
ENGINEERS = ["E001", "E002"]
SYMPTOMS = ["HIS down in all wards", "PACS images fail to load", "core switch port flapping",
            "nurse station terminal will not boot", "LIS interface drops orders"]
CAUSES = [("failed PSU", "replaced PSU", ["PSU"]), ("bad SFP module", "replaced SFP", ["SFP"]),
          ("full disk on DB server", "archived logs, added quota", []), ("driver regression", "rolled back driver", [])]


def reset_database(dbname: str) -> None:
    with psycopg.connect(f"{_conninfo('postgres')}", autocommit=True) as c:
        if not c.execute("SELECT 1 FROM pg_database WHERE datname = %s", [dbname]).fetchone():
            c.execute(f'CREATE DATABASE "{dbname}"')
    with psycopg.connect(_conninfo(dbname), autocommit=True) as c:
        for (table,) in c.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'public'").fetchall():
            c.execute(f'DROP TABLE IF EXISTS "{table}" CASCADE')


def _conninfo(dbname: str) -> str:
    pg = {**config.postgres(), "POSTGRES_DBNAME": dbname}
    return config.postgres_conninfo(pg)


def _iso(deadlines: dict) -> dict[str, str]:
    return {goal: at.isoformat() for goal, at in deadlines.items()}


def ticket_script(rng: random.Random, n: int, start: datetime) -> list[tuple[str, dict, str, timedelta]]:
    """One ticket's events as (event type, data, actor, offset from the report)."""
    severity, zone = rng.choice(["general", "major", "critical"]), rng.choice("AAAB")
    engineer = rng.choice(ENGINEERS)
    late = rng.random() < 0.2
    goal = "on_site" if severity == "critical" or zone == "B" else "resolved"
    deadline_at = policy.deadlines(start, severity, zone)[goal]
    window = (deadline_at - start).total_seconds() / 3600
    deadline = deadline_at.isoformat()
    alert = {"goal": goal, "deadline": deadline, "responsible": engineer}
    triage = {"severity": severity, "zone": zone, "service_category": "free",
              "deadlines": _iso(policy.deadlines(start, severity, zone)),
              "previous_deadlines": _iso(policy.deadlines(start, "general", "A"))}
    out = [("Triaged", triage, "S001", timedelta(minutes=5)),
           ("Dispatched", {"engineer": engineer, "travel_mode": "taxi"}, "S001", timedelta(minutes=10))]
    h = window * (rng.choice([1.3, 1.7]) if late else 0.5)  # hours from report to the goal
    if late:  # the timers' facts, as the workflow records them
        out.append(("SlaWarned", {**alert, "level": 0, "to": engineer, "to_name": engineer, "reason": "75%"},
                    "weibao", timedelta(hours=window * 0.75)))
        out.append(("SlaBreached", alert, "weibao", timedelta(hours=window, seconds=1)))
        out.append(("Escalated", {**alert, "level": 1, "to": "S001", "to_name": "S001", "reason": "missed"},
                    "weibao", timedelta(hours=window, seconds=1)))
        if h > window * 1.5:
            out.append(("Escalated", {**alert, "level": 2, "to": "L001", "to_name": "L001", "reason": "still unmet"},
                        "weibao", timedelta(hours=window * 1.5, seconds=1)))
    out.append(("ArrivedOnSite", {"staff_id_shown": True}, engineer,
                timedelta(hours=h if goal == "on_site" else h * 0.6)))
    cause, resolution, parts = rng.choice(CAUSES)
    out.append(("Resolved", {"cause": cause, "resolution": resolution, "parts_used": parts, "difficult": False,
                             "summary": None}, engineer, timedelta(hours=h)))
    out.append(("SignedOff", {"signature": "Dr. Li", "satisfaction": rng.randint(1, 5), "opinion": ""}, engineer,
                timedelta(hours=h + 1)))
    out.append(("Closed", {"time_rating": rng.randint(2, 5), "quality_rating": rng.randint(2, 5), "comment": ""},
                "S001", timedelta(hours=h + 2)))
    out.sort(key=lambda x: x[3])
    return out


def append_events(app, total: int, active: int = 250, seed: int = 4, prefix: str = "B") -> int:
    """Append about `total` events with `active` tickets in flight at once, so the log
    interleaves them; one transaction per round (each ticket in flight takes one step)."""
    from domain.ticket import Ticket

    rng = random.Random(seed)
    start = datetime(2025, 3, 1, tzinfo=timezone.utc)
    made, n = 0, 0
    flight: list[tuple[Ticket, list, datetime]] = []
    while True:
        planned = made + sum(len(script) + 1 for _, script, _ in flight)
        while len(flight) < active and planned < total:
            n += 1
            at = start + timedelta(minutes=7 * n)
            t = Ticket.open(f"{prefix}{n:06d}", at=at, actor="C001", command_id=f"{prefix}:{n}:report", data={
                "customer": rng.choice(CUSTOMERS), "site": "Kunming", "contact_phone": "0871-6300000",
                "product_model": rng.choice(["HIS-Server R740", "PACS-Store S3", "Core-Switch 9300"]),
                "symptoms": rng.choice(SYMPTOMS), "channel": "phone", "severity": "general", "zone": "A",
                "deadlines": _iso(policy.deadlines(at, "general", "A"))})
            script = ticket_script(rng, n, at)
            flight.append((t, script, at))
            planned += len(script) + 1
        for t, script, at in flight:
            if not t.pending_events and script:  # a new ticket's step is its report
                kind, data, actor, offset = script.pop(0)
                t.record(kind, at=at + offset, actor=actor, command_id=f"bench:{t.id}:{t.version + 1}", data=data)
        batch = [t for t, _, _ in flight if t.pending_events]
        if not batch:
            return made
        made += sum(len(t.pending_events) for t in batch)
        app.save(*batch)
        flight = [x for x in flight if x[1]]


def plain_inserts(dbname: str, rows: int) -> float:
    """Rows per second for plain psycopg inserts, one transaction per 100 rows."""
    payload = json.dumps({"at": "2025-03-01T00:00:00+00:00", "actor": "E001",
                          "data": {"cause": "failed PSU", "resolution": "replaced PSU"}})
    data = [(uuid.uuid4(), i % 10, "domain.ticket:Ticket.Resolved", payload.encode()) for i in range(rows)]
    with psycopg.connect(_conninfo(dbname), autocommit=True) as c:
        c.execute("DROP TABLE IF EXISTS bench_plain")
        c.execute("CREATE TABLE bench_plain (id BIGSERIAL PRIMARY KEY, originator_id UUID, version INT, "
                  "topic TEXT, state BYTEA)")
        cur = c.cursor()
        started = time.perf_counter()
        for i in range(0, rows, 100):
            with c.transaction():
                cur.executemany("INSERT INTO bench_plain (originator_id, version, topic, state) "
                                "VALUES (%s, %s, %s, %s)", data[i:i + 100])
        elapsed = time.perf_counter() - started
    return rows / elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--batch-size", type=int, default=int(os.environ.get("WEIBAO_PROJECTION_BATCH", "5000")))
    parser.add_argument("--processes", type=int, default=1, help="runner processes sharing the read models")
    parser.add_argument("--workers", type=int, default=4, help="threads per process applying read models")
    parser.add_argument("--keep", action="store_true", help="reuse the events already appended")
    args = parser.parse_args()

    dbname = os.environ.get("BENCH_POSTGRES_DBNAME", "weibao_bench")
    os.environ.update(WEIBAO_EVENT_STORE="postgres", POSTGRES_DBNAME=dbname)
    from activities.store import open_store
    from projections.runner import ReadModels, Runner, catch_up_in_processes

    if not args.keep:
        reset_database(dbname)
    app = open_store("postgres")
    if args.keep:
        events = app.recorder.max_notification_id() or 0
        print(f"reusing {events} events in {dbname}")
    else:
        started = time.perf_counter()
        events = append_events(app, args.events)
        print(f"appended {events} ticket events in {time.perf_counter() - started:.1f}s")

    models = ReadModels("postgres")
    for name in models.projections:
        models.reset(name)
    if args.processes == 1:
        runner = Runner(app, models, batch_size=args.batch_size, workers=args.workers)
        started = time.perf_counter()
        applied, failed = runner.catch_up(), runner.failed
        elapsed = time.perf_counter() - started
        runner.close()
    else:
        elapsed, applied, failed = catch_up_in_processes(args.processes, args.batch_size, args.workers)
    assert applied == events and not failed, (applied, events, failed)
    projected = events / elapsed
    print(f"read models ({len(models.projections)}) in {args.processes} process(es), batch {args.batch_size}: "
          f"{events} events in {elapsed:.2f}s = {projected:,.0f} events/s")

    plain = plain_inserts(dbname, events)
    print(f"plain psycopg inserts, 100 rows per transaction: {plain:,.0f} rows/s")
    print(f"ratio: {projected / plain:.2f}")
    models.close()


if __name__ == "__main__":
    main()
