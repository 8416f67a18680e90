"""Carrying a trace from a client's call into the activities a workflow runs for it (README
"Operations": Traces), with no OpenTelemetry code inside the workflow sandbox.

The Temporal SDK's own interceptors (`OpenTelemetryPlugin`, `TracingInterceptor`) decode the
trace header, attach a context and make spans inside the sandbox for every Update, signal
and activity a workflow starts, and encode the header again: measured with
`bench/observability.py`, the plugin cost 11 % of a full lifecycle's throughput and 18.5 %
of its CPU, against a goal of 5 %. This does the least that keeps one trace from an HTTP
request through its Update to the event append:

- the client puts the current context (W3C `traceparent`/`tracestate` and baggage) in the
  `_tracer-data` header of a workflow start, an Update or a signal, under a span
  `StartWorkflowUpdate:<name>` (or `StartWorkflow:`, `SignalWorkflow:`), as the SDK's
  interceptor names it and under the same header, so either end may be the SDK's;
- in the workflow, an Update's handler keeps that header payload as it came
  (a context variable of the handler's task: nothing decoded, no span, nothing that a
  replay could make twice), and each activity the handler starts carries it on;
- the activity runs in that context, so the event store's append (`event_store.append`,
  naming the workflow and the activity) is the client's span's child. No span of its own
  for the activity: a span costs about as much CPU as a step's validation and domain rules
  together, and the append is the activity's one part that takes time.

A workflow's own run (its timers, the alarms) has no caller: the activities it starts on its
own begin traces of their own."""
from __future__ import annotations

import contextvars
from typing import Any, Mapping

import opentelemetry.context
import opentelemetry.propagate
import opentelemetry.trace
import temporalio.client
import temporalio.converter
import temporalio.worker
from temporalio.api.common.v1 import Payload
from temporalio.plugin import SimplePlugin

HEADER = "_tracer-data"  # the SDK's OpenTelemetry interceptors use the same header and carrier

# the trace header of the Update whose handler is running, in its own asyncio task
_caller: contextvars.ContextVar[Payload | None] = contextvars.ContextVar("weibao_trace_caller", default=None)


def _current() -> Payload | None:
    """The current context as the header's payload (None: there is none to carry)."""
    carrier: dict[str, str] = {}
    opentelemetry.propagate.inject(carrier)
    return temporalio.converter.PayloadConverter.default.to_payloads([carrier])[0] if carrier else None


def _with(headers: Mapping[str, Payload], payload: Payload | None) -> Mapping[str, Payload]:
    return headers if payload is None else {**headers, HEADER: payload}


def _context_of(headers: Mapping[str, Payload]) -> opentelemetry.context.Context | None:
    payload = headers.get(HEADER)
    if payload is None:
        return None
    carrier = temporalio.converter.PayloadConverter.default.from_payloads([payload])[0]
    return opentelemetry.propagate.extract(carrier)


class _Client(temporalio.client.OutboundInterceptor):
    def __init__(self, next: temporalio.client.OutboundInterceptor, tracer: opentelemetry.trace.Tracer) -> None:
        super().__init__(next)
        self.tracer = tracer

    def _span(self, name: str, workflow_id: str):
        return self.tracer.start_as_current_span(name, kind=opentelemetry.trace.SpanKind.CLIENT,
                                                 attributes={"temporalWorkflowID": workflow_id})

    async def start_workflow(self, input: temporalio.client.StartWorkflowInput) -> Any:
        with self._span(f"StartWorkflow:{input.workflow}", input.id):
            input.headers = _with(input.headers, _current())
            return await super().start_workflow(input)

    async def start_workflow_update(self, input: temporalio.client.StartWorkflowUpdateInput) -> Any:
        with self._span(f"StartWorkflowUpdate:{input.update}", input.id):
            input.headers = _with(input.headers, _current())
            return await super().start_workflow_update(input)

    async def start_update_with_start_workflow(self, input: temporalio.client.StartWorkflowUpdateWithStartInput) -> Any:
        start, update = input.start_workflow_input, input.update_workflow_input
        with self._span(f"StartWorkflowUpdate:{update.update}", start.id):
            payload = _current()
            start.headers, update.headers = _with(start.headers, payload), _with(update.headers, payload)
            return await super().start_update_with_start_workflow(input)

    async def signal_workflow(self, input: temporalio.client.SignalWorkflowInput) -> None:
        with self._span(f"SignalWorkflow:{input.signal}", input.id):
            input.headers = _with(input.headers, _current())
            return await super().signal_workflow(input)


class _WorkflowOutbound(temporalio.worker.WorkflowOutboundInterceptor):
    def start_activity(self, input: temporalio.worker.StartActivityInput) -> Any:
        input.headers = _with(input.headers, _caller.get())
        return super().start_activity(input)

    def start_local_activity(self, input: temporalio.worker.StartLocalActivityInput) -> Any:
        input.headers = _with(input.headers, _caller.get())
        return super().start_local_activity(input)


class _WorkflowInbound(temporalio.worker.WorkflowInboundInterceptor):
    def init(self, outbound: temporalio.worker.WorkflowOutboundInterceptor) -> None:
        super().init(_WorkflowOutbound(outbound))

    async def handle_update_handler(self, input: temporalio.worker.HandleUpdateInput) -> Any:
        _caller.set(input.headers.get(HEADER))  # this handler's task only: the SDK runs each in its own
        return await super().handle_update_handler(input)


class _Activity(temporalio.worker.ActivityInboundInterceptor):
    async def execute_activity(self, input: temporalio.worker.ExecuteActivityInput) -> Any:
        context = _context_of(input.headers)
        if context is None:
            return await super().execute_activity(input)
        token = opentelemetry.context.attach(context)  # a sync activity's thread gets a copy of it
        try:
            return await super().execute_activity(input)
        finally:
            opentelemetry.context.detach(token)


class TraceContext(temporalio.client.Interceptor, temporalio.worker.Interceptor):
    """The client's and the worker's interceptor (a client's applies to a worker built from it),
    made once the tracer provider is set (activities/telemetry.py)."""

    def __init__(self) -> None:
        self.tracer = opentelemetry.trace.get_tracer("weibao.temporal")

    def intercept_client(self, next: temporalio.client.OutboundInterceptor) -> temporalio.client.OutboundInterceptor:
        return _Client(next, self.tracer)

    def intercept_activity(self, next: temporalio.worker.ActivityInboundInterceptor
                           ) -> temporalio.worker.ActivityInboundInterceptor:
        return _Activity(next)

    def workflow_interceptor_class(self, input: temporalio.worker.WorkflowInterceptorClassInput
                                   ) -> type[temporalio.worker.WorkflowInboundInterceptor]:
        return _WorkflowInbound


def plugin() -> SimplePlugin:
    return SimplePlugin("weibao.trace_context", interceptors=[TraceContext()])
