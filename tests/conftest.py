"""Shared fixtures: the real time-skipping server, a real event store, a worker per test."""
from __future__ import annotations

import os
import shutil
import uuid
from contextlib import asynccontextmanager
from datetime import timedelta
from typing import Any, AsyncIterator

import psycopg
import pytest
from temporalio.client import Client, WorkflowHandle
from temporalio.common import WorkflowIDConflictPolicy
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.client import WithStartWorkflowOperation
from temporalio.testing import WorkflowEnvironment

from activities.outbox import Outbox
from activities.store import EventStore, open_store
from activities.record import Recorder
from activities import config
from worker import build_worker
from workflows import search
from workflows.messages import CODE
from workflows.ticket import ReportCommand, StartTicket, StepCommand, TicketWorkflow, ticket_workflow_id
from domain.steps import ReportTicket

# WEIBAO_TEST_PG_DB lets two suites share one PostgreSQL server without dropping each other's tables
PG_DBNAME = os.environ.get("WEIBAO_TEST_PG_DB", "test")


@pytest.fixture(scope="session")
async def env() -> AsyncIterator[WorkflowEnvironment]:
    async with await WorkflowEnvironment.start_time_skipping(
        data_converter=pydantic_data_converter,
        test_server_existing_path=config.binary("temporal-test-server"),
    ) as env:
        yield env


async def terminate_open_workflows(env: WorkflowEnvironment) -> list[str]:
    """Terminate every workflow still open on the shared time-skipping server; returns their ids."""
    from temporalio.api.workflowservice.v1 import ListOpenWorkflowExecutionsRequest

    ended: list[str] = []
    while True:
        page = await env.client.workflow_service.list_open_workflow_executions(
            ListOpenWorkflowExecutionsRequest(namespace=env.client.namespace, maximum_page_size=200))
        if not page.executions:
            return ended
        for execution in page.executions:
            try:
                await env.client.get_workflow_handle(
                    execution.execution.workflow_id, run_id=execution.execution.run_id).terminate("test over")
            except Exception:
                pass  # closed meanwhile
            ended.append(execution.execution.workflow_id)


@pytest.fixture(autouse=True)
async def no_workflow_outlives_its_test(request):
    """A safety net under the fixtures' own clean-up: on the shared time-skipping server a
    timer that fires for a workflow whose worker is gone holds the clock still for every
    later test, so whatever a test left open is terminated when it ends (autouse: torn
    down after its workers have stopped)."""
    yield
    if "env" in request.fixturenames:
        await terminate_open_workflows(request.getfixturevalue("env"))


def reset_postgres() -> None:
    with psycopg.connect(f"host=127.0.0.1 port=5432 dbname={PG_DBNAME} user=postgres", autocommit=True) as c:
        for (table,) in c.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'public'").fetchall():
            c.execute(f'DROP TABLE IF EXISTS "{table}" CASCADE')


@pytest.fixture
def use_store(tmp_path, monkeypatch):
    """Point the configuration at a fresh store of the given kind."""

    def _use(kind: str) -> None:
        monkeypatch.setenv("WEIBAO_DATA_DIR", str(tmp_path))
        monkeypatch.setenv("WEIBAO_SQLITE_PATH", str(tmp_path / "events.db"))
        monkeypatch.setenv("WEIBAO_EVENT_STORE", kind)
        if kind == "postgres":
            monkeypatch.setenv("POSTGRES_DBNAME", PG_DBNAME)
            reset_postgres()

    return _use


@pytest.fixture
def org():
    return config.load_org()


@pytest.fixture
def stack(use_store, org):
    """Activities over a fresh SQLite store (the embedded default)."""
    use_store("sqlite")
    tickets = open_store()
    outbox = Outbox()
    yield Recorder(tickets, org, outbox)
    outbox.close()


