"""What an operator watches (README "Operations"): Prometheus metrics, OpenTelemetry traces
and the health answers of the worker and the projection runner.

- **Metrics**: each process keeps its own in prometheus-client's default registry; the API
  serves them at `/metrics` on its own port, the worker and the runner on a port of their
  own (`OpsServer`: `/metrics`, `/healthz`, `/readyz`). The worker's `/metrics` adds the
  Temporal SDK runtime's own metrics (`PrometheusConfig`), which the SDK serves on a
  loopback port of its own that only this server reads.
- **Traces**: spans are exported over OTLP (HTTP) when `OTEL_EXPORTER_OTLP_ENDPOINT` is set
  (the exporter reads the `OTEL_*` variables itself), and nothing is set up otherwise: no
  interceptor, no instrumentation, no cost. weibao's trace context on the client (so on the
  worker built from it: activities/trace_context.py) carries the context from the API's
  request through the Update to the recording activity, where the event store's append is
  a span of its own.
- **Health**: `/healthz` answers while the process lives; `/readyz` runs the process's
  checks (each a function that raises when its part does not answer) and answers 503
  naming each part that failed and why, as the API's `api/health.py` does."""
from __future__ import annotations

import json
import logging
import os
import socket
import threading
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable

from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, generate_latest

log = logging.getLogger("weibao.telemetry")

CHECK_SECONDS = 3.0  # a readiness check that takes longer counts as not answering
Check = Callable[[], Any]


# --- health ------------------------------------------------------------------------------------

def readiness(checks: dict[str, Check], timeout: float = CHECK_SECONDS) -> tuple[bool, dict[str, str]]:
    """Run each check (side by side, each within `timeout`); ("ok" or "unavailable: why") by name."""
    answers: dict[str, str] = {}
    with ThreadPoolExecutor(max(1, len(checks)), thread_name_prefix="readyz") as pool:
        futures = {name: pool.submit(check) for name, check in checks.items()}
        for name, future in futures.items():
            try:
                future.result(timeout=timeout)
                answers[name] = "ok"
            except FutureTimeout:
                answers[name] = f"unavailable: no answer within {timeout:.0f}s"
            except Exception as e:  # noqa: BLE001 - whatever it is, the answer names the part and the reason
                answers[name] = f"unavailable: {type(e).__name__}: {str(e)[:200]}"
        pool.shutdown(wait=False, cancel_futures=True)
    return all(v == "ok" for v in answers.values()), answers


class OpsServer:
    """`/metrics`, `/healthz` and `/readyz` of a process that has no HTTP API of its own (the
    worker, the projection runner), on a thread. `extra_metrics` returns more exposition
    text to append (the Temporal SDK's)."""

    def __init__(self, host: str, port: int, checks: dict[str, Check],
                 extra_metrics: Callable[[], bytes] | None = None):
        self.checks, self.extra_metrics = checks, extra_metrics
        ops = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 - http.server's name
                path = self.path.split("?", 1)[0]
                if path == "/metrics":
                    self._send(200, ops.metrics(), CONTENT_TYPE_LATEST)
                elif path == "/healthz":
                    self._json(200, {"status": "alive"})
                elif path == "/readyz":
                    ready, answers = readiness(ops.checks)
                    self._json(200 if ready else 503, {"status": "ready" if ready else "not ready", **answers})
                else:
                    self._json(404, {"error": "not_found", "detail": "/metrics, /healthz or /readyz"})

            def _json(self, status: int, body: dict[str, Any]) -> None:
                self._send(status, json.dumps(body).encode(), "application/json")

            def _send(self, status: int, body: bytes, content_type: str) -> None:
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                pass  # a scrape every few seconds is not news

        self.server = ThreadingHTTPServer((host, port), Handler)
        self.server.daemon_threads = True
        self.address = f"{host}:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, name="ops-http", daemon=True)

    def metrics(self) -> bytes:
        text = generate_latest(REGISTRY)
        if self.extra_metrics is not None:
            try:
                text += self.extra_metrics()
            except OSError as e:
                log.warning("the Temporal SDK's metrics did not answer: %s", e)
        return text

    def start(self) -> "OpsServer":
        self.thread.start()
        return self

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def serve_ops(name: str, host: str, port: int, checks: dict[str, Check],
              extra_metrics: Callable[[], bytes] | None = None) -> OpsServer | None:
    """Start the ops server of process `name` (port 0: none). A port already taken (a second
    worker on one machine with the same setting) is logged and the process runs on without."""
    if not port:
        return None
    try:
        server = OpsServer(host, port, checks, extra_metrics).start()
    except OSError as e:
        log.error("%s: metrics and health not served: %s:%d: %s (set its port setting, or 0 for none)",
                  name, host, port, e.strerror or e)
        return None
    log.info("%s: metrics at http://%s/metrics, health at /healthz and /readyz", name, server.address)
    return server


