"""Replay safety of the Delivery workflow: both of its recorded shapes replay on today's
code (fixtures by `python -m tests.record_delivery_fixtures`). A request without a plan
is planned by the workflow's own local activity — every delivery before `start_delivery`
made the plan, and a manager's re-send still — and one with the plan schedules its sends
at once; which one a history took is in its input, so no patch is needed, and this test
holds both to it."""
import pytest
from temporalio.client import WorkflowHistory
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.worker import Replayer

from tests.replay_fixtures import FIXTURES, markers
from workflows.delivery import DeliveryWorkflow


@pytest.mark.parametrize("name,plans_itself", [("delivery_history_plan_in_workflow.json", True),
                                               ("delivery_history_plan_in_request.json", False)])
async def test_a_recorded_delivery_replays_on_the_current_workflow(name, plans_itself):
    raw = (FIXTURES / name).read_text()
    _, local_activities = markers(raw)
    assert ("delivery_plan" in local_activities) is plans_itself
    assert "record_case" in local_activities  # NotificationSent and the acknowledgement, recorded on the case
    assert '"EVENT_TYPE_ACTIVITY_TASK_COMPLETED"' in raw.replace(" ", "")  # the mail was sent, not a stub
    history = WorkflowHistory.from_json(f"replay-{name}", raw)
    result = await Replayer(workflows=[DeliveryWorkflow], data_converter=pydantic_data_converter).replay_workflow(history)
    assert result.replay_failure is None, result.replay_failure
