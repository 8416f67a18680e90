"""Operations (issue 17): metrics scraped from the real endpoints after real steps and a
real breach, one trace from an HTTP request through its Update to the event append (the
spans kept by OpenTelemetry's own in-memory exporter), and the health answers of the
worker and the projection runner on their metrics port, naming what does not answer.

Every wait is for a positive signal under an overall bound; nothing asserts on time."""
from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import threading
import uuid
from datetime import datetime, timedelta
from typing import Any

import httpx
import pytest
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from prometheus_client.parser import text_string_to_metric_families
from temporalio.client import Client

from activities import config, telemetry
from activities.outbox import Outbox
from activities.record import Recorder
from activities.store import open_store
from api.app import create_app
from api.deps import Services
from bench.common import dev_server
from projections.runner import ReadModels, serve
from tests.api_fixtures import Api, api, catch_up_ticket_list, end_api_workflows, free_port, served  # noqa: F401 (fixture)
from tests.conftest import REPORT, running_worker
from domain.steps import ReportTicket
from workflows.messages import CODE
from workflows.ticket import ReportCommand, StartTicket, TicketWorkflow, ticket_workflow_id


def samples(text: str) -> list[tuple[str, dict[str, str], float]]:
    return [(s.name, s.labels, s.value) for f in text_string_to_metric_families(text) for s in f.samples]


def value(text: str, name: str, **labels: str) -> float:
    """The sum of the samples `name` whose labels include `labels` (0 when there is none)."""
    return sum(v for n, ls, v in samples(text) if n == name and all(ls.get(k) == x for k, x in labels.items()))


async def until(predicate, what: str, seconds: float = 60) -> Any:
    async def loop():
        while not (answer := await predicate()):
            await asyncio.sleep(0.1)
        return answer
    try:
        return await asyncio.wait_for(loop(), seconds)
    except asyncio.TimeoutError:
        raise AssertionError(f"never happened within {seconds} s: {what}") from None


# --- traces ----------------------------------------------------------------------------------------

@pytest.fixture
def spans():
    """Tracing on for this test, into OpenTelemetry's in-memory exporter. The provider is
    global and can be set once per process: it stays, only this test's spans are read."""
    exporter = getattr(telemetry, "_test_exporter", None)
    if exporter is None:
        exporter = telemetry._test_exporter = InMemorySpanExporter()
        if telemetry.tracing_enabled() or not telemetry.setup_tracing("weibao-test", exporter=exporter):
            pytest.fail("tracing was already set up in this process")
    telemetry._tracing = True
    exporter.clear()
    try:
        yield exporter
    finally:
        telemetry._tracing = False  # later tests build apps and clients without tracing


async def test_one_trace_runs_from_the_http_request_through_the_update_to_the_event_append(env, org, use_store,
                                                                                           spans):
    use_store("sqlite")
    store, outbox, models = open_store(), Outbox(), ReadModels()
    client = Client(**{**env.client.config(), "plugins": telemetry.plugins()})
    task_queue = f"tq-{uuid.uuid4()}"
    services = Services.build(client, store, org, task_queue=task_queue, read_models=models)
    services.clock = env.get_current_time
    app = create_app(services)
    runner = catch_up_ticket_list(app, services)
    try:
        async with running_worker(client, Recorder(store, org, outbox), task_queue):
            async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://api") as http:
                api = Api(http, services, task_queue)
                try:
                    tid = await api.report()
                    await api.ok(tid, "triage", "S001", severity="critical", zone="A")
                finally:
                    await end_api_workflows(services)
    finally:
        runner.close()
        services.close()
        models.close()
        outbox.close()
        store.close()
    telemetry.flush_traces()
    finished = spans.get_finished_spans()
    by_id = {s.context.span_id: s for s in finished}

    def chain(span) -> list:
        spans = []
        while span is not None:
            spans.append(span)
            span = by_id.get(span.parent.span_id) if span.parent is not None else None
        return spans[::-1]  # the root first

    appends = [chain(s) for s in finished if s.name == "event_store.append"]
    triage = [c for c in appends if c[0].name.startswith("POST /tickets/") and "/steps/" in c[0].name]
    assert triage, f"no append under the step's request; chains: {[[s.name for s in c] for c in appends]}"
    (spans_,) = triage
    names = [s.name for s in spans_]
    assert [n.split(" ")[0] if n.startswith("POST ") else n for n in names] == [
        "POST", "StartWorkflowUpdate:step", "event_store.append"], names
    assert names[0].startswith("POST /tickets/") and "/steps/" in names[0]
    update, append = spans_[1], spans_[2]
    assert update.attributes["temporalWorkflowID"] == append.attributes["temporalWorkflowID"] == f"ticket-{tid}"
    assert append.attributes["temporalActivityType"] == "record_case"
    assert len({s.context.trace_id for s in spans_}) == 1  # one trace, the request's
    # the report's own request is a trace of its own, and no alarm or other step joins the triage's
    report = [c for c in appends if c[0].name == "POST /tickets"]
    assert len(report) == 1 and report[0][0].context.trace_id != spans_[0].context.trace_id
    assert sum(1 for c in appends if c[0].context.trace_id == spans_[0].context.trace_id) == 1


