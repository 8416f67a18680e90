"""Records one history per case workflow for the replay test (tests/workflows/test_case_replay.py):
a complaint (customer escalation, breach, reply, close), an exchange (a breached
hand-off, then every step), an overdue inspection whose finding opens a ticket, and a
maintenance plan's first month (it ends by continuing as new).

    .venv/bin/python -m tests.record_case_fixtures [SUFFIX]

writes `complaint_history{SUFFIX}.json` and its three siblings: without a suffix the four
recorded before runs carried the code that started them (workflows/messages.CODE; they
were recorded so, and hold the patch markers), with `_code_1` the four started by code 1
(no marker). Re-record only on purpose: the fixtures were recorded by an earlier version of the
workflows, so a change that would break in-flight cases fails the replay test."""
from __future__ import annotations

import asyncio
import os
import sys
import tempfile
import uuid
from datetime import timedelta
from pathlib import Path

from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment

from activities import config
from activities.outbox import Outbox
from activities.store import open_store
from activities.record import Recorder
from domain.maintenance import add_months, due_at
from domain.policy import CST
from tests.case_helpers import (ComplaintWorkflow, InspectionWorkflow, ReturnWorkflow, register_complaint,
                                request_return, settle, start_inspection, start_plan, step)
from tests.conftest import STARTED, end_started_workflows, running_worker, sleep_until

FIXTURES = Path(__file__).parent / "fixtures"
SUFFIX = sys.argv[1] if len(sys.argv) > 1 else ""
H = timedelta(hours=1)


async def record(env: WorkflowEnvironment, tq: str) -> dict[str, str]:
    out = {}
    handle, s = await register_complaint(env.client, tq, about_person="E002", ticket_id="t-replay")
    await step(handle, ComplaintWorkflow, "escalate", "C001", to="superior", reason="no call back")
    await sleep_until(env, s.registered_at + 3 * H + timedelta(minutes=1))
    await settle(handle, lambda st: st.escalations, workflow=ComplaintWorkflow)
    await step(handle, ComplaintWorkflow, "acknowledge", "S002")
    await step(handle, ComplaintWorkflow, "reply", "S002", reply="apologised", substantiated=True)
    await step(handle, ComplaintWorkflow, "close", "C001", satisfaction=3, valuable_suggestion=True)
    await handle.result()
    out[f"complaint_history{SUFFIX}.json"] = (await handle.fetch_history()).to_json()

    today = (await env.get_current_time()).astimezone(CST).date()
    handle, s = await request_return(env.client, tq, delivery_date=today - timedelta(days=9))
    await sleep_until(env, s.requested_at + 25 * H)
    await settle(handle, lambda st: st.escalations, workflow=ReturnWorkflow)
    await step(handle, ReturnWorkflow, "approve", "M002", approved=True)
    await step(handle, ReturnWorkflow, "inspect", "M003", defect_confirmed=True, root_cause="bad batch",
               responsible_department="project", responsible_person="E002")
    await step(handle, ReturnWorkflow, "ship", "M002", replacement_serial_no="T20-9")
    await step(handle, ReturnWorkflow, "confirm", "C001", confirmed_by="Dr Li", satisfaction=4)
    await handle.result()
    out[f"return_history{SUFFIX}.json"] = (await handle.fetch_history()).to_json()

    now = await env.get_current_time()
    handle, s = await start_inspection(env.client, tq, now, kind="key_equipment", window=timedelta(days=14))
    await sleep_until(env, now + timedelta(days=15))
    await settle(handle, lambda st: st.escalations, workflow=InspectionWorkflow)
    await step(handle, InspectionWorkflow, "inspect", "E002", team=["E002"], customer_staff_present=True,
               trained=True, findings=[dict(device="UPS", status="degraded", drift_percent=30),
                                       dict(device="DB server", status="faulty", open_ticket=True,
                                            symptoms="failed disk")])
    await handle.result()
    STARTED.append(env.client.get_workflow_handle(f"ticket-{s.case_id}-f2"))
    out[f"inspection_history{SUFFIX}.json"] = (await handle.fetch_history()).to_json()

    today = (await env.get_current_time()).astimezone(CST).date()
    handle, s = await start_plan(env.client, tq, delivery_date=today, responsible="E002")
    first_run = (await handle.describe()).run_id
    await sleep_until(env, due_at(add_months(today, 1)) + H)
    first = env.client.get_workflow_handle(handle.id, run_id=first_run)
    out[f"plan_history{SUFFIX}.json"] = (await first.fetch_history()).to_json()
    return out


async def main() -> None:
    tmp = tempfile.mkdtemp()
    os.environ.update(WEIBAO_EVENT_STORE="sqlite", WEIBAO_SQLITE_PATH=f"{tmp}/events.db")
    acts = Recorder(open_store(), config.load_org(), Outbox())
    async with await WorkflowEnvironment.start_time_skipping(
            data_converter=pydantic_data_converter,
            test_server_existing_path=config.binary("temporal-test-server")) as env:
        tq = f"tq-{uuid.uuid4()}"
        async with running_worker(env.client, acts, tq):
            try:
                histories = await record(env, tq)
            finally:
                await end_started_workflows()
    for name, text in histories.items():
        (FIXTURES / name).write_text(text)
        print(f"wrote {FIXTURES / name}")


if __name__ == "__main__":
    asyncio.run(main())
