"""Every recorded fact keeps the case's search attributes up to date (workflows/search.py):
what an operator's `temporal workflow list --query` finds, read back from the server."""
import json
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

from temporalio import workflow

from temporalio.api.common.v1 import WorkflowExecution
from temporalio.api.workflowservice.v1 import DescribeWorkflowExecutionRequest

from temporalio.worker import Worker

from tests.conftest import REPORT, dispatch, report, running_worker, settle, sleep_until, step
from workflows import search
from domain.lifecycle import TicketState
from workflows.ticket import StartTicket, TicketWorkflow


async def attributes(handle) -> dict[str, object]:
    """weibao's attributes as the server holds them (JSON values; a datetime as its ISO
    text). Read raw: the time-skipping server keeps an unset attribute as an empty value,
    which the client's typed decoding refuses."""
    described = await handle._client.workflow_service.describe_workflow_execution(DescribeWorkflowExecutionRequest(
        namespace=handle._client.namespace, execution=WorkflowExecution(workflow_id=handle.id)))
    fields = described.workflow_execution_info.search_attributes.indexed_fields
    return {name: json.loads(p.data) for name, p in fields.items() if name.startswith("Weibao") and p.data}


async def attributes_when(handle, predicate, seconds: float = 10.0) -> dict[str, object]:
    """The attributes once `predicate` holds (the upsert follows the fact in the same task)."""
    import asyncio

    found: dict[str, object] = {}
    for _ in range(int(seconds / 0.05)):
        found = await attributes(handle)
        if predicate(found):
            return found
        await asyncio.sleep(0.05)
    raise AssertionError(f"search attributes never matched; last: {found}")


async def test_a_ticket_is_indexed_at_every_step_and_alarm(env, worker, stack):
    handle, state = await report(env.client, worker, "critical", "A")
    opened = await attributes(handle)
    assert opened == {"WeibaoKind": "ticket", "WeibaoStatus": "reported", "WeibaoCustomer": REPORT["customer"],
                      "WeibaoSeverity": "critical", "WeibaoZone": "A", "WeibaoBreached": False,
                      "WeibaoEscalationLevel": 0,
                      "WeibaoNextDeadline": min(state.deadlines.values()).isoformat()}

    await dispatch(handle, "critical", "A", engineer="E001")
    dispatched = await attributes(handle)
    assert dispatched["WeibaoStatus"] == "dispatched" and dispatched["WeibaoAssignee"] == "E001"
    assert not any(REPORT["contact_phone"] in str(v) for v in dispatched.values())

    on_site = state.deadlines["on_site"]
    await sleep_until(env, on_site + timedelta(minutes=1))
    breached = await attributes_when(handle, lambda a: a["WeibaoBreached"] is True)
    assert breached["WeibaoEscalationLevel"] == 1

    await step(handle, "arrive", "E001", staff_id_shown=True)
    final = await settle(handle, lambda s: "on_site" in s.met)
    arrived = await attributes(handle)
    assert arrived["WeibaoStatus"] == final.status == "in_progress"
    assert "WeibaoNextDeadline" not in arrived  # a critical ticket's only window is met
    assert arrived["WeibaoBreached"] is True and arrived["WeibaoEscalationLevel"] == 1  # they stay on record


async def test_the_next_deadline_follows_the_open_windows(env, worker, stack):
    handle, state = await report(env.client, worker, "general", "A")
    await dispatch(handle, "general", "A")
    await step(handle, "arrive", "E001", staff_id_shown=True)
    assert (await attributes(handle))["WeibaoNextDeadline"] == state.deadlines["resolved"].isoformat()
    await step(handle, "resolve", "E001", cause="failed PSU", resolution="replaced PSU", parts_used=["PSU"])
    await step(handle, "sign-off", "E001", signature="Li Wei", satisfaction=5)
    await step(handle, "close", "S001", time_rating=5, quality_rating=5)
    closed = await attributes(handle)
    assert closed["WeibaoStatus"] == "closed"
    assert "WeibaoNextDeadline" not in closed  # unset once nothing is pending
    assert search.flags()[1::2] == [f"{k.name}={k.indexed_value_type.name.title()}" for k in search.KEYS]


@workflow.defn(name="Ticket", sandboxed=False)
class TicketBeforeSearchAttributes(TicketWorkflow):
    """The ticket's workflow as deployed before search attributes: it upserts none."""

    @workflow.init
    def __init__(self, start: StartTicket) -> None:
        super().__init__(start)

    @workflow.run
    async def run(self, start: StartTicket) -> TicketState:
        return await super().run(start)

    def _index(self) -> None:
        pass


async def test_a_ticket_opened_before_the_attributes_is_indexed_from_its_next_fact(env, stack):
    queue = f"tq-{uuid.uuid4()}"
    old = Worker(env.client, task_queue=queue, workflows=[TicketBeforeSearchAttributes],
                 activities=stack.all(), activity_executor=ThreadPoolExecutor(4),
                 max_cached_workflows=0)  # no sticky queue for the next worker to wait out
    async with old:
        handle, state = await report(env.client, queue, "general", "A", code=0)  # started before CODE
        await step(handle, "triage", "S001", severity="general", zone="A", service_category="free")
    assert await attributes(handle) == {}
    # the new code replays the recorded steps (no cache: every task replays) without
    # upserting for them, then indexes the ticket with its next fact
    async with running_worker(env.client, stack, queue, max_cached_workflows=0):
        await step(handle, "dispatch", "S001", engineer="E001", travel_mode="taxi")
        await step(handle, "arrive", "E001", staff_id_shown=True)
        indexed = await attributes(handle)
    assert indexed["WeibaoStatus"] == "in_progress" and indexed["WeibaoAssignee"] == "E001"
    assert indexed["WeibaoNextDeadline"] == state.deadlines["resolved"].isoformat()
