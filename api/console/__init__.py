"""The web console (issue 15): pages for supervisors, engineers, managers, auditors and the
customer's sign-off, served by the API process with no build step — Jinja2 templates,
htmx for partial updates and ECharts for the reports' charts, both vendored under
static/vendor/ with their licences, as are Swagger UI and ReDoc for /docs and /redoc.
Nothing a page loads comes from outside the server.

`install(app)` adds the console's routes and static files, the offline API docs and the
redirect of `/` to the console."""
from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from fastapi.responses import HTMLResponse, RedirectResponse
from fastapi.staticfiles import StaticFiles

from api.console.pages import Refused, SignInRequired, refused_page, router, sign_in_page

STATIC = Path(__file__).parent / "static"
VENDOR = "/console/static/vendor"


def install(app: FastAPI) -> None:
    app.include_router(router)
    app.mount("/console/static", StaticFiles(directory=str(STATIC)), name="console-static")
    app.add_exception_handler(SignInRequired, sign_in_page)  # type: ignore[arg-type]
    app.add_exception_handler(Refused, refused_page)  # type: ignore[arg-type]

    @app.get("/", include_in_schema=False)
    async def root() -> RedirectResponse:
        return RedirectResponse("/console/", status_code=307)

    @app.get("/docs", include_in_schema=False)
    async def swagger_ui(request: Request) -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url=app.openapi_url or "/openapi.json", title=f"{app.title} — API",
            swagger_js_url=f"{VENDOR}/swagger-ui/swagger-ui-bundle.js",
            swagger_css_url=f"{VENDOR}/swagger-ui/swagger-ui.css",
            swagger_favicon_url="/console/static/favicon.svg",
            swagger_ui_parameters={"validatorUrl": None})

    @app.get("/redoc", include_in_schema=False)
    async def redoc(request: Request) -> HTMLResponse:
        return get_redoc_html(openapi_url=app.openapi_url or "/openapi.json", title=f"{app.title} — API",
                              redoc_js_url=f"{VENDOR}/redoc/redoc.standalone.js",
                              redoc_favicon_url="/console/static/favicon.svg", with_google_fonts=False)
