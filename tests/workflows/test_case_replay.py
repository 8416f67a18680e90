"""Replay safety for the case workflows: each recorded history (tests/record_case_fixtures.py)
must replay on today's workflow code, so a change that would break in-flight complaints,
returns, inspections or plans fails here (use workflow.patched). The `*_code_1.json` four
were started by workflows/messages.CODE 1: they hold no patch marker; the others were
recorded before runs carried the code, and hold theirs."""
import json
from pathlib import Path

import pytest
from temporalio.client import WorkflowHistory
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.worker import Replayer

from tests.replay_fixtures import markers
from tests.workflows.test_replay import start_input
from workflows.complaint import ComplaintWorkflow
from workflows.inspection import InspectionWorkflow
from workflows.messages import CODE
from workflows.plan import PlanWorkflow
from workflows.returns import ReturnWorkflow

FIXTURES = Path(__file__).parent.parent / "fixtures"


@pytest.mark.parametrize("fixture,workflow,least", [
    ("complaint_history.json", ComplaintWorkflow, 40),  # a customer escalation, a breach, reply and close
    ("return_history.json", ReturnWorkflow, 40),  # a breached hand-off, then every step of an exchange
    ("inspection_history.json", InspectionWorkflow, 25),  # overdue, escalated, a finding opens a ticket
    ("plan_history.json", PlanWorkflow, 10),  # a month's run that continues as new
    ("complaint_history_code_1.json", ComplaintWorkflow, 40),
    ("return_history_code_1.json", ReturnWorkflow, 40),
    ("inspection_history_code_1.json", InspectionWorkflow, 25),
    ("plan_history_code_1.json", PlanWorkflow, 10),
])
async def test_a_recorded_case_history_replays_on_the_current_workflow(fixture, workflow, least):
    raw = (FIXTURES / fixture).read_text()
    assert len(json.loads(raw)["events"]) > least
    patches, _ = markers(raw)
    code = start_input(raw).get("code", 0)
    if fixture.endswith("_code_1.json"):
        assert (code, patches) == (CODE, set())
    else:
        assert code == 0  # recorded before the code (and before the patches they would ask)
    replayer = Replayer(workflows=[workflow], data_converter=pydantic_data_converter)
    result = await replayer.replay_workflow(WorkflowHistory.from_json(f"{fixture}-replay", raw))
    assert result.replay_failure is None
