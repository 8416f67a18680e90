"""No stored event stops a read model for good, and no database hiccup does either.

An event a read model cannot apply however often it tries (a NUL in a text field, which
PostgreSQL refuses; a bug in a handler) is quarantined: kept with the read model, its
position, originator, version, topic and the reason, and the read model goes on past it.
An operational error (the connection lost, an administrator's shutdown, a serialization
failure) is retried with backoff and never quarantines anything. The read models'
connection pools check a connection before handing it out. Real PostgreSQL throughout."""
from __future__ import annotations

import threading
import time
from typing import Any

import psycopg
import pytest

from activities import config
from activities.store import open_store
from projections import escalations, faults, sla_compliance, ticket_list
from projections.runner import ReadModels, Runner, status
from domain.ticket import Ticket
from projections.escalations import EscalationLog
from tests.projection_fixtures import DALI, KUNMING, MONTH, append, cst, snapshot, ticket_events

class BrokenEscalationLog(EscalationLog):
    """The escalation log with a bug: it cannot apply a warning."""

    name = "escalation_log"

    def _handler(self, cls: type) -> Any:
        handler = super()._handler(cls)
        if cls is Ticket.SlaWarned:
            handler = self._handlers[cls] = self.fail
        return handler

    @staticmethod
    def fail(self: Any, event: Any, batch: Any) -> None:
        raise RuntimeError("a bug in a handler")


NUL_CUSTOMER = "Kunming\u0000Hospital"
# A ticket whose customer holds a NUL, between good tickets: reported, breached,
# escalated, resolved (so it reaches the ticket list, the SLA, the escalation log,
# the fault register and the candidates).
POISONED = sorted([
    *ticket_events("G1", KUNMING, "critical", "A", cst(3, 3, 9), "E001", arrive=cst(3, 3, 11), resolve=cst(3, 3, 14),
                   satisfaction=5, ratings=(5, 4)),
    *ticket_events("NUL", NUL_CUSTOMER, "critical", "B", cst(3, 4, 9), "E002", arrive=cst(3, 7, 10),
                   resolve=cst(3, 7, 15), satisfaction=3, ratings=(2, 4), alarms=("warning", "breach")),
    *ticket_events("G2", DALI, "general", "B", cst(3, 5, 9), "E002", arrive=cst(3, 8, 10),
                   resolve=cst(3, 8, 12), satisfaction=1, ratings=(1, 2), alarms=("warning", "breach", "leadership")),
], key=lambda e: (e[0], e[1]))
HIT_BY_NUL = {"ticket_list", "candidates", "sla_compliance", "escalation_log", "fault_register"}


def head(app: Any) -> int:
    return app.recorder.max_notification_id() or 0


def caught_up(models: ReadModels, app: Any) -> bool:
    return set(models.positions().values()) == {head(app)}


def wait_for(predicate, seconds: float = 60.0, what: str = "the condition"):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if value := predicate():
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def rebuilt_equals(app: Any, models: ReadModels) -> None:
    """Every read model equals a rebuild from zero (quarantine included, but when)."""
    from projections.quarantine import quarantined

    def strip(rows: list[dict]) -> list[tuple]:
        return sorted((r["read_model"], r["position"], r["reason"]) for r in rows)

    survived, kept = snapshot(models), strip(quarantined(models))
    for name in models.projections:
        models.reset(name)
    rebuilt = Runner(app, models, batch_size=100_000, workers=1)
    rebuilt.catch_up()
    rebuilt.close()
    assert snapshot(models) == survived
    assert strip(quarantined(models)) == kept


# ------------------------------------------------------------------ deterministic: quarantined

