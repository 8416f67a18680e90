"""Replay safety: recorded ticket histories must replay against today's workflow code,
so a change that would break in-flight tickets fails here (use workflow.patched).

`ticket_history.json` was recorded before tickets became a case kind (its appends went
through the activity `record`); `ticket_history_one_machinery.json` after, through
`record_case` behind the patch marker. Both branches of the patch are replayed."""
import base64
import json
from pathlib import Path

import pytest
from temporalio.client import WorkflowHistory
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.worker import Replayer

from workflows.ticket import PATCH_ONE_RECORD, TicketWorkflow

FIXTURES = Path(__file__).parent / "fixtures"


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


@pytest.mark.parametrize("name,patched,appends", [
    ("ticket_history.json", False, {"record"}),
    ("ticket_history_one_machinery.json", True, {"record_case"}),
])
async def test_a_recorded_ticket_history_replays_on_the_current_workflow(name, patched, appends):
    raw = (FIXTURES / name).read_text()
    assert len(json.loads(raw)["events"]) > 50  # a full lifecycle with a breach, not a stub
    patches, activities = markers(raw)
    assert (PATCH_ONE_RECORD in patches) is patched
    assert activities & {"record", "record_case"} == appends
    history = WorkflowHistory.from_json("ticket-replay-fixture", raw)
    replayer = Replayer(workflows=[TicketWorkflow], data_converter=pydantic_data_converter)
    result = await replayer.replay_workflow(history)
    assert result.replay_failure is None
