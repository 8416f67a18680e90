"""A store written before tickets became a case kind (tests/fixtures/
store_before_one_machinery.db: a full paid-repair ticket with a breach and escalations,
a complaint, a return, a plan and its inspection, written by the code of c865223) still
loads, verifies and replays: event topics and aggregate ids did not change."""
import shutil
from collections import defaultdict
from pathlib import Path

import pytest

from activities.store import open_store
from domain import chain
from domain.kinds import AGGREGATES, kind_of_topic, replay
from projections.runner import ReadModels, Runner
from projections.ticket_list import get_ticket_row

FIXTURE = Path(__file__).parent.parent / "fixtures" / "store_before_one_machinery.db"


@pytest.fixture
def old_store(tmp_path, monkeypatch):
    path = tmp_path / "events.db"
    shutil.copy(FIXTURE, path)
    monkeypatch.setenv("WEIBAO_EVENT_STORE", "sqlite")
    monkeypatch.setenv("WEIBAO_SQLITE_PATH", str(path))
    monkeypatch.setenv("WEIBAO_DATA_DIR", str(tmp_path))
    store = open_store()
    yield store
    store.close()


def cases(store) -> dict[str, list[str]]:
    """Case ids per kind, from the opening events in the notification log."""
    out = defaultdict(list)
    for n in store.recorder.select_notifications(start=1, limit=100000):
        kind = kind_of_topic(n.topic)
        if kind and n.originator_version == 1:
            event = store.mapper.to_domain_event(n)
            out[kind].append(event.data[AGGREGATES[kind].ID_FIELD])
    return out


def test_every_case_of_an_old_store_loads_verifies_and_replays_to_its_aggregates_state(old_store):
    found = cases(old_store)
    assert set(found) == {"ticket", "complaint", "return", "inspection", "plan"}
    for kind, ids in found.items():
        for case_id in ids:
            events, damaged = old_store.read_history(kind, case_id)
            assert damaged is None and len(events) >= 1
            assert chain.verify(events) is None, (kind, case_id)
            aggregate = old_store.aggregate(kind, case_id)
            assert aggregate.version == len(events)
            assert replay(kind, case_id, events) == aggregate.state


def test_an_old_tickets_windows_are_the_ones_it_recorded(old_store):
    events, _ = old_store.read_history("ticket", "replay-fixture")
    state = old_store.aggregate("ticket", "replay-fixture").state
    triaged = [e for e in events if e["type"] == "Triaged"][-1]
    assert {g: d.isoformat() for g, d in state.deadlines.items()} == triaged["data"]["deadlines"]
    assert state.status == "closed" and [b.goal for b in state.breaches] == ["on_site"]
    assert [e.level for e in state.escalations] == [1]
    assert state.ticket_id == "replay-fixture"


def test_the_read_models_build_from_an_old_store(old_store):
    models = ReadModels()
    try:
        runner = Runner(old_store, models)
        assert runner.catch_up() > 0
        row = get_ticket_row("replay-fixture", view=models.view("ticket_list"))
        state = old_store.aggregate("ticket", "replay-fixture").state
        assert row["status"] == "closed"
        assert {g: d for g, d in row["deadlines"].items()} == {g: d.isoformat() for g, d in state.deadlines.items()}
    finally:
        models.close()