def test_a_nul_in_a_customer_quarantines_that_event_and_every_read_model_goes_on(use_store, capsys):
    """Issue 13: a ticket whose customer holds "\\u0000" stopped five read models on
    PostgreSQL ("text fields cannot contain NUL"), for good, across restarts."""
    use_store("postgres")
    app = open_store()
    append(app, POISONED)
    models = ReadModels()
    runner = Runner(app, models, batch_size=100, workers=2)  # the poisoned event in mid-batch
    runner.catch_up()
    runner.close()
    assert not runner.failed
    assert caught_up(models, app)  # tracking moved past it
    # the rest of the batch was applied: the good tickets on both sides of it
    listed = {r["ticket_id"] for r in ticket_list.list_tickets(limit=100, view=models.view("ticket_list"))}
    assert listed == {"G1", "G2"}
    assert {r["ticket_id"] for r in faults.search_faults(models.view("fault_register"))} == {"G1", "G2"}
    assert {r["ticket_id"] for r in escalations.escalation_log(models.view("escalation_log"))} == {"G2"}
    assert {r["customer"] for r in sla_compliance.sla_compliance(models.view("sla_compliance"), "2025-03")} \
        == {KUNMING, DALI}

    from projections.quarantine import quarantined

    held = quarantined(models)
    assert {r["read_model"] for r in held} == HIT_BY_NUL
    reported = app.aggregate("ticket", "NUL")
    for r in held:  # each names the event and why
        assert r["originator_id"] == str(reported.id) and r["originator_version"] == 1
        assert r["topic"].endswith("Ticket.Reported") and "NUL" in r["reason"]
        assert r["position"] == next(n.id for n in app.recorder.select_notifications(start=1, limit=1000)
                                     if n.originator_id == reported.id and n.originator_version == 1)
    counts = {r["name"]: r["quarantined"] for r in status(models, app)}
    assert counts == {name: int(name in HIT_BY_NUL) for name in models.projections}

    # a restart neither stops on it again nor quarantines it twice
    again = ReadModels()
    append(app, ticket_events("G3", KUNMING, "major", "A", cst(3, 20, 9), "E001", resolve=cst(3, 20, 12)))
    second = Runner(app, again, batch_size=100, workers=2)
    second.catch_up()
    second.close()
    assert not second.failed and caught_up(again, app)
    assert len(quarantined(again)) == len(held)
    # an operator sees them: a count per read model, and each event with its reason
    from api import cli

    assert cli.main(["projections", "status"]) == 0
    out = capsys.readouterr()
    lines = {line.split()[0]: line.split() for line in out.out.splitlines()[1:]}
    assert {name: int(fields[3]) for name, fields in lines.items()} == counts
    assert "5 event(s) quarantined" in out.err
    assert cli.main(["projections", "quarantine", "ticket_list"]) == 0
    listed = capsys.readouterr().out.splitlines()
    assert len(listed) == 1 and listed[0].startswith("ticket_list  position ") and "Reported v1" in listed[0] \
        and "NUL" in listed[0]
    rebuilt_equals(app, again)
    models.close(), again.close()


@pytest.mark.parametrize("kind", ["sqlite", "postgres"])
def test_a_handler_that_fails_on_an_event_quarantines_it_and_the_rest_of_the_batch_is_applied(use_store, kind):
    use_store(kind)
    app = open_store()
    append(app, MONTH)
    warnings = [i + 1 for i, e in enumerate(MONTH) if e[2] == "SlaWarned"]
    assert len(warnings) > 1
    models = ReadModels(models=(ticket_list.TicketList, BrokenEscalationLog))
    runner = Runner(app, models, batch_size=100, workers=2)
    runner.catch_up()
    runner.close()
    assert not runner.failed and models.positions() == {"ticket_list": len(MONTH), "escalation_log": len(MONTH)}
    from projections.quarantine import quarantined

    held = quarantined(models)
    assert [(r["read_model"], r["position"]) for r in held] == [("escalation_log", p) for p in warnings]
    assert all(r["reason"] == "RuntimeError: a bug in a handler" for r in held)
    logged = escalations.escalation_log(models.view("escalation_log"))
    assert logged and not [r for r in logged if r["kind"] == "warning"]  # all but the warnings
    # the bug fixed, a rebuild applies what was quarantined and the quarantine is empty
    fixed = ReadModels()
    from projections.runner import rebuild

    rebuild("escalation_log", models=fixed, app=app)
    assert quarantined(fixed) == []
    assert len([r for r in escalations.escalation_log(fixed.view("escalation_log")) if r["kind"] == "warning"]) \
        == len(warnings)
    models.close(), fixed.close()


@pytest.mark.parametrize("kind", ["sqlite", "postgres"])
def test_an_event_that_cannot_be_decoded_is_quarantined_by_every_read_model(use_store, kind):
    """A stored event whose class is gone (or whose state is damaged) cannot even be
    decoded: every read model quarantines it and goes on."""
    from uuid import uuid4

    from eventsourcing.persistence import StoredEvent

    use_store(kind)
    app = open_store()
    append(app, MONTH[:10])
    gone = StoredEvent(originator_id=uuid4(), originator_version=1, topic="domain.gone:Gone.Reported", state=b"{}")
    app.recorder.insert_events([gone])
    append(app, MONTH[10:20])
    models = ReadModels()
    runner = Runner(app, models, batch_size=100, workers=2)
    runner.catch_up()
    runner.close()
    assert not runner.failed and caught_up(models, app)
    from projections.quarantine import quarantined

    held = quarantined(models)
    assert sorted(r["read_model"] for r in held) == sorted(models.projections)
    assert {(r["position"], r["originator_id"], r["topic"]) for r in held} == {(11, str(gone.originator_id),
                                                                                gone.topic)}
    rebuilt_equals(app, models)
    models.close()


