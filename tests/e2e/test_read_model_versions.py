"""A read model's version (projections.base.ReadModel.version), recorded with its view:
a store whose view was built by another version — older columns, or events read
otherwise — is dropped when the read model is opened and rebuilt from the first event
by the runner; read models whose version did not change keep their rows and position.
SQLite and PostgreSQL alike."""
from __future__ import annotations

from typing import Any

import pytest

from activities.store import open_store
from projections import escalations
from projections.base import VERSIONS, Batch, Table, iso
from projections.escalations import EscalationLog
from projections.runner import ReadModels, Runner
from projections.ticket_list import TicketList
from tests.projection_fixtures import MONTH, STORES, append

# The escalation log as version 1 built it: tickets only, no case_kind, case_id or source.
V1_CASES = Table("escalation_tickets", (("originator_id", "TEXT"), ("ticket_id", "TEXT"), ("customer", "TEXT")),
                 key=("originator_id",))
V1_LOG = Table(
    "escalation_log",
    (("originator_id", "TEXT"), ("version", "INT"), ("ticket_id", "TEXT"), ("customer", "TEXT"),
     ("command_id", "TEXT"), ("kind", "TEXT"), ("level", "INT"), ("goal", "TEXT"), ("deadline", "TEXT"),
     ("responsible", "TEXT"), ("target", "TEXT"), ("target_name", "TEXT"), ("reason", "TEXT"), ("at", "TEXT")),
    key=("originator_id", "version"), indexes=(("at",), ("ticket_id",)))


class EscalationLogV1(EscalationLog):
    """Version 1: its tables, and its rows (a ticket row's other keys are left out when written)."""

    name = "escalation_log"
    version = 1
    tickets = V1_CASES
    facts = (V1_LOG,)

    def _log(self, e: Any, batch: Batch, kind: str, source: str = "window", **values: Any) -> None:
        row, d = batch.peek(e), e.data
        batch.append(V1_LOG, e, ticket_id=row["ticket_id"], customer=row["customer"], kind=kind,
                     level=int(d.get("level", 0 if kind == "warning" else 1)), goal=d.get("goal"),
                     deadline=iso(d["deadline"]), responsible=d.get("responsible"), target=d.get("to"),
                     target_name=d.get("to_name"), reason=d.get("reason"), at=batch.at(e))


def columns(models: ReadModels, table: str) -> set[str]:
    return set(models.view("escalation_log").query(f"SELECT * FROM {table} LIMIT 1")[0])


@pytest.mark.parametrize("kind", STORES)
def test_a_view_built_by_an_older_version_is_rebuilt_with_the_new_columns(use_store, kind):
    use_store(kind)
    app = open_store()
    append(app, MONTH)
    old = ReadModels(models=(TicketList, EscalationLogV1))
    Runner(app, old, batch_size=1000, workers=1).catch_up()
    assert "case_kind" not in columns(old, "escalation_log")
    # a store from before versions were recorded: nothing says which version built it
    with old.view("escalation_log").transaction() as curs:
        curs.execute(f"DROP TABLE {VERSIONS}")
    old.close()

    new = ReadModels()  # the upgraded code opens the store: version 2 of the escalation log
    assert new.positions()["escalation_log"] is None  # dropped, to be rebuilt from the first event
    assert new.positions()["ticket_list"] == len(MONTH)  # unchanged version: kept as it was
    assert new.view("escalation_log").query("SELECT * FROM escalation_log") == []
    runner = Runner(app, new, batch_size=1000, workers=1)
    assert runner.catch_up() == len(MONTH)
    assert not runner.failed and new.positions()["escalation_log"] == len(MONTH)
    rows = escalations.escalation_log(new.view("escalation_log"))
    assert len(rows) == 7 and {(r["case_kind"], r["source"]) for r in rows} == {("ticket", "window")}
    assert all(r["case_id"] == r["ticket_id"] for r in rows)
    recorded = new.view("escalation_log").query(f"SELECT * FROM {VERSIONS} ORDER BY tracking_table")
    assert {(r["read_model"], r["version"]) for r in recorded} >= {("escalation_log", 2), ("ticket_list", 1)}
    new.close()

    again = ReadModels()  # opened again with the same version: nothing is dropped
    assert again.positions()["escalation_log"] == len(MONTH)
    assert len(escalations.escalation_log(again.view("escalation_log"))) == 7
    view = again.view("escalation_log")
    assert view.ensure_version("escalation_log", 2) is False
    assert view.ensure_version("escalation_log", 3) is True  # any other version: rebuilt
    assert view.max_tracking_id("tickets") is None and escalations.escalation_log(view) == []
    assert view.ensure_version("escalation_log", 3) is False
    again.close()


@pytest.mark.parametrize("kind", STORES)
def test_a_version_bump_with_the_same_columns_rebuilds_that_read_model_only(use_store, kind):
    """What a read model makes of old events changed (candidates v2 counts complaints'
    and returns' escalations): its version says so, and opening it rebuilds it."""
    use_store(kind)
    app = open_store()
    append(app, MONTH)
    models = ReadModels()
    Runner(app, models, batch_size=1000, workers=1).catch_up()
    before = models.view("candidates").query("SELECT * FROM candidate_facts ORDER BY originator_id, version, "
                                             "subject_kind, fact")
    with models.view("candidates").transaction() as curs:  # as if version 1 had built it
        curs.execute(f"UPDATE {VERSIONS} SET version = 1 WHERE read_model = 'candidates'")
    models.close()

    reopened = ReadModels()
    positions = reopened.positions()
    assert positions["candidates"] is None
    assert {n: p for n, p in positions.items() if n != "candidates"} == dict.fromkeys(
        (n for n in positions if n != "candidates"), len(MONTH))
    assert Runner(app, reopened, batch_size=1000, workers=1).catch_up() == len(MONTH)
    assert reopened.view("candidates").query("SELECT * FROM candidate_facts ORDER BY originator_id, version, "
                                             "subject_kind, fact") == before
    reopened.close()


@pytest.mark.parametrize("kind", STORES)
def test_a_fresh_store_records_the_versions_without_dropping_anything(use_store, kind, caplog):
    use_store(kind)
    models = ReadModels()
    versions = {r["read_model"]: r["version"] for r in
                models.view("ticket_list").query(f"SELECT read_model, version FROM {VERSIONS}")}
    assert versions["escalation_log"] == EscalationLog.version == 2 and versions["ticket_list"] == 1
    assert "rebuilt" not in caplog.text
    models.close()
