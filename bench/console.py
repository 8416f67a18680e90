"""Server time of the console's ticket page against the raw history read of the same ticket.

A ticket with 30 events (report, re-triages, dispatches, a warning, a breach, two
escalations, their notifications and acknowledgement, arrival, backup unit, resolution,
sign-off, close) is recorded in a fresh SQLite event store the way the record activity
appends facts (the aggregate's `open` and `record`, one save each). The page is then
requested `-n` times (200 by default) through the app, signed in as a manager, timing each
request inside the server (an ASGI wrapper around the whole app: session, history, fold,
masking, template); the baseline is the raw history read of the same ticket
(`EventStore.read_history`, the read every history answer starts with), timed as many times
in the same run, in alternating rounds of 20 page requests and 20 raw reads. The page asks
nothing of Temporal (its verification badge loads separately), so no server is started.

The page reads the ticket's stored events in full every time, but keeps each stored event's
decoded and rendered form (api/console/history.py) and uses the event store's cached
aggregate: the first view of a ticket in a process pays for both. That is timed too, as
`-n` more requests each after forgetting the kept events and the cached aggregate.

    .venv/bin/python bench/console.py [-n 200]
"""
from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

TICKET = "bench-30"
ROUND = 20  # page requests, then as many raw reads, per round


def _events(t0: datetime) -> list[tuple[str, str, dict]]:
    """(event type, actor, data) of a 30-event ticket."""
    from domain import lifecycle

    def alarm(goal: str, level: int | None = None, to: str | None = None) -> dict:
        d = {"goal": goal, "deadline": (t0 + timedelta(hours=4)).isoformat(), "responsible": "S001"}
        if level is not None:
            d.update(level=level, to=to, to_name=to, reason="window missed")
        return d

    windows = lifecycle.windows_data(t0, "critical", "A")
    report = {"customer": "Kunming First People's Hospital", "site": "157 Jinbi Rd, Kunming",
              "contact_phone": "0871-6300000", "product_model": "HIS-Server R740",
              "symptoms": "HIS down in all wards", "channel": "phone", "severity": "critical", "zone": "A",
              "confidential_notes": None, "windows": windows,
              "deadlines": {g: w["deadline"] for g, w in windows.items()}}
    triage = {"severity": "critical", "zone": "A", "service_category": "free", "note": None, "windows": windows,
              "deadlines": report["deadlines"], "previous_deadlines": report["deadlines"]}
    out = [("Reported", "C001", report), ("Triaged", "S001", triage), ("Triaged", "S001", triage),
           ("Dispatched", "S001", {"engineer": "E002", "travel_mode": "taxi"}),
           ("Dispatched", "S001", {"engineer": "E001", "travel_mode": "company_car"}),
           ("SlaWarned", "system", alarm("on_site", 0, "E001"))]
    for n, (level, to) in enumerate(((None, None), (1, "M001"), (2, "L001"))):
        notice = f"n{n}"
        if level is None:
            out.append(("SlaBreached", "system", alarm("on_site")))
        else:
            out.append(("Escalated", "system", alarm("on_site", level, to)))
        for channel in ("email", "wecom"):
            out.append(("NotificationSent", "system", {"notice": notice, "to": to or "E001", "channel": channel}))
        out.append(("NotificationGivenUp", "system", {"notice": notice, "to": to or "E001", "channel": "dingtalk",
                                                      "reason": "no robot configured"}))
        if level is not None:
            out.append(("EscalationAcknowledged", "system", {"notice": notice, "by": to, "via": "link"}))
    out += [("ArrivedOnSite", "E001", {"staff_id_shown": True}),
            ("BackupUnitProvided", "E001", {"unit": "R740-spare-2"}),
            ("FeeQuoted", "E001", {"amount_yuan": "100.00", "items": ["call-out"]}),
            ("FeeAccepted", "E001", {"accepted_by": "Dr. Li"}),
            ("EquipmentTakenBack", "E001", {"receipt_no": "RC-1", "items": ["RAID controller"]}),
            ("EquipmentReturned", "E001", {"receipt_no": "RC-1"}),
            ("Resolved", "E001", {"cause": "RAID controller failed", "resolution": "replaced it, rebuilt the array",
                                  "parts_used": ["RAID controller"], "difficult": False, "summary": None}),
            ("BackupUnitRetrieved", "E001", {"unit": "R740-spare-2"}),
            ("SignedOff", "customer:Dr. Li", {"signature": "Dr. Li", "satisfaction": 4, "opinion": "",
                                              "entered_by": None}),
            ("Closed", "S001", {"time_rating": 4, "quality_rating": 5, "comment": ""})]
    return out


