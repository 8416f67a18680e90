"""The API under test: the real app (httpx over ASGI, or uvicorn on a free port) with a
real worker on the time-skipping server, over a fresh event store of either kind."""
from __future__ import annotations

import asyncio
import socket
import uuid
from contextlib import asynccontextmanager
from typing import Any, AsyncIterator

import httpx
import pytest
import uvicorn
from fastapi import FastAPI

from activities.outbox import Outbox
from activities.store import open_store
from activities.record import Recorder
from api.app import create_app
from api.deps import Services, get_read_models
from api.limits import HEAD_BYTES
from domain.ticket import Ticket
from eventsourcing.utils import get_topic
from projections import ticket_list
from projections.runner import ReadModels, Runner
from tests.case_helpers import end_case_workflows
from tests.conftest import REPORT, running_worker
from workflows.ticket import ticket_workflow_id

REPORTED = get_topic(Ticket.Reported)

FIX = dict(cause="RAID controller failed", resolution="replaced the controller, rebuilt the array",
           parts_used=["RAID controller"])


class Api:
    """An HTTP client of the API that speaks as a given staff member."""

    def __init__(self, http: httpx.AsyncClient, services: Services, task_queue: str):
        self.http, self.services, self.task_queue = http, services, task_queue
        self._tokens: dict[str, str] = {}

    def token(self, staff_id: str) -> str:
        if staff_id not in self._tokens:
            self._tokens[staff_id] = self.services.tokens.issue(staff_id)
        return self._tokens[staff_id]

    def auth(self, staff_id: str | None, key: str | None = None) -> dict[str, str]:
        headers = {} if staff_id is None else {"Authorization": f"Bearer {self.token(staff_id)}"}
        if key is not None:
            headers["Idempotency-Key"] = key
        return headers

    async def post(self, path: str, staff: str | None, body: Any = None, key: str | None = None) -> httpx.Response:
        return await self.http.post(path, json=body, headers=self.auth(staff, key))

    async def get(self, path: str, staff: str | None, **params: Any) -> httpx.Response:
        return await self.http.get(path, params={k: v for k, v in params.items() if v is not None},
                                   headers=self.auth(staff))

    async def report(self, staff: str = "C001", key: str | None = None, **fields: Any) -> str:
        r = await self.post("/tickets", staff, {**REPORT, "severity": "critical", "zone": "A", **fields}, key)
        assert r.status_code == 201, r.text
        return r.json()["ticket_id"]

    async def step(self, ticket_id: str, step: str, staff: str, key: str | None = None,
                   **data: Any) -> httpx.Response:
        return await self.post(f"/tickets/{ticket_id}/steps/{step}", staff, data, key)

    async def ok(self, ticket_id: str, step: str, staff: str, **data: Any) -> dict[str, Any]:
        r = await self.step(ticket_id, step, staff, **data)
        assert r.status_code == 200, r.text
        return r.json()

    def history(self, ticket_id: str) -> list[dict[str, Any]]:
        return self.services.store.history("ticket", ticket_id)


async def end_api_workflows(services: Services) -> None:
    """Terminate every ticket workflow the test started through the API: on the
    time-skipping server a timer of a workflow whose worker is gone holds the clock."""
    start, reported = 1, []
    while notes := services.store.recorder.select_notifications(start=start, limit=500, topics=(REPORTED,)):
        reported += [services.store.mapper.to_domain_event(n).data["ticket_id"] for n in notes]
        start = notes[-1].id + 1
    for ticket_id in reported:
        try:
            await services.client.get_workflow_handle(ticket_workflow_id(ticket_id)).terminate("test over")
        except Exception:
            pass  # already closed
    await end_case_workflows(services.client, services.store)


def catch_up_ticket_list(app: FastAPI, services: Services) -> Runner:
    """GET /tickets and a history's linked cases read the ticket_list read model; in
    tests the runner catches up just before each request that reads it, instead of
    running beside the API. Returns the runner, for the caller to close."""
    runner = Runner(services.store, services.read_models, names=[ticket_list.TicketList.name])

    def caught_up() -> ReadModels:
        runner.catch_up()
        return services.read_models

    app.dependency_overrides[get_read_models] = caught_up
    return runner


@asynccontextmanager
async def api_stack(env, org, kind: str, use_store) -> AsyncIterator[Api]:
    use_store(kind)
    tickets = open_store()
    outbox = Outbox()
    task_queue = f"tq-{uuid.uuid4()}"
    models = ReadModels()
    services = Services.build(env.client, tickets, org, task_queue=task_queue, read_models=models)
    services.clock = env.get_current_time  # the workflows' clock, which the time-skipping server moves
    app = create_app(services)
    runner = catch_up_ticket_list(app, services)
    try:
        async with running_worker(env.client, Recorder(tickets, org, outbox), task_queue):
            async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://api") as http:
                try:
                    yield Api(http, services, task_queue)
                finally:
                    await end_api_workflows(services)
    finally:
        runner.close()
        services.close()
        models.close()
        outbox.close()
        tickets.close()


@pytest.fixture
async def api(env, org, use_store) -> AsyncIterator[Api]:
    """The API and a worker over a fresh SQLite event store (the embedded default)."""
    async with api_stack(env, org, "sqlite", use_store) as a:
        yield a


@pytest.fixture
async def pg_api(env, org, use_store) -> AsyncIterator[Api]:
    """The API and a worker over a fresh PostgreSQL event store (database `test`)."""
    async with api_stack(env, org, "postgres", use_store) as a:
        yield a


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@asynccontextmanager
async def served(app) -> AsyncIterator[str]:
    """Serve `app` with uvicorn on this event loop; yields its base URL."""
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, lifespan="off", log_level="warning",
                                           h11_max_incomplete_event_size=HEAD_BYTES))  # as python -m api
    task = asyncio.create_task(server.serve())
    try:
        while not server.started:
            if task.done():
                task.result()
            await asyncio.sleep(0.02)
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await task
