"""Replaying a recorded ticket history from tests/fixtures on today's TicketWorkflow."""
from __future__ import annotations

import base64
import json
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


def markers(raw: str) -> tuple[set[str], set[str]]:
    """The patch ids and the local activity types a history's markers record."""
    patches, activities = set(), set()
    for event in json.loads(raw)["events"]:
        marker = event.get("markerRecordedEventAttributes")
        if not marker:
            continue
        payloads = [json.loads(base64.b64decode(p["data"]))
                    for v in marker["details"].values() for p in v["payloads"] if p.get("data")]
        if marker["markerName"] == "core_patch":
            patches |= {p["id"] for p in payloads if isinstance(p, dict) and "id" in p}
        else:
            activities |= {p["activity_type"] for p in payloads if isinstance(p, dict) and "activity_type" in p}
    return patches, activities
