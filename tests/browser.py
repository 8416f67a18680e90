"""The console under a real browser: the API (and its console) served by uvicorn on a free
port with a real worker on the time-skipping server, and Debian's Chromium driven by
Playwright — one browser per session, a fresh context (a person's own browser) per test.
Every request a page makes is recorded, and a test fails if any went anywhere but
127.0.0.1."""
from __future__ import annotations

import os
import shutil
import uuid
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any, AsyncIterator
from urllib.parse import urlsplit

import httpx
import pytest

from activities.outbox import Outbox
from activities.record import Recorder
from activities.store import open_store
from api.app import create_app
from api.console import auth
from api.deps import Services, get_read_models
from projections.runner import ReadModels, Runner
from tests.api_fixtures import Api, end_api_workflows, served
from tests.conftest import running_worker

CHROMIUM = "/usr/bin/chromium"
INSTALL = "apt-get update && apt-get install -y chromium"
PHONE = {"width": 390, "height": 844}


@dataclass
class Console:
    """The served app: its base URL, an API client (bearer) to set things up, and sign-in links."""

    base: str
    api: Api
    services: Services
    env: Any

    def login_link(self, staff_id: str) -> str:
        return f"{self.base}/console/signin/{auth.login_token(staff_id)}"


@asynccontextmanager
async def console_stack(env, org, use_store, monkeypatch, kind: str = "sqlite") -> AsyncIterator[Console]:
    use_store(kind)
    store, outbox, models = open_store(), Outbox(), ReadModels()
    task_queue = f"tq-{uuid.uuid4()}"
    services = Services.build(env.client, store, org, task_queue=task_queue, read_models=models)
    app = create_app(services)
    runner = Runner(store, models)

    def caught_up() -> ReadModels:  # in tests every read model catches up before a request reads one
        runner.catch_up()
        return models

    app.dependency_overrides[get_read_models] = caught_up
    try:
        async with running_worker(env.client, Recorder(store, org, outbox), task_queue):
            async with served(app) as base:
                monkeypatch.setenv("WEIBAO_PUBLIC_URL", base)
                async with httpx.AsyncClient(base_url=base, timeout=30) as http:
                    try:
                        yield Console(base, Api(http, services, task_queue), services, env)
                    finally:
                        await end_api_workflows(services)
    finally:
        runner.close()
        services.close()
        models.close()
        outbox.close()
        store.close()


@pytest.fixture
async def console(env, org, use_store, monkeypatch) -> AsyncIterator[Console]:
    async with console_stack(env, org, use_store, monkeypatch) as c:
        yield c


def chromium_path() -> str:
    path = os.environ.get("WEIBAO_CHROMIUM") or CHROMIUM
    if not (os.path.exists(path) or shutil.which(path)):
        pytest.fail(f"Chromium is not installed at {path}: run `{INSTALL}` (make test does it when it can)")
    return path


@pytest.fixture(scope="session")
async def browser() -> AsyncIterator[Any]:
    from playwright.async_api import async_playwright

    async with async_playwright() as p:
        b = await p.chromium.launch(executable_path=chromium_path())
        try:
            yield b
        finally:
            await b.close()


@dataclass
class Requests:
    urls: list[str] = field(default_factory=list)

    def outside(self) -> list[str]:
        """Every request that went anywhere but this machine's 127.0.0.1."""
        out = []
        for url in self.urls:
            parts = urlsplit(url)
            if parts.scheme in ("data", "about", "blob"):
                continue
            if parts.hostname != "127.0.0.1":
                out.append(url)
        return out


@asynccontextmanager
async def person(browser: Any, requests: Requests, phone: bool = False) -> AsyncIterator[Any]:
    """A fresh browser context (someone's own browser, no cookies) and its page."""
    options: dict[str, Any] = {"locale": "zh-CN", "timezone_id": "Asia/Shanghai"}
    if phone:
        options.update(viewport=PHONE, is_mobile=True, has_touch=True, device_scale_factor=2)
    context = await browser.new_context(**options)
    context.on("request", lambda r: requests.urls.append(r.url))
    page = await context.new_page()
    page.set_default_timeout(20_000)
    try:
        yield page
    finally:
        await context.close()


@pytest.fixture
async def people(browser) -> AsyncIterator[Any]:
    """`async with people() as page:` a fresh context per person; afterwards, no request of any
    of them went outside 127.0.0.1."""
    requests = Requests()

    def make(phone: bool = False) -> Any:
        return person(browser, requests, phone)

    make.requests = requests  # type: ignore[attr-defined]
    yield make
    assert requests.urls, "no page was loaded"
    assert requests.outside() == [], f"requests left the machine: {requests.outside()}"


async def sign_in(page: Any, console: Console, staff_id: str) -> None:
    """Open a sign-in link and press the button, as a person would."""
    await page.goto(console.login_link(staff_id))
    await page.get_by_role("button", name="Sign in as").click()
    await page.wait_for_url(f"{console.base}/console/")
