"""Recorded facts are the truth: changing the window table (or the warning share)
changes tickets reported afterwards, never the past. A recorded ticket's history, its
`as_of` state and its read-model rows stay as they were; a running ticket keeps its
deadlines and alarms when its worker replays it under the new rules; the replay
fixtures still replay (DESIGN.md, "Recorded facts are the truth")."""
import uuid
from datetime import timedelta

import pytest

from activities.store import open_store
from domain import kinds, policy
from domain.policy import CST, Goal, Severity, Window, Zone
from projections.runner import ReadModels, Runner
from projections.sla_compliance import sla_compliance
from projections.ticket_list import get_ticket_row
from tests.conftest import dispatch, report, running_worker, settle, sleep_until, step
from workflows.ticket import TicketWorkflow
from tests.replay_fixtures import replay

H = timedelta(hours=1)
MINUTE = timedelta(minutes=1)


def read_models_of(ticket_id: str, month: str) -> tuple[dict, list[dict]]:
    models = ReadModels()
    try:
        Runner(open_store(), models, names=["ticket_list", "sla_compliance"]).catch_up()
        row = get_ticket_row(ticket_id, view=models.view("ticket_list"))
        sla = [r for r in sla_compliance(models.view("sla_compliance"), month) if ticket_id in str(r["events"])]
        return row, sla
    finally:
        models.close()


async def test_a_changed_window_table_changes_new_tickets_only(env, stack, monkeypatch):
    tq = f"tq-{uuid.uuid4()}"
    # no sticky cache: every workflow task replays the ticket's history from the start
    no_cache = {"max_cached_workflows": 0}
    async with running_worker(env.client, stack, tq, **no_cache):
        handle, reported = await report(env.client, tq, "critical", "A")  # on site within 4 h
        state = await dispatch(handle, "critical", "A")
        tid = reported.ticket_id
        month = reported.reported_at.astimezone(CST).strftime("%Y-%m")
        history_before = stack.store.history("ticket", tid)
        rows_before = read_models_of(tid, month)
    assert state.deadlines == {"on_site": reported.reported_at + 4 * H}

    # the company tightens the table: critical in zone A on site within 1 h, warned at half time
    monkeypatch.setitem(policy.SLA_TABLE, (Severity.critical, Zone.A), Window(Goal.on_site, within=H))
    monkeypatch.setattr(policy, "WARNING_AT", 0.5)

    # a new worker replays the running ticket under the new rules, on every task
    async with running_worker(env.client, stack, tq, **no_cache):
        assert (await handle.query(TicketWorkflow.current)).deadlines == state.deadlines
        await sleep_until(env, reported.reported_at + 3 * H + MINUTE)
        st = await settle(handle, lambda s: s.warnings)  # warned at 75 % of 4 h, as recorded
        assert st.windows["on_site"].warn_at == reported.reported_at + 3 * H
        assert st.warnings[0].at - reported.reported_at >= 3 * H  # not at half of it
        assert st.breaches == []  # and no breach of a 1 h window, which would have come first
        await sleep_until(env, reported.reported_at + 4 * H + MINUTE)
        st = await settle(handle, lambda s: s.escalations)
        assert [(b.goal, b.deadline) for b in st.breaches] == [("on_site", reported.reported_at + 4 * H)]

        # the past is unchanged: the recorded events, the state as of any instant, the read models
        history = stack.store.history("ticket", tid)
        assert history[:len(history_before)] == history_before
        as_of = kinds.replay("ticket", tid, history, as_of=reported.reported_at + 30 * MINUTE)
        assert as_of.deadlines == {"on_site": reported.reported_at + 4 * H} and as_of.breaches == []
        assert read_models_of(tid, month)[0]["deadlines"] == rows_before[0]["deadlines"]

        # the future follows the new table
        new, fresh = await report(env.client, tq, "critical", "A")
        assert fresh.deadlines == {"on_site": fresh.reported_at + H}
        assert fresh.windows["on_site"].warn_at == fresh.reported_at + 30 * MINUTE
        await step(new, "triage", "S001", severity="critical", zone="A")
        await step(handle, "arrive", "E001", staff_id_shown=True)

    for name in ("ticket_history.json", "ticket_history_one_machinery.json", "ticket_history_one_round_trip.json"):
        await replay(name)
