"""Records the Delivery workflow histories that tests/workflows/test_delivery_replay.py
replays:

    .venv/bin/python -m tests.record_delivery_fixtures

Today's code records the two shapes of the first send in the workflow's task (requests
with `first_send_in_task`), each the level-1 escalation of a breached ticket, started by its
case with the plan in the request, mailed to a real SMTP server (aiosmtpd) and
acknowledged:

- `delivery_history_first_send_in_task.json`: the mail sent by the local activity in the
  workflow's first task;
- `delivery_history_first_send_failed.json`: the SMTP server down for that first attempt,
  so the mail went out on the regular activity's retry after `first_retry`.

Recorded by earlier versions (their code is in git history; this script no longer writes
them): `delivery_history_plan_in_workflow.json` (a request without a plan, planned by the
workflow's own local activity) and `delivery_history_plan_in_request.json` (the first send
as a regular activity). Re-record only on purpose: a fixture's point is that it was
recorded by an earlier version of the workflow."""
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
    tmp = tempfile.mkdtemp()
    os.environ.update(WEIBAO_EVENT_STORE="sqlite", WEIBAO_SQLITE_PATH=f"{tmp}/events.db", WEIBAO_DATA_DIR=tmp,
                      WEIBAO_SMTP_HOST="127.0.0.1", WEIBAO_SMTP_PORT=str(smtp.port), WEIBAO_SMTP_SECURITY="none",
                      WEIBAO_SMTP_FROM="weibao@example.com", WEIBAO_SECRET_KEY="fixture", WEIBAO_ACK_WITHIN="2h")
    from activities import config
    from activities.delivery import Acknowledgement
    from activities.outbox import Outbox
    from activities.record import Recorder
    from activities.store import open_store
    from tests.conftest import dispatch, report, settle, sleep_until
    from workflows.delivery import DeliveryWorkflow, delivery_workflow_id
    from tests.conftest import running_worker

    acts = Recorder(open_store(), config.load_org(), Outbox())
    outbox = acts.outbox
    async with await WorkflowEnvironment.start_time_skipping(
            data_converter=pydantic_data_converter,
            test_server_existing_path=config.binary("temporal-test-server")) as env:
        tq = f"tq-{uuid.uuid4()}"
        async with running_worker(env.client, acts, tq):
            for name, smtp_up in (("first_send_in_task", True), ("first_send_failed", False)):
                if smtp_up:
                    smtp.start()
                handle, state = await report(env.client, tq, "critical", "A", ticket_id=f"delivery-fixture-{name}")
                await dispatch(handle)
                await sleep_until(env, state.deadlines["on_site"] + timedelta(minutes=1))
                await settle(handle, lambda s: s.escalations)
                notice = f"ticket-{state.ticket_id}:on_site:breach:escalated"
                delivery = env.client.get_workflow_handle(delivery_workflow_id(notice))
                if not smtp_up:
                    for _ in range(300):  # the first attempt failed: the server comes back for the retry
                        if outbox.attempts(notice):
                            break
                        await asyncio.sleep(0.05)
                    smtp.start()
                    await env.sleep(timedelta(minutes=10))
                for _ in range(300):  # sent, then acknowledged
                    if any(a["status"] == "sent" for a in outbox.attempts(notice)):
                        break
                    await asyncio.sleep(0.05)
                await asyncio.sleep(0.5)  # the task that sent it completes
                await delivery.execute_update(DeliveryWorkflow.acknowledge, Acknowledgement(by="S001", via="api"))
                await delivery.result()
                history = await delivery.fetch_history()
                path = FIXTURES / f"delivery_history_{name}.json"
                path.write_text(history.to_json())
                print(f"wrote {path} ({len(history.events)} events; attempts {outbox.attempts(notice)})")
                await handle.terminate("fixture recorded")
                smtp.stop()
    smtp.stop()


if __name__ == "__main__":
    asyncio.run(main())