# --- the API's metrics ------------------------------------------------------------------------------

async def test_the_api_counts_requests_by_route_and_status_and_times_them(api: Api):
    app = create_app(api.services)
    async with served(app) as url, httpx.AsyncClient(base_url=url) as http:
        before = (await http.get("/metrics")).text
        tid = await api.report()
        ok = await http.post(f"/tickets/{tid}/steps/triage", json={"severity": "critical", "zone": "A"},
                             headers={**api.auth("S001"), "X-Request-ID": "req-obs-1"})
        refused = await http.post(f"/tickets/{tid}/steps/close", json={"time_rating": 5, "quality_rating": 5},
                                  headers=api.auth("S001"))
        after = (await http.get("/metrics")).text
    assert ok.status_code == 200 and ok.headers["x-request-id"] == "req-obs-1"
    assert refused.status_code == 409 and len(refused.headers["x-request-id"]) == 32  # made here
    triage, close = "/tickets/{ticket_id}/steps/triage", "/tickets/{ticket_id}/steps/close"  # route templates

    def delta(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    assert delta("weibao_http_requests_total", route=triage, method="POST", status="200") == 1
    assert delta("weibao_http_requests_total", route=close, method="POST", status="409") == 1
    assert delta("weibao_http_request_duration_seconds_count", route=triage, method="POST") == 1
    assert delta("weibao_http_request_duration_seconds_sum", route=triage, method="POST") > 0
    assert value(after, "weibao_http_requests_total", route="unmatched") == value(before, "weibao_http_requests_total",
                                                                                  route="unmatched")


# --- the projection runner: facts, lag and health ----------------------------------------------------

class RunnerThread:
    """`python -m projections`'s serve() on a thread, with its metrics port."""

    def __init__(self, port: int):
        self.port, self.stop = port, threading.Event()
        self.thread = threading.Thread(target=serve, args=(None, None, None, 0.2, False, self.stop, port), daemon=True)

    def __enter__(self) -> "RunnerThread":
        self.thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.stop.set()
        self.thread.join(timeout=30)

    async def get(self, path: str) -> httpx.Response:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{self.port}") as http:
            return await http.get(path)

    async def scrape(self) -> str:
        try:
            return (await self.get("/metrics")).text
        except httpx.TransportError:
            return ""  # not listening yet


async def test_the_runner_counts_a_breach_and_its_escalation_from_the_recorded_facts(env, api: Api):
    with RunnerThread(free_port()) as runner:
        before = await until(runner.scrape, "the runner's metrics answer")
        tid = await api.report(severity="critical", zone="A")
        await api.ok(tid, "triage", "S001", severity="critical", zone="A")
        await api.ok(tid, "dispatch", "S001", engineer="E001", travel_mode="taxi")
        # past the 4 h on-site window (breach, escalation) and half a window more (leadership)
        await env.sleep(timedelta(hours=6, minutes=1))

        async def counted() -> str | None:
            text = await runner.scrape()
            done = value(text, "weibao_escalations_total", case_kind="ticket", level="2", source="window") \
                > value(before, "weibao_escalations_total", case_kind="ticket", level="2", source="window")
            caught_up = value(text, "weibao_read_model_lag_events", read_model="escalation_log") == 0
            return text if done and caught_up else None

        after = await until(counted, "the breach's escalation counted and the read models caught up")
        ready = await runner.get("/readyz")
        alive = await runner.get("/healthz")

    def delta(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    assert delta("weibao_breaches_total", case_kind="ticket", level="1") == 1
    assert delta("weibao_escalations_total", case_kind="ticket", level="1", source="window") == 1
    assert delta("weibao_warnings_total", case_kind="ticket", level="0") == 1  # at 75 % of the window
    assert delta("weibao_escalations_total", case_kind="ticket", level="2", source="window") == 1
    assert delta("weibao_escalation_lag_seconds_count", case_kind="ticket", level="1") == 1
    assert delta("weibao_escalation_lag_seconds_count", case_kind="ticket", level="2") == 1
    due = [e for e in api.history(tid) if e["type"] == "Escalated" and e["data"]["level"] == 2][0]["data"]["due"]
    assert datetime.fromisoformat(due) > datetime.fromisoformat(
        next(e for e in api.history(tid) if e["type"] == "SlaBreached")["data"]["deadline"])
    assert delta("weibao_events_recorded_total", case_kind="ticket", event="Dispatched") == 1
    assert value(after, "weibao_read_model_lag_seconds", read_model="ticket_list") == 0
    assert value(after, "weibao_quarantined_events", read_model="ticket_list") == 0
    assert ready.status_code == 200 and ready.json() == {"status": "ready", "event_store": "ok", "read_models": "ok"}
    assert alive.json() == {"status": "alive"}


async def test_the_runner_is_alive_but_not_ready_naming_the_event_store_while_it_does_not_answer(use_store,
                                                                                               monkeypatch):
    use_store("sqlite")
    monkeypatch.setenv("WEIBAO_EVENT_STORE", "postgres")
    monkeypatch.setenv("POSTGRES_PORT", str(free_port()))  # nothing listens there
    with RunnerThread(free_port()) as runner:
        async def answered() -> httpx.Response | None:
            try:
                return await runner.get("/readyz")
            except httpx.TransportError:
                return None

        not_ready = await until(answered, "the runner's health port answers")
        alive = await runner.get("/healthz")
    assert alive.status_code == 200
    assert not_ready.status_code == 503 and not_ready.json()["status"] == "not ready"
    assert not_ready.json()["event_store"].startswith("unavailable")


# --- the worker process: the SDK's metrics and its readiness --------------------------------------------

async def test_the_worker_serves_the_sdk_metrics_and_is_not_ready_naming_temporal_once_it_is_gone(tmp_path):
    port = free_port()
    with dev_server() as (address, _):
        env = {**os.environ, "TEMPORAL_ADDRESS": address, "WEIBAO_DATA_DIR": str(tmp_path), "WEIBAO_EVENT_STORE":
               "sqlite", "WEIBAO_SQLITE_PATH": str(tmp_path / "events.db"), "WEIBAO_TASK_QUEUE": "obs",
               "WEIBAO_WORKER_METRICS_PORT": str(port), "WEIBAO_LOG_FORMAT": "json"}
        worker = subprocess.Popen([sys.executable, "worker.py"], cwd=str(config.ROOT), env=env,
                                  stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True)
        http = httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}")
        try:
            async def ready() -> bool:
                try:
                    return (await http.get("/readyz")).status_code == 200
                except httpx.TransportError:
                    return False

            await until(ready, "the worker is ready")
            from temporalio.contrib.pydantic import pydantic_data_converter
            client = await Client.connect(address, data_converter=pydantic_data_converter)
            tid = f"T-{uuid.uuid4().hex[:8]}"
            await client.execute_update_with_start_workflow(
                TicketWorkflow.report, ReportCommand(actor="C001", report=ReportTicket(**REPORT)),
                start_workflow_operation=_start(tid), id="report")

            async def sdk_counted() -> str | None:
                text = (await http.get("/metrics")).text
                return text if value(text, "temporal_workflow_task_execution_latency_count") >= 1 else None

            metrics = await until(sdk_counted, "the SDK's workflow task metrics")
            await client.get_workflow_handle(ticket_workflow_id(tid)).terminate("test over")
        except BaseException:
            await http.aclose()
            worker.kill()
            worker.wait()
            raise
    try:  # the dev server is gone: the worker lives on, and says what it misses
        async def not_ready() -> httpx.Response | None:
            r = await http.get("/readyz")
            return r if r.status_code == 503 else None

        gone = await until(not_ready, "the worker reports Temporal unavailable")
        alive = await http.get("/healthz")
    finally:
        await http.aclose()
        worker.terminate()
        _, err = worker.communicate(timeout=30)
    assert value(metrics, "temporal_workflow_task_execution_latency_count", task_queue="obs") >= 1
    assert "process_cpu_seconds_total" in metrics or "python_gc_objects_collected_total" in metrics  # ours too
    assert alive.status_code == 200 and gone.json()["temporal"].startswith("unavailable")
    assert gone.json()["event_store"] == "ok"
    assert b'"logger": "weibao.worker"' in err  # JSON lines when not on a terminal


def _start(tid: str):
    from temporalio.client import WithStartWorkflowOperation
    from temporalio.common import WorkflowIDConflictPolicy
    return WithStartWorkflowOperation(TicketWorkflow.run, StartTicket(ticket_id=tid, code=CODE),
                                      id=ticket_workflow_id(tid),
                                      task_queue="obs", id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING)
