"""Health: /healthz answers while the process lives; /readyz says whether Temporal and the
event store answer, naming the one that does not (503)."""
import socket

import httpx

from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter

from api.app import create_app
from api.deps import Services
from tests.api_fixtures import api  # noqa: F401 (fixture)


async def test_alive_and_ready_with_temporal_and_the_store_answering(api):
    assert (await api.http.get("/healthz")).json() == {"status": "alive"}
    ready = await api.http.get("/readyz")
    assert ready.status_code == 200 and ready.json() == {"status": "ready", "temporal": "ok", "event_store": "ok"}


async def test_not_ready_names_temporal_when_it_does_not_answer(api):
    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    nowhere = await Client.connect(f"127.0.0.1:{port}", data_converter=pydantic_data_converter, lazy=True)
    services = Services.build(nowhere, api.services.store, api.services.org, task_queue="unused")
    try:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=create_app(services)),
                                     base_url="http://api") as http:
            answer = await http.get("/readyz")
    finally:
        services.close()
    body = answer.json()
    assert answer.status_code == 503 and body["status"] == "not ready"
    assert body["temporal"].startswith("unavailable") and body["event_store"] == "ok"
