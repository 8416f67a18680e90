"""Replay safety: a recorded ticket history must replay against today's workflow code,
so a change that would break in-flight tickets fails here (use workflow.patched)."""
import json
from pathlib import Path

from temporalio.client import WorkflowHistory
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.worker import Replayer

from workflows.ticket import TicketWorkflow

FIXTURE = Path(__file__).parent / "fixtures" / "ticket_history.json"


async def test_a_recorded_ticket_history_replays_on_the_current_workflow():
    raw = FIXTURE.read_text()
    history = WorkflowHistory.from_json("ticket-replay-fixture", raw)
    assert len(json.loads(raw)["events"]) > 50  # a full lifecycle with a breach, not a stub
    replayer = Replayer(workflows=[TicketWorkflow], data_converter=pydantic_data_converter)
    result = await replayer.replay_workflow(history)
    assert result.replay_failure is None
