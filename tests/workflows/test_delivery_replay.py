"""Replay safety of the Delivery workflow: every shape it has recorded replays on today's
code (fixtures by `python -m tests.record_delivery_fixtures`, the older two by its earlier
versions).

- A request without a plan is planned by the workflow's own local activity (every
  delivery before `start_delivery` made the plan, and a manager's re-send still); one
  with the plan schedules its sends at once. Which one a history took is in its input,
  so no patch is needed.
- A request that says `first_send_in_task` (every one started since) sends the first
  attempt as a local activity in the workflow's task and, when it fails, the rest of the
  budget as the regular activity after a timer of `first_retry`; one that does not (the
  two older fixtures) sends every attempt as the regular activity. That too is in the
  input: no patch, so no marker and no search-attribute upsert in each delivery."""
import base64
import json

import pytest
from temporalio.client import WorkflowHistory
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.worker import Replayer

from tests.replay_fixtures import FIXTURES, markers
from workflows.delivery import DeliveryWorkflow

SHAPES = [  # fixture, planned by the workflow, first send in its task, a regular activity sent it
    ("delivery_history_plan_in_workflow.json", True, False, True),
    ("delivery_history_plan_in_request.json", False, False, True),
    ("delivery_history_first_send_in_task.json", False, True, False),
    ("delivery_history_first_send_failed.json", False, True, True),
]


@pytest.mark.parametrize("name,plans_itself,in_task,by_activity", SHAPES)
async def test_a_recorded_delivery_replays_on_the_current_workflow(name, plans_itself, in_task, by_activity):
    raw = (FIXTURES / name).read_text()
    patches, local_activities = markers(raw)
    compact = raw.replace(" ", "")
    assert ("delivery_plan" in local_activities) is plans_itself
    assert "record_case" in local_activities  # NotificationSent and the acknowledgement, recorded on the case
    assert not patches
    started = json.loads(raw)["events"][0]["workflowExecutionStartedEventAttributes"]["input"]["payloads"][0]
    assert json.loads(base64.b64decode(started["data"])).get("first_send_in_task", False) is in_task
    assert ("deliver" in local_activities) is in_task  # the first attempt, sent or not, in the task
    assert ('"EVENT_TYPE_ACTIVITY_TASK_COMPLETED"' in compact) is by_activity  # the mail was sent, not a stub
    if in_task and by_activity:  # the first attempt failed: the retry waited first_retry on a timer
        assert '"EVENT_TYPE_TIMER_FIRED"' in compact
    history = WorkflowHistory.from_json(f"replay-{name}", raw)
    result = await Replayer(workflows=[DeliveryWorkflow], data_converter=pydantic_data_converter).replay_workflow(history)
    assert result.replay_failure is None, result.replay_failure
    assert history.events[-1].event_type == 2  # EVENT_TYPE_WORKFLOW_EXECUTION_COMPLETED: it ran to its end