# ------------------------------------------------------------------ operational: retried

def terminate_backends(conn: psycopg.Connection, waiting_on: tuple[str, ...] = ()) -> int:
    """pg_terminate_backend (an AdminShutdown, as a restart gives) for every other session
    of this database; with `waiting_on`, only those waiting for a lock on these tables."""
    if waiting_on:
        rows = conn.execute("SELECT pg_terminate_backend(pid) FROM pg_locks WHERE NOT granted "
                            "AND relation = ANY(%s::regclass[])", [list(waiting_on)]).fetchall()
    else:
        rows = conn.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                            "WHERE datname = current_database() AND pid <> pg_backend_pid()").fetchall()
    return len(rows)


def waiting_on(conn: psycopg.Connection, tables: tuple[str, ...]) -> int:
    """Sessions waiting now for a lock on one of these tables (pg_locks is live)."""
    return conn.execute("SELECT count(*) FROM pg_locks WHERE NOT granted AND relation = ANY(%s::regclass[])",
                        [list(tables)]).fetchone()[0]


HELD = ("scorecard_tickets", "department_tickets")  # engineer_scorecard's and department_accountability's


def test_an_admin_shutdown_mid_batch_is_retried_and_the_read_models_resume_by_themselves(use_store):
    """Issue 13: engineer_scorecard and department_accountability "stopped at a batch"
    on AdminShutdown when PostgreSQL restarted, and stayed stopped with events to apply."""
    use_store("postgres")
    app = open_store()
    append(app, MONTH)
    models = ReadModels()
    runner = Runner(app, models, batch_size=10, workers=2)
    stop = threading.Event()
    thread = threading.Thread(target=runner.run, args=(stop,), kwargs={"poll_interval": 0.1})
    with psycopg.connect(config.postgres_conninfo(), autocommit=True) as admin:
        with admin.transaction():  # both read models block mid-batch on their tables
            admin.execute(f"LOCK TABLE {', '.join(HELD)} IN ACCESS EXCLUSIVE MODE")
            thread.start()
            with psycopg.connect(config.postgres_conninfo(), autocommit=True) as watcher:
                wait_for(lambda: waiting_on(watcher, HELD) >= 2, what="both read models blocked mid-batch")
            assert terminate_backends(admin, waiting_on=HELD) >= 2
        terminate_backends(admin)  # and every idle pooled connection too, as a restart does
    try:
        wait_for(lambda: caught_up(models, app), what="every read model caught up")
    finally:
        stop.set()
        thread.join(timeout=30)
        runner.close()
    assert not runner.failed
    from projections.quarantine import quarantined

    assert quarantined(models) == []  # an operational error never quarantines
    rebuilt_equals(app, models)
    models.close()


def test_a_read_model_retrying_is_done_retrying_once_another_runner_has_applied_its_events(use_store):
    """A read model that failed operationally and then finds its events applied by another
    runner (a position conflict) or nothing left to apply is not waiting any more: a
    catch-up does not wait out its patience and call it failed."""
    use_store("postgres")
    app = open_store()
    append(app, MONTH)
    first, second = ReadModels(), ReadModels()
    a = Runner(app, first, batch_size=100, workers=1)
    with psycopg.connect(config.postgres_conninfo(), autocommit=True) as admin:
        with admin.transaction():
            admin.execute("LOCK TABLE ticket_list IN ACCESS EXCLUSIVE MODE")
            stepping = threading.Thread(target=a.step)
            stepping.start()
            with psycopg.connect(config.postgres_conninfo(), autocommit=True) as watcher:
                wait_for(lambda: waiting_on(watcher, ("ticket_list",)), what="ticket_list held mid-batch")
            assert terminate_backends(admin, waiting_on=("ticket_list",)) == 1
    stepping.join(timeout=60)
    assert set(a.retrying) == {"ticket_list"}
    b = Runner(app, second, batch_size=100, workers=1)
    b.catch_up()  # another runner applies what ticket_list was to retry
    started = time.monotonic()
    a.catch_up(patience=30)
    assert not a.failed and not a.retrying and caught_up(first, app)
    assert time.monotonic() - started < 30  # it did not wait out its patience
    a.close(), b.close(), first.close(), second.close()