@asynccontextmanager
async def running_worker(client: Client, activities: Recorder, task_queue: str, **options):
    await search.register(client)  # as worker.py does at its start
    async with build_worker(client, activities, task_queue=task_queue, **options):
        yield


STARTED: list[WorkflowHandle] = []


async def end_started_workflows() -> None:
    """Terminate what a test started: on the time-skipping server a timer that fires
    for a workflow whose worker is gone holds the clock still for every later test."""
    while STARTED:
        try:
            await STARTED.pop().terminate("test over")
        except Exception:
            pass  # already completed


@pytest.fixture
async def worker(env, stack):
    task_queue = f"tq-{uuid.uuid4()}"
    try:
        async with running_worker(env.client, stack, task_queue):
            yield task_queue
    finally:
        await end_started_workflows()


REPORT = dict(customer="Kunming First People's Hospital", site="157 Jinbi Rd, Kunming",
              contact_phone="0871-6300000", product_model="HIS-Server R740", symptoms="HIS down in all wards",
              channel="phone")


async def report(client: Client, task_queue: str, severity: str = "critical", zone: str = "A",
                 ticket_id: str | None = None, actor: str = "C001", code: int = CODE, **extra):
    """A ticket reported as the API does (started by today's workflow code unless `code`
    says an earlier one: 0 for a run started before workflows/messages.CODE)."""
    ticket_id = ticket_id or f"t{uuid.uuid4().hex[:12]}"
    op = WithStartWorkflowOperation(
        TicketWorkflow.run, StartTicket(ticket_id=ticket_id, code=code), id=ticket_workflow_id(ticket_id),
        task_queue=task_queue, id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING)
    state = await client.execute_update_with_start_workflow(
        TicketWorkflow.report, ReportCommand(actor=actor, report=ReportTicket(**{**REPORT, **extra},
                                                                              severity=severity, zone=zone)),
        start_workflow_operation=op, id="report")
    handle = await op.workflow_handle()
    STARTED.append(handle)
    return handle, state


async def step(handle: WorkflowHandle, name: str, actor: str, **data):
    return await handle.execute_update(TicketWorkflow.step, StepCommand(step=name, actor=actor, data=data))


async def dispatch(handle: WorkflowHandle, severity="critical", zone="A", engineer="E001", category="free"):
    await step(handle, "triage", "S001", severity=severity, zone=zone, service_category=category)
    return await step(handle, "dispatch", "S001", engineer=engineer, travel_mode="taxi")


def hours(h: float) -> timedelta:
    return timedelta(hours=h)


async def settle(handle: WorkflowHandle, predicate, seconds: float = 10.0, workflow: Any = None):
    """Query the case (a ticket unless `workflow` says which class) until `predicate(state)`
    holds: the worker may still be applying a timer that the time-skipping server just fired."""
    import asyncio

    workflow = workflow or TicketWorkflow
    state = None
    for _ in range(int(seconds / 0.05)):
        state = await handle.query(workflow.current)
        if predicate(state):
            return state
        await asyncio.sleep(0.05)
    raise AssertionError(f"condition never held; last state: {state}")


async def quiet(handle: WorkflowHandle, instant, seconds: float = 10.0, workflow: Any = None):
    """The case's state once it has raised every alarm due by `instant`: its own schedule
    (the `pending_alarms` query) has nothing left at or before it. The positive signal to
    wait for before asserting that something has not happened yet."""
    import asyncio

    workflow = workflow or TicketWorkflow
    pending = None
    for _ in range(int(seconds / 0.05)):
        pending = await handle.query(workflow.pending_alarms)
        if all(a.at > instant for a in pending):
            return await handle.query(workflow.current)
        await asyncio.sleep(0.05)
    raise AssertionError(f"alarms due by {instant} never raised; pending: {pending}")


async def sleep_until(env: WorkflowEnvironment, instant) -> None:
    """Skip the test server's clock to `instant`."""
    now = await env.get_current_time()
    if instant > now:
        await env.sleep(instant - now)
