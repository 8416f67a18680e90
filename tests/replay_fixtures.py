"""Replaying a recorded ticket history from tests/fixtures on today's TicketWorkflow."""
from __future__ import annotations

from pathlib import Path

from temporalio.client import WorkflowHistory
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.worker import Replayer

from workflows.ticket import TicketWorkflow

FIXTURES = Path(__file__).parent / "fixtures"


async def replay(name: str) -> None:
    """Replay fixture `name`; raises when today's code would not replay it."""
    history = WorkflowHistory.from_json("ticket-replay-fixture", (FIXTURES / name).read_text())
    replayer = Replayer(workflows=[TicketWorkflow], data_converter=pydantic_data_converter)
    result = await replayer.replay_workflow(history)
    assert result.replay_failure is None, result.replay_failure
