"""Two workers on one task queue, one SIGKILLed under load (issue 17: past one machine).

Real parts in real time: the Temporal dev server, two `python worker.py` processes polling
the same task queue, one SQLite event store in tmp_path. A client takes 30 tickets through
report → triage → dispatch → arrive → resolve → sign-off → close, several at once; once a
third of the steps have answered, one worker is SIGKILLed. Every ticket still finishes
(its workflow's result), both workers did work (their identities are in the workflow
histories), and the event store holds, for every ticket, each expected event exactly once,
with no command id twice. The client retries a step that fails in transit with the same
Update id, as the API does behind an Idempotency-Key; nothing in the test waits on a clock:
each wait is for a positive signal under an overall timeout."""
from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import uuid
from collections import Counter
from pathlib import Path

from temporalio.api.enums.v1 import TaskQueueType
from temporalio.api.taskqueue.v1 import TaskQueue
from temporalio.api.workflowservice.v1 import DescribeTaskQueueRequest
from temporalio.client import (Client, WithStartWorkflowOperation, WorkflowHandle, WorkflowUpdateFailedError,
                               WorkflowUpdateRPCTimeoutOrCancelledError)
from temporalio.common import WorkflowIDConflictPolicy
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.service import RPCError

from activities import config
from activities.store import open_store
from bench.common import dev_server
from domain.steps import ReportTicket
from tests.conftest import REPORT
from workflows.messages import CODE
from workflows.ticket import ReportCommand, StartTicket, StepCommand, TicketWorkflow, ticket_workflow_id

TICKETS = 30
IN_FLIGHT = 8
STEPS = [
    ("triage", "S001", {"severity": "critical", "zone": "A", "service_category": "free"}),
    ("dispatch", "S001", {"engineer": "E001", "travel_mode": "taxi"}),
    ("arrive", "E001", {"staff_id_shown": True}),
    ("resolve", "E001", {"cause": "PSU failed", "resolution": "replaced the PSU", "parts_used": ["PSU"]}),
    ("sign-off", "E001", {"signature": "Li Wei", "satisfaction": 5}),
    ("close", "S001", {"time_rating": 5, "quality_rating": 5}),
]
EXPECTED = ["Reported", "Triaged", "Dispatched", "ArrivedOnSite", "Resolved", "SignedOff", "Closed"]
OVERALL = 300  # seconds for the whole load, kill included: a bound, not an expectation


def start_worker(env: dict[str, str], log: Path) -> subprocess.Popen:
    """`python worker.py`, its output in `log` (what a worker that exits early said)."""
    with open(log, "wb") as out:
        return subprocess.Popen([sys.executable, "worker.py"], cwd=str(config.ROOT), env=env,
                                stdout=out, stderr=subprocess.STDOUT, start_new_session=True)


def alive(proc: subprocess.Popen, log: Path) -> None:
    """Raises, with the end of its log, if the worker has exited."""
    if proc.poll() is not None:
        raise AssertionError(f"worker {proc.pid} exited with {proc.returncode}: "
                             f"{log.read_bytes()[-2000:].decode(errors='replace')}")


def identity(proc: subprocess.Popen) -> str:
    return f"{proc.pid}@{socket.gethostname()}"  # the Temporal SDK's default worker identity


async def pollers(client: Client, task_queue: str) -> set[str]:
    answer = await client.workflow_service.describe_task_queue(DescribeTaskQueueRequest(
        namespace=client.namespace, task_queue=TaskQueue(name=task_queue),
        task_queue_type=TaskQueueType.TASK_QUEUE_TYPE_WORKFLOW))
    return {p.identity for p in answer.pollers}


async def until(predicate, what: str, seconds: float = 60) -> None:
    async def loop():
        while not await predicate():
            await asyncio.sleep(0.2)
    try:
        await asyncio.wait_for(loop(), seconds)
    except asyncio.TimeoutError:
        raise AssertionError(f"never happened within {seconds} s: {what}") from None


async def retried(call, what: str):
    """`call()` again while it fails in transit (the worker holding the workflow was killed,
    the RPC timed out): the same Update id, so Temporal and the recorder do it once."""
    for attempt in range(30):
        try:
            return await call()
        except WorkflowUpdateFailedError:
            raise  # refused by the workflow: a real answer, never retried
        except (RPCError, WorkflowUpdateRPCTimeoutOrCancelledError):
            if attempt == 29:
                raise
            await asyncio.sleep(0.5)
    raise AssertionError(what)


