"""A run carries the workflow code that started it (workflows/messages.CODE). One started by
today's code takes every change without asking `workflow.patched`: its history holds no
patch marker and no upsert of TemporalChangeVersion (a visibility write on the server for
each). One started before (code 0: no `code` in its input, as every run before CODE) still
asks, so the markers its replay needs are recorded. Both record the same facts, are
indexed alike, and their alarms go out through the relay."""
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

from temporalio import workflow
from temporalio.worker import Worker

from domain.lifecycle import TicketState
from tests.conftest import dispatch, end_started_workflows, report, running_worker, settle, sleep_until, step
from tests.replay_fixtures import markers
from tests.workflows.test_search_attributes import attributes
from workflows import search
from workflows.casework import PATCH_DELIVERY_BY_RELAY, PATCH_ONE_ROUND_TRIP
from workflows.messages import CODE
from workflows.ticket import PATCH_ONE_RECORD, StartTicket, TicketWorkflow


def shape(history) -> tuple[set[str], set[str], int, int]:
    """(the patch ids of its markers, its local activities, its upserts of TemporalChangeVersion,
    its upserts of weibao's attributes)."""
    patches, activities = markers(history.to_json())
    versions = weibao = 0
    for e in history.events:
        if e.HasField("upsert_workflow_search_attributes_event_attributes"):
            fields = e.upsert_workflow_search_attributes_event_attributes.search_attributes.indexed_fields
            versions += "TemporalChangeVersion" in fields
            weibao += any(name.startswith("Weibao") for name in fields)
    return patches, activities, versions, weibao


async def test_a_run_started_by_todays_code_records_no_patch_and_one_started_before_still_does(env, worker, stack):
    runs = {}
    for code in (CODE, 0):
        handle, state = await report(env.client, worker, "critical", "A", code=code)
        await dispatch(handle, "critical", "A", engineer="E001")
        await sleep_until(env, state.deadlines["on_site"] + timedelta(minutes=1))  # warning, breach, escalation
        await settle(handle, lambda s: s.escalations)
        await step(handle, "arrive", "E001", staff_id_shown=True)
        runs[code] = handle, state.ticket_id

    (new, new_id), (old, old_id) = runs[CODE], runs[0]
    new_patches, new_activities, new_versions, new_indexed = shape(await new.fetch_history())
    old_patches, old_activities, old_versions, old_indexed = shape(await old.fetch_history())
    assert new_patches == set() and new_versions == 0
    assert old_patches == {PATCH_ONE_RECORD, f"{search.PATCH}:1", PATCH_ONE_ROUND_TRIP, PATCH_DELIVERY_BY_RELAY}
    assert old_versions == len(old_patches)  # each marker came with its upsert
    assert new_indexed == old_indexed > 0  # indexed alike, fact by fact

    def facts(tid: str) -> list[str]:
        return [e["type"] for e in stack.store.history("ticket", tid)]

    assert facts(new_id) == facts(old_id)
    assert "Escalated" in facts(new_id)
    assert await attributes(new) == await attributes(old)
    # both alarms in one round trip, their deliveries left to the relay (none started from the task)
    assert new_activities == old_activities and "raise_alarm" in new_activities
    assert "start_delivery" not in new_activities
    for tid in (new_id, old_id):
        assert stack.outbox.notice(f"ticket-{tid}:on_site:breach:escalated") is not None


@workflow.defn(name="Ticket", sandboxed=False)
class TicketBeforeCode(TicketWorkflow):
    """The ticket's workflow as deployed before runs carried their code: it reads none, and
    asks `workflow.patched` at every change."""

    @workflow.init
    def __init__(self, start: StartTicket) -> None:
        super().__init__(start)

    @workflow.run
    async def run(self, start: StartTicket) -> TicketState:
        return await super().run(start)

    def _patched(self, patch_id: str) -> bool:
        return workflow.patched(patch_id)


async def test_a_run_started_by_todays_api_on_a_worker_from_before_replays_on_todays_worker(env, stack):
    """A rolling deploy, the API first: the run says code 1, but a worker from before took
    its first tasks and recorded their patch markers. Today's worker replays them (no
    sticky cache: every task replays the whole history) and goes on without new ones."""
    queue = f"tq-{uuid.uuid4()}"
    old = Worker(env.client, task_queue=queue, workflows=[TicketBeforeCode], activities=stack.all(),
                 activity_executor=ThreadPoolExecutor(4), max_cached_workflows=0)
    try:
        async with old:
            handle, state = await report(env.client, queue, "critical", "A", code=CODE)
            await step(handle, "triage", "S001", severity="critical", zone="A", service_category="free")
        before = shape(await handle.fetch_history())[0]
        assert before == {PATCH_ONE_RECORD, f"{search.PATCH}:1"}  # the old worker marked them
        async with running_worker(env.client, stack, queue, max_cached_workflows=0):
            await step(handle, "dispatch", "S001", engineer="E001", travel_mode="taxi")
            await sleep_until(env, state.deadlines["on_site"] + timedelta(minutes=1))
            await settle(handle, lambda s: s.escalations)
            await step(handle, "arrive", "E001", staff_id_shown=True)
        patches, activities, versions, _ = shape(await handle.fetch_history())
        assert patches == before and versions == len(before)  # the alarms' patches asked for none
        assert "raise_alarm" in activities
        assert [e["type"] for e in stack.store.history("ticket", state.ticket_id)][-3:] == [
            "SlaBreached", "Escalated", "ArrivedOnSite"]
    finally:
        await end_started_workflows()
