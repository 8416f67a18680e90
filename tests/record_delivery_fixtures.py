"""Records two Delivery workflow histories for tests/workflows/test_delivery_replay.py:

    .venv/bin/python -m tests.record_delivery_fixtures

- `delivery_history_plan_in_workflow.json`: a request without a plan, which the workflow
  plans itself in a local activity — what every delivery did before `start_delivery` made
  the plan (and what a manager's re-send still does);
- `delivery_history_plan_in_request.json`: the level-1 escalation of a breached ticket,
  started by its case with the plan in the request.

Each is sent by mail to a real SMTP server (aiosmtpd) and acknowledged. Re-record only on
purpose: a fixture's point is that it was recorded by an earlier version of the workflow."""
from __future__ import annotations

import asyncio
import os
import tempfile
import uuid
from datetime import timedelta
from pathlib import Path

from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment

FIXTURES = Path(__file__).parent / "fixtures"


async def main() -> None:
    from tests.notify_fixtures import Smtp

    smtp = Smtp()
    smtp.start()
    tmp = tempfile.mkdtemp()
    os.environ.update(WEIBAO_EVENT_STORE="sqlite", WEIBAO_SQLITE_PATH=f"{tmp}/events.db", WEIBAO_DATA_DIR=tmp,
                      WEIBAO_SMTP_HOST="127.0.0.1", WEIBAO_SMTP_PORT=str(smtp.port), WEIBAO_SMTP_SECURITY="none",
                      WEIBAO_SMTP_FROM="weibao@example.com", WEIBAO_SECRET_KEY="fixture", WEIBAO_ACK_WITHIN="2h")
    from activities import config
    from activities.delivery import Acknowledgement, DeliveryRequest
    from activities.outbox import Outbox
    from activities.record import Recorder
    from activities.store import open_store
    from tests.conftest import dispatch, report, settle, sleep_until
    from workflows.delivery import DeliveryWorkflow, delivery_workflow_id
    from tests.conftest import running_worker

    acts = Recorder(open_store(), config.load_org(), Outbox())
    async with await WorkflowEnvironment.start_time_skipping(
            data_converter=pydantic_data_converter,
            test_server_existing_path=config.binary("temporal-test-server")) as env:
        tq = f"tq-{uuid.uuid4()}"
        async with running_worker(env.client, acts, tq):
            handle, state = await report(env.client, tq, "critical", "A", ticket_id="delivery-fixture")
            await dispatch(handle)
            await sleep_until(env, state.deadlines["on_site"] + timedelta(minutes=1))
            await settle(handle, lambda s: s.escalations)
            notice = f"ticket-{state.ticket_id}:on_site:breach:escalated"
            in_request = env.client.get_workflow_handle(delivery_workflow_id(notice))
            again = notice + ":again"
            request = DeliveryRequest(notice=again, kind="ticket", case_id=state.ticket_id, event="Escalated",
                                      to="S001", to_name="Wu Gang", level=1, goal="on_site",
                                      deadline=state.deadlines["on_site"], responsible="E001",
                                      reason="on_site deadline missed", customer=state.customer, site=state.site,
                                      raised_at=state.deadlines["on_site"], first_round=2)
            in_workflow = await env.client.start_workflow(DeliveryWorkflow.run, request, id=delivery_workflow_id(again),
                                                          task_queue=tq)
            for name, delivery in (("plan_in_request", in_request), ("plan_in_workflow", in_workflow)):
                for _ in range(300):  # sent, then acknowledged
                    if [e async for e in delivery.fetch_history_events()
                            if e.HasField("activity_task_completed_event_attributes")]:
                        break
                    await asyncio.sleep(0.05)
                await delivery.execute_update(DeliveryWorkflow.acknowledge, Acknowledgement(by="S001", via="api"))
                await delivery.result()
                history = await delivery.fetch_history()
                path = FIXTURES / f"delivery_history_{name}.json"
                path.write_text(history.to_json())
                print(f"wrote {path} ({len(history.events)} events)")
            await handle.terminate("fixture recorded")
    smtp.stop()


if __name__ == "__main__":
    asyncio.run(main())
