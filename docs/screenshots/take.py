"""Take the README's console screenshots with Playwright and Debian's Chromium.

Starts what the browser tests start (a fresh SQLite event store, a worker on the
time-skipping server, the API and console under uvicorn on a free port), records a few
tickets, a breach and escalation, a complaint and a closed month's work through the API,
and saves docs/screenshots/queue.png, ticket.png, report.png and phone.png.

    .venv/bin/python docs/screenshots/take.py
"""
from __future__ import annotations

import asyncio
import os
import sys
import tempfile
import uuid
from datetime import timedelta
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parents[1]))


async def main() -> None:
    tmp = Path(tempfile.mkdtemp(prefix="weibao-shots-"))
    os.environ.update(WEIBAO_DATA_DIR=str(tmp), WEIBAO_SQLITE_PATH=str(tmp / "events.db"), WEIBAO_EVENT_STORE="sqlite")
    import httpx
    from playwright.async_api import async_playwright
    from temporalio.contrib.pydantic import pydantic_data_converter
    from temporalio.testing import WorkflowEnvironment

    from activities import config
    from activities.outbox import Outbox
    from activities.record import Recorder
    from activities.store import open_store
    from api.app import create_app
    from api.console import auth
    from api.deps import Services, get_read_models
    from projections.runner import ReadModels, Runner
    from tests.api_fixtures import Api, served
    from tests.browser import CHROMIUM, PHONE
    from tests.case_helpers import COMPLAINT
    from worker import build_worker
    from workflows import search

    org = config.load_org()
    async with await WorkflowEnvironment.start_time_skipping(
            data_converter=pydantic_data_converter,
            test_server_existing_path=config.binary("temporal-test-server")) as env:
        store, outbox, models = open_store(), Outbox(), ReadModels()
        queue = f"shots-{uuid.uuid4()}"
        services = Services.build(env.client, store, org, task_queue=queue, read_models=models)
        app = create_app(services)
        runner = Runner(store, models)
        app.dependency_overrides[get_read_models] = lambda: (runner.catch_up(), models)[1]
        await search.register(env.client)
        async with build_worker(env.client, Recorder(store, org, outbox), task_queue=queue):
            async with served(app) as base, httpx.AsyncClient(base_url=base, timeout=30) as http:
                os.environ["WEIBAO_PUBLIC_URL"] = base
                api = Api(http, services, queue)

                async def ticket(customer: str, severity: str, steps: list[tuple[str, str, dict]], **extra) -> str:
                    t = await api.report(customer=customer, severity=severity, **extra)
                    for step, who, data in steps:
                        await api.ok(t, step, who, **data)
                    return t

                triage = ("triage", "S001", dict(severity="critical", zone="A"))
                dispatch = ("dispatch", "S001", dict(engineer="E001", travel_mode="taxi"))
                arrive = ("arrive", "E001", dict(staff_id_shown=True))
                resolve = ("resolve", "E001", dict(cause="RAID controller failed",
                                                   resolution="replaced the controller, rebuilt the array",
                                                   parts_used=["RAID controller"]))
                done = await ticket("Yunnan Cancer Hospital", "critical", [
                    triage, dispatch, arrive, resolve,
                    ("sign-off", "E001", dict(signature="Dr. Li Wei", satisfaction=5, opinion="fast")),
                    ("close", "S001", dict(time_rating=5, quality_rating=5))])
                late = await ticket("Kunming First People's Hospital", "critical", [triage])
                await env.sleep(timedelta(hours=6, minutes=10))  # past 4 h and leadership's 6 h
                await api.ok(late, "dispatch", "S001", engineer="E001", travel_mode="company_car")
                await api.ok(late, "arrive", "E001", staff_id_shown=True)
                await ticket("Kunming No.2 Hospital", "major", [("triage", "S001", dict(severity="major", zone="A")),
                                                                 dispatch])
                await ticket("Qujing Hospital", "general", [])
                await ticket("Dali Prefecture Hospital", "critical", [("triage", "S001",
                                                                       dict(severity="critical", zone="B"))])
                r = await api.post("/complaints", "C001", {**COMPLAINT, "about_person": "E001", "ticket_id": late})
                assert r.status_code == 201, r.text
                month = __import__("api.console.present", fromlist=["cst"]).cst(api.history(done)[-1]["at"])[:7]

                async with async_playwright() as p:
                    browser = await p.chromium.launch(executable_path=os.environ.get("WEIBAO_CHROMIUM", CHROMIUM))

                    async def shot(staff: str, path: str, name: str, viewport=None, full=False, **ctx) -> None:
                        context = await browser.new_context(viewport=viewport or {"width": 1360, "height": 900},
                                                            locale="zh-CN", timezone_id="Asia/Shanghai", **ctx)
                        page = await context.new_page()
                        await page.goto(f"{base}/console/signin/{auth.login_token(staff)}")
                        await page.get_by_role("button", name="Sign in as").click()
                        await page.wait_for_url(f"{base}/console/")
                        await page.goto(base + path)
                        await page.wait_for_load_state("networkidle")
                        await page.wait_for_timeout(400)
                        await page.screenshot(path=str(HERE / name), full_page=full)
                        await context.close()
                        print("saved", HERE / name)

                    await shot("S001", "/console/", "queue.png")
                    await shot("M001", f"/console/tickets/{late}", "ticket.png", full=True)
                    await shot("M001", f"/console/reports?month={month}", "report.png",
                               viewport={"width": 1360, "height": 1100})
                    await shot("E001", "/console/", "phone.png", viewport=PHONE, is_mobile=True,
                               device_scale_factor=2, has_touch=True)
                    await browser.close()
                for t in [done, late]:
                    try:
                        await env.client.get_workflow_handle(f"ticket-{t}").terminate("screenshots taken")
                    except Exception:
                        pass
        runner.close()
        services.close()
        models.close()
        outbox.close()
        store.close()


if __name__ == "__main__":
    asyncio.run(main())