def record_ticket(store) -> int:
    from domain.ticket import Ticket

    t0 = datetime.now(timezone.utc) - timedelta(days=1)
    events = _events(t0)
    case = None
    for i, (kind, actor, data) in enumerate(events):
        at = t0 + timedelta(minutes=10 * i)
        if case is None:
            case = Ticket.open(TICKET, at=at, actor=actor, command_id=f"c{i}", data=data)
        else:
            case.record(kind, at=at, actor=actor, command_id=f"c{i}", data=data)
        store.save(case)
    return len(events)


def pct(values: list[float], p: float) -> float:
    values = sorted(values)
    return values[max(0, min(len(values) - 1, round(p / 100 * len(values) + 0.5) - 1))]


async def main(n: int) -> None:
    tmp = Path(tempfile.mkdtemp(prefix="weibao-bench-console-"))
    os.environ.update(WEIBAO_DATA_DIR=str(tmp), WEIBAO_SQLITE_PATH=str(tmp / "events.db"), WEIBAO_EVENT_STORE="sqlite")
    import httpx

    from activities import config
    from activities.store import open_store
    from api.app import create_app
    from api.console.auth import COOKIE
    from api.console.pages import parts
    from api.deps import Services
    from projections.runner import ReadModels, Runner

    store, models = open_store(), ReadModels()
    count = record_ticket(store)
    runner = Runner(store, models)
    runner.catch_up()
    runner.close()
    services = Services.build(None, store, config.load_org(), read_models=models)  # type: ignore[arg-type]
    app = create_app(services)
    sid, _ = parts(services).sessions.open("M001")
    server_ms: list[float] = []

    async def timed(scope, receive, send):  # the server's own time for each request
        start = time.perf_counter()
        await app(scope, receive, send)
        server_ms.append((time.perf_counter() - start) * 1000)

    raw_ms: list[float] = []

    def raw_read() -> list[dict]:
        start = time.perf_counter()
        events, damaged = store.read_history("ticket", TICKET)
        raw_ms.append((time.perf_counter() - start) * 1000)
        assert damaged is None
        return events

    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=timed), base_url="http://127.0.0.1",
                                 cookies={COOKIE: sid}) as http:
        for _ in range(20):  # warm up: templates compiled, caches filled
            r = await http.get(f"/console/tickets/{TICKET}")
            assert r.status_code == 200 and r.text.count('<li id="v') == count, r.text[:500]
            assert len(raw_read()) == count == 30
        server_ms.clear(), raw_ms.clear()
        # Page requests and raw reads alternate in rounds of `ROUND`, so a neighbour that
        # slows the machine for a while slows both alike; within a round each goes on its
        # own, one after another, as fast as it goes (a read right after a page request finds
        # the CPU's caches cold and takes about twice as long, so they are not interleaved
        # one by one).
        for done in range(0, n, ROUND):
            for _ in range(min(ROUND, n - done)):
                await http.get(f"/console/tickets/{TICKET}")
            for _ in range(min(ROUND, n - done)):
                raw_read()
        page_ms = list(server_ms)
        server_ms.clear()
        memo, aggregates = parts(services).memo, store.repository.cache
        for _ in range(n):
            memo.clear()
            if aggregates is not None:
                aggregates.clear()
            r = await http.get(f"/console/tickets/{TICKET}")
        assert r.text.count('<li id="v') == count
        first_ms = list(server_ms)
    page50, page99 = statistics.median(page_ms), pct(page_ms, 99)
    raw50, raw99 = statistics.median(raw_ms), pct(raw_ms, 99)
    first50, first99 = statistics.median(first_ms), pct(first_ms, 99)
    print(f"ticket page ({count} events), server time, {n} requests: p50 {page50:6.2f} ms, p99 {page99:6.2f} ms")
    print(f"raw history read (EventStore.read_history), {n} reads:   p50 {raw50:6.2f} ms, p99 {raw99:6.2f} ms")
    print(f"first view in the process (nothing kept), {n} requests: p50 {first50:6.2f} ms, p99 {first99:6.2f} ms"
          f"  ({first50 / raw50:.2f}x the raw read)")
    print("load average: " + " ".join(f"{x:.2f}" for x in os.getloadavg()))
    print(f"ratio: {page50 / raw50:.2f}  (p50 page / p50 raw read; goal: page p50 <= 50 ms and ratio <= 3)")
    services.close()
    models.close()
    store.close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("-n", type=int, default=200, help="requests (and raw reads) to time")
    asyncio.run(main(parser.parse_args().n))