# --- the Temporal SDK's own metrics ------------------------------------------------------------

def loopback_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def sdk_runtime() -> tuple[Any, Callable[[], bytes]]:
    """A Temporal Runtime whose metrics the SDK serves on a loopback port (Prometheus format),
    and a function reading them for the ops server's `/metrics`."""
    from temporalio.runtime import (LogForwardingConfig, LoggingConfig, PrometheusConfig, Runtime, TelemetryConfig,
                                    TelemetryFilter)

    address = f"127.0.0.1:{loopback_port()}"
    # the SDK core's own warnings go through the standard logging, so they are JSON lines too
    core_logs = LoggingConfig(filter=TelemetryFilter(core_level="WARN", other_level="ERROR"),
                              forwarding=LogForwardingConfig(logger=logging.getLogger("temporalio.core")))
    runtime = Runtime(telemetry=TelemetryConfig(metrics=PrometheusConfig(bind_address=address), logging=core_logs))

    def read() -> bytes:
        with urllib.request.urlopen(f"http://{address}/metrics", timeout=CHECK_SECONDS) as r:
            return r.read()

    return runtime, read


# --- traces --------------------------------------------------------------------------------------

_tracing = False
_tracer: Any = None  # weibao's own spans' tracer, made once the provider is set


def tracing_enabled() -> bool:
    return _tracing


def setup_tracing(service: str, exporter: Any = None, replay_safe: bool = False) -> bool:
    """Export spans of process `service` over OTLP when OTEL_EXPORTER_OTLP_ENDPOINT is set (or
    to `exporter`, which a test or a measurement gives); otherwise set nothing up. Returns
    whether tracing is on. Once per process: the OpenTelemetry provider is global.
    `replay_safe`: the SDK's replay-safe provider, which its plugin (`plugins(sdk=True)`)
    needs; weibao makes no span inside a workflow, so a plain one does otherwise."""
    global _tracing, _tracer
    if _tracing:
        return True
    if exporter is None and not os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT"):
        return False
    from opentelemetry import trace
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor
    from temporalio.contrib.opentelemetry import create_tracer_provider

    if exporter is None:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
        exporter = OTLPSpanExporter()  # endpoint, headers, timeout from the OTEL_* variables
    resource = Resource.create({"service.name": os.environ.get("OTEL_SERVICE_NAME", service)})
    provider = (create_tracer_provider if replay_safe else TracerProvider)(resource=resource)
    provider.add_span_processor(BatchSpanProcessor(exporter))
    trace.set_tracer_provider(provider)
    _tracer = trace.get_tracer("weibao")
    _tracing = True
    return True


def plugins(sdk: bool = False) -> list[Any]:
    """The Temporal client's plugins when tracing is on: the trace carried from a call to the
    activities it leads to (activities/trace_context.py); `sdk`: the SDK's OpenTelemetry
    plugin instead (spans of the workflows' handlers too, at a cost: README "Performance").
    Given to the client, it applies to a worker built from it as well."""
    if not _tracing:
        return []
    if sdk:
        from temporalio.contrib.opentelemetry import OpenTelemetryPlugin
        return [OpenTelemetryPlugin(add_temporal_spans=True)]
    from activities.trace_context import plugin
    return [plugin()]


def span(name: str, **attributes: Any):
    """A span around a block when tracing is on (a no-op context otherwise); in an activity it
    names the activity's workflow and type."""
    if not _tracing:
        return _NO_SPAN
    from temporalio import activity
    if activity.in_activity():  # which case and which activity the span is part of
        info = activity.info()
        attributes = {"temporalWorkflowID": info.workflow_id or "", "temporalActivityType": info.activity_type,
                      **attributes}
    return _tracer.start_as_current_span(name, attributes=attributes)


class _NoSpan:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: Any) -> None:
        return None


_NO_SPAN = _NoSpan()


def flush_traces(timeout_ms: int = 5000) -> None:
    """Export what is buffered (at a clean stop)."""
    if _tracing:
        from opentelemetry import trace
        provider = trace.get_tracer_provider()
        if hasattr(provider, "force_flush"):
            provider.force_flush(timeout_ms)
