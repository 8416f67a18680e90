"""PostgreSQL appends take no table lock (activities.store.ConcurrentAppends), so they may
commit out of the order of their notification ids; the read models' runner must never
move past an id whose transaction is still open (projections.gaps), and must move past
one whose transaction rolled back. Real PostgreSQL; the open transaction is a plain
psycopg INSERT of a stored event, as the recorder writes it."""
from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager

import psycopg
import pytest

from activities import config
from activities.store import open_store
from domain.ticket import Ticket
from projections import ticket_list
from projections.runner import ReadModels, Runner
from tests.projection_fixtures import KUNMING, cst, ticket_events


def reported(tid: str) -> Ticket:
    at, _, _, actor, data = ticket_events(tid, KUNMING, "critical", "A", cst(3, 2, 9), "E001")[0]
    return Ticket.open(tid, at=at, actor=actor, command_id=f"ticket-{tid}:report", data=data)


@contextmanager
def open_append(app, tid: str) -> Iterator[tuple[psycopg.Connection, int]]:
    """A new ticket's first event inserted in a transaction left open: (connection, its id).
    Commit or roll back on the connection; closed after."""
    (stored,) = [app.mapper.to_stored_event(e) for e in reported(tid).collect_events()]
    conn = psycopg.connect(config.postgres_conninfo())
    try:
        row = conn.execute(
            f"INSERT INTO {app.recorder.events_table_name} (originator_id, originator_version, topic, state) "
            "VALUES (%s, %s, %s, %s) RETURNING notification_id",
            (stored.originator_id, stored.originator_version, stored.topic, stored.state)).fetchone()
        yield conn, row[0]
    finally:
        conn.close()


def save_beside(app, tid: str) -> None:
    """Append a ticket from another thread, as another worker would while a transaction is
    open; fails if the append waits for that transaction (a table lock)."""
    done = threading.Event()
    thread = threading.Thread(target=lambda: (app.save(reported(tid)), done.set()), daemon=True)
    thread.start()
    thread.join(timeout=20)
    assert done.is_set(), "the append waited for the open transaction"


def listed(models: ReadModels) -> list[str]:
    return sorted(r["ticket_id"] for r in ticket_list.list_tickets(limit=1000, view=models.view("ticket_list")))


@pytest.fixture
def store(use_store):
    use_store("postgres")
    app = open_store()
    app.save(reported("G0"))
    models = ReadModels(models=(ticket_list.TicketList,))
    runner = Runner(app, models, batch_size=50, workers=1)
    assert runner.catch_up() == 1
    yield app, models, runner
    runner.close(), models.close()


def test_the_runner_waits_for_an_open_append_below_a_committed_one(store):
    app, models, runner = store
    with open_append(app, "G1") as (conn, held):
        save_beside(app, "G2")
        assert app.recorder.max_notification_id() > held  # G2's id above G1's, committed first
        runner.step()
        assert runner.positions["ticket_list"] == held - 1  # not past the open one
        assert listed(models) == ["G0"]
        assert runner.next_retry() is not None  # the runner looks again soon, as for new events
        conn.commit()
    assert runner.catch_up() == 2
    assert listed(models) == ["G0", "G1", "G2"]
    assert runner.positions["ticket_list"] == app.recorder.max_notification_id()


def test_the_runner_moves_past_an_append_that_rolled_back(store):
    app, models, runner = store
    with open_append(app, "G1") as (conn, held):
        save_beside(app, "G2")
        runner.step()
        assert runner.positions["ticket_list"] == held - 1
        conn.rollback()
    assert runner.catch_up() == 1
    assert listed(models) == ["G0", "G2"]
    assert runner.positions["ticket_list"] == app.recorder.max_notification_id()


def test_a_gap_left_from_before_the_runner_started_is_passed(store):
    """An id never to be filled (its transaction rolled back long ago) holds nobody up,
    for a runner that starts after it as for one running."""
    app, models, runner = store
    with open_append(app, "G1") as (conn, _):
        conn.rollback()
    app.save(reported("G2"))
    fresh = Runner(app, ReadModels(models=(ticket_list.TicketList,)), batch_size=50, workers=1)
    assert fresh.catch_up() == 1
    assert listed(fresh.models) == ["G0", "G2"]
    assert fresh.gaps.waiting is None
    fresh.close(), fresh.models.close()


def test_concurrent_appends_reach_the_read_model_once_each(store):
    """Eight threads append while the runner runs: every ticket is listed once, and the
    runner applied as many events as were recorded."""
    app, models, runner = store
    stop = threading.Event()
    running = threading.Thread(target=runner.run, args=(stop,), kwargs={"poll_interval": 0.05})
    running.start()
    try:
        def appender(k: int) -> None:
            for i in range(25):
                app.save(reported(f"C{k}-{i}"))

        threads = [threading.Thread(target=appender, args=(k,)) for k in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    finally:
        stop.set()
        running.join(timeout=30)
    runner.catch_up()
    assert listed(models) == sorted(["G0", *(f"C{k}-{i}" for k in range(8) for i in range(25))])
    assert runner.applied == 1 + 8 * 25
    assert runner.positions["ticket_list"] == app.recorder.max_notification_id()


def test_a_wait_that_lasts_names_the_backend_holding_the_append_open(store, monkeypatch, caplog):
    """A transaction left open (a process stopped mid-append) holds the read models back:
    the log says so, once per wait, with the PostgreSQL backend's pid to look up."""
    from projections import gaps

    app, models, runner = store
    monkeypatch.setattr(gaps, "WARN_AFTER", 0.0)
    with open_append(app, "G1") as (conn, held), caplog.at_level("WARNING", logger="weibao.projections"):
        save_beside(app, "G2")
        runner.step(), runner.step()
        waits = [r.getMessage() for r in caplog.records if "read models wait" in r.getMessage()]
        assert len(waits) == 1
        assert f"notification id {held} " in waits[0] and str(conn.info.backend_pid) in waits[0]
        conn.commit()
    assert runner.catch_up() == 2


def test_an_id_sequence_that_caches_ids_is_refused(store):
    """With a cache of ids per session an id can be taken after a higher one committed, and
    no lock would show it coming: the runner reads nothing, and says why, until it is 1."""
    app, models, runner = store
    sequence = "tickets_events_notification_id_seq"
    with psycopg.connect(config.postgres_conninfo(), autocommit=True) as c:
        c.execute(f"ALTER SEQUENCE {sequence} CACHE 20")
    app.save(reported("G1"))
    fresh = Runner(app, ReadModels(models=(ticket_list.TicketList,)), batch_size=50, workers=1)
    assert fresh.step() == 0
    assert "caches 20 ids per session" in fresh.retrying["(reading the event store)"].reason
    with psycopg.connect(config.postgres_conninfo(), autocommit=True) as c:
        c.execute(f"ALTER SEQUENCE {sequence} CACHE 1")
    fresh.retrying.clear()
    assert fresh.catch_up() == 1  # G1: G0 was applied by the fixture's runner, to the same tables
    assert listed(fresh.models) == ["G0", "G1"]
    fresh.close(), fresh.models.close()
