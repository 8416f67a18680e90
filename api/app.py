"""The HTTP API, assembled: the routers of fault tickets (api.tickets), complaints,
returns, plans and visits (api.cases) and reports (api.reports), the error answers
(api.errors), and the process's services (api.deps.Services), opened at start and
closed at shutdown. No business rule lives here: domain.permissions says who may do
what, the workflows' validators what is legal now.

    python -m api        # serves on WEIBAO_API_HOST:WEIBAO_API_PORT (127.0.0.1:8000)
"""
import logging
from contextlib import asynccontextmanager

from fastapi import Depends, FastAPI

from activities import config, telemetry
from api import cases, console, errors, escalations, health, lists, metrics, reports, tickets
from api.deps import WELL_FORMED, Services
from api.limits import BodyLimit

log = logging.getLogger("weibao.api")


def create_app(services: Services | None = None) -> FastAPI:
    """The API; without `services` it opens them from the environment on startup (and
    closes them on shutdown)."""

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        own = app.state.services is None
        if own:
            app.state.services = await Services.from_env()
            log.info("API on Temporal %s, task queue %s, event store %s", config.temporal_address(),
                     app.state.services.task_queue, config.store_kind())
        try:
            yield
        finally:
            if own:
                app.state.services.close()
                app.state.services = None

    app = FastAPI(title="weibao", version="0.1.0", lifespan=lifespan, docs_url=None, redoc_url=None,
                  generate_unique_id_function=lambda route: route.name,
                  dependencies=[Depends(metrics.bind_case)],  # every log line of a request names its case
                  description="Fault tickets (报障/维修派工单) for engineers, supervisors, clerks, managers and "
                              "auditors. Authenticate with `Authorization: Bearer <token>`; every 4xx answer is "
                              '`{"error", "detail", "field"}`, and a 422 lists every problem in `errors`.')
    app.state.services = services
    app.add_middleware(BodyLimit, max_bytes=config.settings().api_max_body)
    errors.install(app)  # its last-resort middleware goes outside the body limit
    app.add_middleware(metrics.Observed)  # outermost: every answer counted and timed, the 500s too
    app.include_router(health.router)
    app.add_api_route("/metrics", metrics.metrics, methods=["GET"], include_in_schema=False)
    # the web console, `/` to it, and /docs and /redoc with no files from outside: its few
    # routes (all under /console/) first, so a page is not matched against every API route
    # before its own (an API request tries these few first)
    console.install(app)
    app.include_router(tickets.router)
    app.include_router(cases.router)
    app.include_router(reports.router)
    app.include_router(lists.router, dependencies=WELL_FORMED)  # known query parameters, no control characters
    app.include_router(escalations.router, dependencies=WELL_FORMED)
    if telemetry.tracing_enabled():  # a span per request, the parent of its Update's spans
        from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor
        FastAPIInstrumentor.instrument_app(app, excluded_urls="healthz,readyz,metrics")
    return app