def test_the_read_model_views_check_a_pooled_connection_before_using_it(use_store):
    """Issue 13: read endpoints answered 500 for minutes after a restart, each request
    handed a pooled connection the server had closed."""
    use_store("postgres")
    app = open_store()
    append(app, MONTH[:10])
    models = ReadModels()
    Runner(app, models, batch_size=100, workers=1).catch_up()
    view = models.view("ticket_list")
    listed = len(ticket_list.list_tickets(view=view))  # the pool holds live connections now
    assert listed
    with psycopg.connect(config.postgres_conninfo(), autocommit=True) as admin:
        assert terminate_backends(admin) >= 1
    for _ in range(4):  # every pooled connection is dead: each is checked and replaced
        assert len(ticket_list.list_tickets(view=view)) == listed
    models.close()


@pytest.mark.parametrize("error,operational", [
    (psycopg.errors.AdminShutdown("terminating connection due to administrator command"), True),
    (psycopg.errors.SerializationFailure("could not serialize access"), True),
    (psycopg.errors.DeadlockDetected("deadlock detected"), True),
    (psycopg.errors.CannotConnectNow("the database system is starting up"), True),
    (psycopg.errors.LockNotAvailable("could not obtain lock"), True),
    (psycopg.errors.QueryCanceled("canceling statement due to statement timeout"), True),
    (psycopg.errors.TooManyConnections("sorry, too many clients already"), True),
    (psycopg.errors.ReadOnlySqlTransaction("cannot execute INSERT in a read-only transaction"), True),
    (psycopg.OperationalError("server closed the connection unexpectedly"), True),
    (psycopg.InterfaceError("the connection is closed"), True),
    (ConnectionRefusedError(111, "Connection refused"), True),
    (psycopg.DataError("PostgreSQL text fields cannot contain NUL (0x00) bytes"), False),
    (psycopg.errors.UntranslatableCharacter("unsupported Unicode escape sequence"), False),
    (psycopg.errors.InvalidTextRepresentation("invalid input syntax for type bigint"), False),
    (psycopg.errors.UniqueViolation("duplicate key value violates unique constraint"), False),
    (psycopg.errors.ProgramLimitExceeded("index row size exceeds btree maximum"), False),  # an OperationalError class
    (psycopg.ProgrammingError("cannot adapt type 'dict'"), False),
    (KeyError("severity"), False),
    (RuntimeError("a bug in a handler"), False),
])
def test_operational_errors_are_told_from_deterministic_ones_by_sqlstate_class(error, operational):
    from eventsourcing.persistence import DataError, OperationalError

    from projections.quarantine import is_operational

    assert is_operational(error) is operational
    wrapped = (OperationalError if isinstance(error, psycopg.OperationalError) else DataError)(str(error))
    wrapped.__cause__ = error  # as eventsourcing's datastore raises them: `from` psycopg's
    assert is_operational(wrapped) is operational


@pytest.mark.parametrize("kind", ["sqlite", "postgres"])
def test_a_read_model_ahead_of_another_applies_the_rest_of_a_shared_batch_to_its_rows(use_store, kind):
    """Read models at different positions share a batch read from the lowest (one was held
    back, as by a restart mid-batch). The one ahead applies only the events after its own
    position; a ticket reported in the part it had applied already has its row in the
    read model, not in this batch, so it must be read from there. (A PostgreSQL restart
    mid-load left a closed ticket at `reported` in the ticket list and the candidates:
    their events were applied as if the ticket's row did not exist.)"""
    use_store(kind)
    app = open_store()
    events = ticket_events("R1", KUNMING, "critical", "A", cst(3, 3, 9), "E001", arrive=cst(3, 3, 11),
                           resolve=cst(3, 3, 14), satisfaction=5, ratings=(5, 4))
    append(app, events[:1])  # reported
    models = ReadModels()
    first = Runner(app, models, batch_size=100, workers=1)
    first.catch_up()
    first.close()
    models.reset("escalation_log")  # held back: from the first event again
    append(app, events[1:])  # the rest of the ticket's life
    again = ReadModels()  # a runner that starts now (nothing kept in memory)
    runner = Runner(app, again, batch_size=100, workers=2)
    assert runner.positions["escalation_log"] is None and runner.positions["ticket_list"] == 1
    runner.catch_up()
    runner.close()
    row = again.view("ticket_list").query("SELECT status, version FROM ticket_list")
    assert row == [{"status": "closed", "version": len(events)}]
    rebuilt_equals(app, again)
    models.close(), again.close()
