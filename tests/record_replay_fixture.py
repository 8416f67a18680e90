"""Records one full ticket history for the replay test (tests/workflows/test_replay.py).

    .venv/bin/python -m tests.record_replay_fixture

It writes `fixtures/ticket_history_started_by_code_1.json` (or the file named as its
argument). Kept beside it, recorded the same way by earlier code, all of which must
replay: `ticket_history.json` (before tickets became a case kind, before the patch
`ticket-records-through-record-case`) and `ticket_history_one_machinery.json` (after it,
before warnings and escalations were delivered and raised in one round trip) and
`ticket_history_one_round_trip.json` (after, before search attributes) and
`ticket_history_search_attributes.json` (after, before the delivery relay) and
`ticket_history_delivery_relay.json` (after, before runs carried the code that started
them, workflows/messages.CODE). Re-record only on
purpose: the point of a fixture is that it was recorded by an earlier version of the
workflow, so a change that breaks in-flight tickets fails."""
from __future__ import annotations

import asyncio
import sys
import tempfile
import uuid
from datetime import timedelta
from pathlib import Path

from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment

from activities import config
from activities.outbox import Outbox
from activities.store import open_store
from activities.record import Recorder
from tests.conftest import dispatch, report, running_worker, settle, sleep_until, step

FIXTURE = Path(__file__).parent / "fixtures" / (sys.argv[1] if len(sys.argv) > 1 else
                                                 "ticket_history_started_by_code_1.json")


async def main() -> None:
    import os

    tmp = tempfile.mkdtemp()
    os.environ.update(WEIBAO_EVENT_STORE="sqlite", WEIBAO_SQLITE_PATH=f"{tmp}/events.db")
    acts = Recorder(open_store(), config.load_org(), Outbox())
    async with await WorkflowEnvironment.start_time_skipping(
            data_converter=pydantic_data_converter,
            test_server_existing_path=config.binary("temporal-test-server")) as env:
        tq = f"tq-{uuid.uuid4()}"
        async with running_worker(env.client, acts, tq):
            handle, state = await report(env.client, tq, "general", "A", ticket_id="replay-fixture")
            await sleep_until(env, state.reported_at + timedelta(hours=1))
            await dispatch(handle, "critical", "A", category="paid")
            await sleep_until(env, state.reported_at + timedelta(hours=4, minutes=30))
            await settle(handle, lambda s: s.escalations)
            await step(handle, "arrive", "E001", staff_id_shown=True)
            await step(handle, "quote-fee", "E001", amount_yuan="480.00", items=["labour 2h", "PSU"])
            await step(handle, "accept-fee", "E001", accepted_by="Dr Li")
            await step(handle, "take-back", "E001", receipt_no="R-0001", items=["PSU unit"])
            await step(handle, "return-equipment", "E001", receipt_no="R-0001")
            await step(handle, "resolve", "E001", cause="PSU failed", resolution="replaced PSU", parts_used=["PSU"])
            await step(handle, "sign-off", "E001", signature="Li Wei", satisfaction=4, opinion="fast once here")
            await step(handle, "close", "S001", time_rating=3, quality_rating=5)
            await handle.result()
            history = await handle.fetch_history()
    FIXTURE.write_text(history.to_json())
    print(f"wrote {FIXTURE} ({len(history.events)} events)")


if __name__ == "__main__":
    asyncio.run(main())
