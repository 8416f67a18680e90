"""Replay safety for the case workflows: each recorded history (tests/record_case_fixtures.py)
must replay on today's workflow code, so a change that would break in-flight complaints,
returns, inspections or plans fails here (use workflow.patched)."""
import json
from pathlib import Path

import pytest
from temporalio.client import WorkflowHistory
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.worker import Replayer

from workflows.complaint import ComplaintWorkflow
from workflows.inspection import InspectionWorkflow
from workflows.plan import PlanWorkflow
from workflows.returns import ReturnWorkflow

FIXTURES = Path(__file__).parent.parent / "fixtures"


@pytest.mark.parametrize("fixture,workflow,least", [
    ("complaint_history.json", ComplaintWorkflow, 40),  # a customer escalation, a breach, reply and close
    ("return_history.json", ReturnWorkflow, 40),  # a breached hand-off, then every step of an exchange
    ("inspection_history.json", InspectionWorkflow, 25),  # overdue, escalated, a finding opens a ticket
    ("plan_history.json", PlanWorkflow, 10),  # a month's run that continues as new
])
async def test_a_recorded_case_history_replays_on_the_current_workflow(fixture, workflow, least):
    raw = (FIXTURES / fixture).read_text()
    assert len(json.loads(raw)["events"]) > least
    replayer = Replayer(workflows=[workflow], data_converter=pydantic_data_converter)
    result = await replayer.replay_workflow(WorkflowHistory.from_json(f"{fixture}-replay", raw))
    assert result.replay_failure is None