async def one_ticket(client: Client, task_queue: str, ticket_id: str, progress: list[int]) -> None:
    op = lambda: WithStartWorkflowOperation(  # noqa: E731 (a fresh operation per attempt)
        TicketWorkflow.run, StartTicket(ticket_id=ticket_id, code=CODE), id=ticket_workflow_id(ticket_id),
        task_queue=task_queue, id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING)
    report = ReportCommand(actor="C001", report=ReportTicket(**REPORT, severity="critical", zone="A"))
    await retried(lambda: client.execute_update_with_start_workflow(
        TicketWorkflow.report, report, start_workflow_operation=op(), id="report"), f"{ticket_id} report")
    progress[0] += 1
    handle: WorkflowHandle = client.get_workflow_handle(ticket_workflow_id(ticket_id))
    for name, actor, data in STEPS:
        await retried(lambda: handle.execute_update(TicketWorkflow.step, StepCommand(step=name, actor=actor, data=data),
                                                    id=name), f"{ticket_id} {name}")
        progress[0] += 1
    await handle.result()


async def tasks_by_worker(client: Client, ticket_ids: list[str]) -> Counter:
    """Workflow tasks completed per worker identity, over every ticket's history."""
    count: Counter = Counter()
    for tid in ticket_ids:
        async for event in client.get_workflow_handle(ticket_workflow_id(tid)).fetch_history_events():
            if event.HasField("workflow_task_completed_event_attributes"):
                count[event.workflow_task_completed_event_attributes.identity] += 1
    return count


async def test_two_workers_share_a_task_queue_and_one_killed_under_load_loses_and_repeats_nothing(tmp_path, monkeypatch):
    with dev_server() as (address, _):
        task_queue = f"tq-{uuid.uuid4()}"
        env = {**os.environ, "TEMPORAL_ADDRESS": address, "WEIBAO_TASK_QUEUE": task_queue,
               "WEIBAO_EVENT_STORE": "sqlite", "WEIBAO_DATA_DIR": str(tmp_path),
               "WEIBAO_SQLITE_PATH": str(tmp_path / "events.db"), "WEIBAO_SECRET_KEY": "test"}
        for name in ("WEIBAO_EVENT_STORE", "WEIBAO_DATA_DIR", "WEIBAO_SQLITE_PATH"):
            monkeypatch.setenv(name, env[name])  # this process reads the same store
        logs = tmp_path / "doomed.log", tmp_path / "survivor.log"
        doomed, survivor = start_worker(env, logs[0]), start_worker(env, logs[1])
        try:
            client = await Client.connect(address, data_converter=pydantic_data_converter)
            both = {identity(doomed), identity(survivor)}

            async def both_poll() -> bool:
                alive(doomed, logs[0])
                alive(survivor, logs[1])
                return both <= await pollers(client, task_queue)

            await until(both_poll, "both workers poll the task queue")
            # the container healthcheck (deploy/healthcheck.py) sees a worker of this host polling
            health = await asyncio.create_subprocess_exec(
                sys.executable, "deploy/healthcheck.py", "worker", cwd=str(config.ROOT), env=env,
                stderr=asyncio.subprocess.PIPE)
            _, said = await health.communicate()
            assert health.returncode == 0, said.decode()

            ticket_ids = [f"t{uuid.uuid4().hex[:12]}" for _ in range(TICKETS)]
            progress = [0]  # reports and steps answered
            sem = asyncio.Semaphore(IN_FLIGHT)

            async def limited(tid: str) -> None:
                async with sem:
                    await one_ticket(client, task_queue, tid, progress)

            load = asyncio.gather(*(limited(t) for t in ticket_ids))
            total = TICKETS * (1 + len(STEPS))

            async def a_third_done() -> bool:
                alive(doomed, logs[0])
                alive(survivor, logs[1])
                if load.done():
                    load.result()  # a failure surfaces here rather than as a timeout
                return progress[0] >= total // 3

            await until(a_third_done, "a third of the steps answered", seconds=OVERALL)
            doomed.send_signal(signal.SIGKILL)
            doomed.wait(timeout=10)
            killed_at = progress[0]
            assert killed_at < total  # the kill fell under load
            await asyncio.wait_for(load, OVERALL)
            assert progress[0] == total

            # both workers did the work: the one killed before it died, the other after
            tasks = await tasks_by_worker(client, ticket_ids)
            assert tasks[identity(doomed)] > 0 and tasks[identity(survivor)] > 0, tasks
            assert set(tasks) <= both, tasks

            # the event store: every ticket has each expected event exactly once, in order,
            # and no command was recorded twice
            store = open_store()
            try:
                command_ids = []
                for tid in ticket_ids:
                    history = store.history("ticket", tid)
                    assert [e["type"] for e in history] == EXPECTED, (tid, [e["type"] for e in history])
                    assert [e["version"] for e in history] == list(range(1, len(EXPECTED) + 1))
                    command_ids += [e["command_id"] for e in history]
                assert len(command_ids) == len(set(command_ids)) == TICKETS * len(EXPECTED)
                everything = store.recorder.select_notifications(start=1, limit=10 * TICKETS * len(EXPECTED))
                assert len(everything) == TICKETS * len(EXPECTED)  # nothing else was appended
            finally:
                store.close()
        finally:
            for proc in (doomed, survivor):
                if proc.poll() is None:
                    proc.send_signal(signal.SIGTERM)
                    try:
                        proc.wait(timeout=20)
                    except subprocess.TimeoutExpired:
                        proc.kill()
