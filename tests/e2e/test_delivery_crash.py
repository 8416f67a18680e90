"""A worker SIGKILLed between an escalation and its delivery: once a worker is back the
escalation is delivered exactly once (issue 14). Real parts in real time: the Temporal dev
server, `python worker.py` as its own process, an SQLite event store, a real SMTP server
(aiosmtpd) that is down at the escalation and up after the restart."""
import asyncio
import os
import signal
import subprocess
import sys
import uuid
from datetime import timedelta

from temporalio.client import Client, WithStartWorkflowOperation
from temporalio.common import WorkflowIDConflictPolicy
from temporalio.contrib.pydantic import pydantic_data_converter

from activities import config
from activities.outbox import Outbox
from activities.store import open_store
from bench.common import dev_server
from domain.complaint_rules import RegisterComplaint
from tests.case_helpers import COMPLAINT
from tests.notify_fixtures import Smtp, eventually
from workflows.case_messages import CODE, CaseStart, RegisterCommand
from workflows.complaint import ComplaintWorkflow, complaint_workflow_id


def start_worker(address: str, env: dict[str, str]) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "worker.py"], cwd=str(config.ROOT), env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)


async def test_a_worker_killed_between_the_escalation_and_its_delivery_delivers_it_once_after_a_restart(
        tmp_path, monkeypatch):
    smtp = Smtp()  # down for now: nothing can be sent before the kill
    with dev_server() as (address, _):
        proc_env = {**os.environ, "TEMPORAL_ADDRESS": address, "WEIBAO_TASK_QUEUE": f"tq-{uuid.uuid4()}",
                    "WEIBAO_EVENT_STORE": "sqlite", "WEIBAO_DATA_DIR": str(tmp_path),
                    "WEIBAO_SQLITE_PATH": str(tmp_path / "events.db"), "WEIBAO_SECRET_KEY": "test",
                    "WEIBAO_SMTP_HOST": "127.0.0.1", "WEIBAO_SMTP_PORT": str(smtp.port),
                    "WEIBAO_SMTP_SECURITY": "none", "WEIBAO_SMTP_FROM": "weibao@example.com",
                    "WEIBAO_DELIVERY_FIRST_RETRY": "1s", "WEIBAO_DELIVERY_LONGEST_RETRY": "2s",
                    "WEIBAO_ACK_WITHIN": "1h"}
        for name in ("WEIBAO_EVENT_STORE", "WEIBAO_DATA_DIR", "WEIBAO_SQLITE_PATH"):
            monkeypatch.setenv(name, proc_env[name])
        worker = start_worker(address, proc_env)
        store, outbox = open_store(), Outbox()
        try:
            client = await Client.connect(address, data_converter=pydantic_data_converter)
            cid = f"c{uuid.uuid4().hex[:8]}"
            op = WithStartWorkflowOperation(ComplaintWorkflow.run,
                                            CaseStart(case_id=cid, windows={"acknowledged": timedelta(seconds=4)},
                                                      code=CODE),
                                            id=complaint_workflow_id(cid), task_queue=proc_env["WEIBAO_TASK_QUEUE"],
                                            id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING)
            await client.execute_update_with_start_workflow(
                ComplaintWorkflow.register,
                RegisterCommand(actor="C001", complaint=RegisterComplaint(**{**COMPLAINT, "about_person": "E002"})),
                start_workflow_operation=op, id="register")
            notice = f"complaint-{cid}:acknowledged:breach:escalated"
            # the escalation is a fact, and its first delivery attempt failed: kill the worker now
            await eventually(lambda: [a for a in outbox.attempts(notice) if a["status"] == "failed"],
                             "the escalation recorded and its first attempt failed", seconds=60)
            worker.send_signal(signal.SIGKILL)
            worker.wait(timeout=10)
            assert smtp.mailbox.received == []
            smtp.start()
            worker = start_worker(address, proc_env)  # a worker is back
            # killed after the relay's claim and before its start, the delivery waits for the claim
            # to lapse (30 s: activities/relay.lease) and the next look (5 s)
            await eventually(lambda: [e for e in store.history("complaint", cid) if e["type"] == "NotificationSent"
                                      and e["data"]["notice"] == notice], "delivered after the restart", seconds=120)
            mails = [m for m in smtp.mailbox.to("zheng.yu@example.com") if "上报直接上级" in m]
            assert len(mails) == 1 and cid in mails[0]
            escalations = [e for e in store.history("complaint", cid) if e["type"] == "Escalated"]
            levels = [e["data"]["level"] for e in escalations]
            assert levels[0] == 1 and len(levels) == len(set(levels))  # each level recorded once across the kill
            attempts = outbox.attempts(notice)
            assert [a["status"] for a in attempts][-1] == "sent"
            # every attempt on record, the first send's run again after the kill included
            assert [a["attempt"] for a in attempts] == list(range(1, len(attempts) + 1))
        finally:
            if worker.poll() is None:
                worker.send_signal(signal.SIGTERM)
                try:
                    worker.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    worker.kill()
            smtp.stop()
            outbox.close()
            store.close()
