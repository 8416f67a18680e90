"""The console's sign-in, sessions and CSRF, the list endpoints it adds to the API
(GET /complaints, /returns, /plans, /inspections and GET /tickets' customer and day
filters), engineer-entered sign-off and the downloads, over HTTP against the served app
with a real worker (tests/browser.py's stack, no browser)."""
from __future__ import annotations

import io
import re
import sqlite3
from contextlib import asynccontextmanager
from datetime import datetime, timedelta, timezone
from typing import AsyncIterator

import httpx
import psycopg
import pytest

from api import cli
from api.console import auth
from tests.browser import Console, console, console_stack  # noqa: F401 - fixture
from tests.case_helpers import COMPLAINT, PLAN, RETURN, start_inspection
from tests.conftest import PG_DBNAME


def csrf_of(html: str) -> str:
    return re.search(r'name="csrf" value="([^"]+)"', html).group(1)


@asynccontextmanager
async def signed_in(console: Console, staff_id: str, link: str | None = None) -> AsyncIterator[httpx.AsyncClient]:
    """A browser-like client (cookies kept) signed in through a link."""
    async with httpx.AsyncClient(base_url=console.base, timeout=30) as client:
        link = link or console.login_link(staff_id)
        page = await client.get(link)
        assert page.status_code == 200, page.text
        r = await client.post(link, data={"csrf": csrf_of(page.text)})
        assert r.status_code == 303 and r.headers["location"] == "/console/", r.text
        cookie = r.headers["set-cookie"]
        assert "HttpOnly" in cookie and "SameSite=strict" in cookie.replace("Strict", "strict")
        yield client


async def test_weibao_login_link_prints_a_link_that_signs_in_once(console, capsys):
    assert cli.main(["login-link", "S001"]) == 0
    link = capsys.readouterr().out.strip()
    assert link.startswith(f"{console.base}/console/signin/")
    async with signed_in(console, "S001", link) as client:
        queue = await client.get("/console/")
        assert queue.status_code == 200 and "Wu Gang (maintenance supervisor) · S001" in queue.text
        again = await httpx.AsyncClient(base_url=console.base).post(link, data={"csrf": auth.link_csrf(
            link.rsplit("/", 1)[1])})
        assert again.status_code == 400 and "used already" in again.text
    assert cli.main(["login-link", "X999"]) == 2


async def test_a_sign_in_link_expires(console, monkeypatch):
    link = console.login_link("S001")
    monkeypatch.setenv("WEIBAO_LOGIN_LINK_TTL", "0.0001m")
    import time
    time.sleep(1.1)
    async with httpx.AsyncClient(base_url=console.base) as client:
        r = await client.get(link)
        assert r.status_code == 400 and "expired" in r.text
        r = await client.get(link.replace("/signin/", "/signin/x"))
        assert r.status_code == 400 and "not valid" in r.text


async def test_a_session_expires_and_signing_out_ends_it(console, monkeypatch):
    async with signed_in(console, "M001") as client:
        page = await client.get("/console/")
        assert page.status_code == 200
        refused = await client.post("/console/signout", data={})  # no CSRF token: refused, still signed in
        assert refused.status_code == 403 and "CSRF" in refused.text
        r = await client.post("/console/signout", data={"csrf": csrf_of(page.text)})
        assert r.status_code == 303
        gone = await client.get("/console/")
        assert gone.status_code == 401 and "weibao login-link" in gone.text
    monkeypatch.setenv("WEIBAO_CONSOLE_SESSION_TTL", "0.0001m")
    async with signed_in(console, "M001") as client:
        import asyncio
        await asyncio.sleep(1.1)
        assert (await client.get("/console/")).status_code == 401


async def test_bearer_tokens_keep_working_for_the_api_beside_the_console(console):
    ticket = await console.api.report(customer="Anning Hospital")
    r = await console.api.get("/tickets", "M001", customer="Anning Hospital")
    assert r.status_code == 200 and [t["ticket_id"] for t in r.json()["items"]] == [ticket]
    assert (await console.api.get("/console/", None)).status_code == 401  # the console wants its session


async def test_get_tickets_filters_by_customer_and_the_days_reported(console):
    a = await console.api.report(customer="Anning Hospital")
    b = await console.api.report(customer="Yuxi Hospital")
    day = auth_day(console.api.history(a)[0]["at"])
    r = await console.api.get("/tickets", "M001", customer="Yuxi Hospital")
    assert [t["ticket_id"] for t in r.json()["items"]] == [b]
    r = await console.api.get("/tickets", "M001", **{"from": day, "to": day})
    assert {t["ticket_id"] for t in r.json()["items"]} == {a, b}
    r = await console.api.get("/tickets", "M001", **{"from": "2001-01-01", "to": "2001-01-02"})
    assert r.json()["items"] == []
    r = await console.api.get("/tickets", "M001", **{"from": "2001-01-02", "to": "2001-01-01"})
    assert r.status_code == 422 and r.json()["field"] == "to"
    r = await console.api.get("/tickets", "M001", **{"from": "01/02/2001"})
    assert r.status_code == 422


def auth_day(at) -> str:
    from api.console.present import cst
    return cst(at)[:10]


async def test_complaints_returns_plans_and_visits_are_listed_with_filters(console):
    api = console.api
    r = await api.post("/complaints", "C001", {**COMPLAINT, "about_person": "E002"})
    assert r.status_code == 201, r.text
    complaint = r.json()["complaint_id"]
    r = await api.post("/complaints", "C001", {**COMPLAINT, "customer": "Yuxi Hospital",
                                                "category": "functionality", "about_department": "rnd"})
    other = r.json()["complaint_id"]
    now = datetime.now(timezone.utc)  # the API checks dates against its own clock, the case against the workflow's
    today = auth_day(min(now, await console.env.get_current_time()))
    r = await api.post("/returns", "C001", {**RETURN, "delivery_date": today, "wanted": "return"})
    assert r.status_code == 201, r.text
    ret = r.json()["return_id"]
    r = await api.post("/contracts/K-9/plan", "S002", {**PLAN, "delivery_date": today, "responsible": "E002"})
    assert r.status_code == 201, r.text
    visit, _ = await start_inspection(console.env.client, api.task_queue,
                                      due_at=await console.env.get_current_time() + timedelta(days=1))
    mine = visit.id.removeprefix("inspection-")

    page = (await api.get("/complaints", "M001")).json()
    assert {c["case_id"] for c in page["items"]} == {complaint, other}
    assert all("contact" not in c for c in page["items"])
    only = (await api.get("/complaints", "M001", customer="Yuxi Hospital")).json()["items"]
    assert [c["case_id"] for c in only] == [other] and only[0]["department"] == "rnd"
    routed = (await api.get("/complaints", "M001", department="project")).json()["items"]
    assert [c["case_id"] for c in routed] == [complaint]
    day = auth_day(console.services.store.history("complaint", complaint)[0]["at"])
    assert len((await api.get("/complaints", "M001", **{"from": day, "to": day})).json()["items"]) == 2
    assert (await api.get("/complaints", "M001", **{"from": "2001-01-01", "to": "2001-01-01"})).json()["items"] == []
    assert [r["case_id"] for r in (await api.get("/returns", "A001")).json()["items"]] == [ret]
    assert [p["case_id"] for p in (await api.get("/plans", "M002")).json()["items"]] == ["K-9"]
    visits = (await api.get("/inspections", "E002")).json()["items"]
    assert mine in [v["case_id"] for v in visits]
    assert (await api.get("/inspections", "E001")).json()["items"] == []  # E001 has no visit
    assert (await api.get("/complaints", "E001")).status_code == 403
    bad = await api.get("/complaints", "M001", colour="red")
    assert bad.status_code == 422 and bad.json()["field"] == "colour"

    async with signed_in(console, "M001") as client:
        listed = await client.get("/console/cases/complaint?customer=Yuxi+Hospital")
        assert other in listed.text and complaint not in listed.text
        case = await client.get(f"/console/cases/complaint/{complaint}")
        assert case.status_code == 200 and "Registered" in case.text and "Record intact" in case.text
        queue = await client.get("/console/")
        assert complaint in queue.text  # open; the return may already be decided (closed) by the workflow's clock
        assert ret in (await client.get("/console/cases/return")).text


async def test_a_sign_off_entered_by_the_engineer_says_so_in_the_history(console):
    ticket = await console.api.report()
    for step, who, data in (("triage", "S001", dict(severity="critical", zone="A")),
                            ("dispatch", "S001", dict(engineer="E001")),
                            ("arrive", "E001", dict(staff_id_shown=True)),
                            ("resolve", "E001", dict(cause="disk", resolution="replaced the disk"))):
        await console.api.ok(ticket, step, who, **data)
    async with signed_in(console, "E001") as client:
        page = await client.get(f"/console/tickets/{ticket}")
        assert "QR code of the sign-off link" in page.text and "entered by you for a customer" in page.text
        r = await client.post(f"/console/tickets/{ticket}/steps/sign-off",
                              data={"csrf": csrf_of(page.text), "signature": "Mr. Zhou", "satisfaction": "3",
                                    "opinion": "no phone with me"})
        assert r.status_code == 303, r.text
        page = await client.get(f"/console/tickets/{ticket}")
        assert "entered by the engineer Wang Fang (engineer) · E001 for the customer" in page.text
    signed = console.api.history(ticket)[-1]
    assert signed["type"] == "SignedOff" and signed["actor"] == "E001"
    assert signed["data"]["entered_by"] == "E001" and signed["data"]["satisfaction"] == 3


async def test_a_refused_step_shows_its_reason_and_records_nothing(console):
    ticket = await console.api.report()
    async with signed_in(console, "S001") as client:
        page = await client.get(f"/console/tickets/{ticket}")
        r = await client.post(f"/console/tickets/{ticket}/steps/close",
                              data={"csrf": csrf_of(page.text), "time_rating": "4", "quality_rating": "4"})
        assert r.status_code == 409 and "the supervisor closes a signed-off ticket" in r.text
        r = await client.post(f"/console/tickets/{ticket}/steps/triage",
                              data={"csrf": csrf_of(page.text), "severity": "extreme", "zone": "A"})
        assert r.status_code == 422 and "severity" in r.text
    async with signed_in(console, "E002") as client:  # not their ticket
        assert (await client.get(f"/console/tickets/{ticket}")).status_code == 403
    assert [e["type"] for e in console.api.history(ticket)] == ["Reported"]


async def test_reports_download_as_csv_and_xlsx_for_report_readers_only(console):
    async with signed_in(console, "A001") as client:
        csv = await client.get("/console/reports/sla.csv?month=2026-01")
        assert csv.status_code == 200 and csv.text.startswith("\ufeff")
        xlsx = await client.get("/console/reports/engineers.xlsx?month=2026-01")
        assert xlsx.status_code == 200 and xlsx.content[:2] == b"PK"
        from openpyxl import load_workbook
        assert load_workbook(io.BytesIO(xlsx.content)).active.title == "engineers"
        assert (await client.get("/console/reports?month=2026-13")).status_code == 422
    async with signed_in(console, "E001") as client:
        assert (await client.get("/console/reports")).status_code == 403


@pytest.mark.parametrize("path", ["/docs", "/redoc"])
async def test_the_api_docs_name_only_files_of_this_server(console, path):
    r = await console.api.get(path, None)
    assert r.status_code == 200
    urls = re.findall(r'(?:src|href)="([^"]+)"', r.text) + re.findall(r"url: '([^']+)'", r.text)
    assert urls and all(u.startswith("/") for u in urls), urls


async def test_a_complaint_and_a_visit_are_stepped_from_their_pages_by_whoever_may(console):
    api = console.api
    r = await api.post("/complaints", "C001", {**COMPLAINT, "about_person": "E002"})
    complaint = r.json()["complaint_id"]  # service attitude: routed to the project department
    async with signed_in(console, "S001") as client:  # after-sales: not theirs to handle
        page = await client.get(f"/console/cases/complaint/{complaint}")
        assert page.status_code == 200 and 'aria-label="Step acknowledge"' not in page.text
    async with signed_in(console, "S002") as client:
        page = await client.get(f"/console/cases/complaint/{complaint}")
        assert 'aria-label="Step acknowledge"' in page.text
        r = await client.post(f"/console/cases/complaint/{complaint}/steps/acknowledge",
                              data={"csrf": csrf_of(page.text), "note": "calling the customer back today"})
        assert r.status_code == 303, r.text
        page = await client.get(r.headers["location"])
        assert "Recorded: acknowledge" in page.text and "Acknowledged" in page.text
    assert console.services.store.history("complaint", complaint)[-1]["actor"] == "S002"

    visit, _ = await start_inspection(console.env.client, api.task_queue, kind="follow_up",
                                      due_at=await console.env.get_current_time() + timedelta(days=1))
    iid = visit.id.removeprefix("inspection-")
    async with signed_in(console, "E001") as client:  # not their visit
        assert (await client.get(f"/console/cases/inspection/{iid}")).status_code == 403
    async with signed_in(console, "E002") as client:
        page = await client.get(f"/console/cases/inspection/{iid}")
        assert 'aria-label="Step call"' in page.text
        r = await client.post(f"/console/cases/inspection/{iid}/steps/call",
                              data={"csrf": csrf_of(page.text), "spoke_with": "Director Zhou",
                                    "notes": "all systems normal", "issues": ""})
        assert r.status_code == 303, r.text
    assert console.services.store.history("inspection", iid)[-1]["type"] == "FollowUpCalled"


def _event_item(html: str, version: int) -> str:
    """The `<li>` of one version on a ticket page."""
    return re.search(rf'<li id="v{version}" .*?</li>', html, re.S).group(0)


def _state_panel(html: str) -> str:
    """The state panel (`_state.html`) on a ticket page."""
    return re.search(r'<div id="state">.*?</section>', html, re.S).group(0)


def _status(html: str) -> str:
    return re.search(r'<dd class="status">(.*?)</dd>', _state_panel(html)).group(1)


@pytest.fixture(params=["sqlite", "postgres"])
async def any_console(request, env, org, use_store, monkeypatch) -> AsyncIterator[Console]:
    """The served console over either event store."""
    async with console_stack(env, org, use_store, monkeypatch, request.param) as c:
        yield c


def _edit_stored_event(version: int, old: str, new: str) -> int:
    """Edit a stored event's bytes in place, behind the event store's back (rows changed)."""
    from activities import config
    if config.store_kind() == "sqlite":
        with sqlite3.connect(config.sqlite_path()) as db:
            return db.execute("UPDATE stored_events SET state = CAST(replace(CAST(state AS TEXT), ?, ?) AS BLOB) "
                              "WHERE originator_version = ? AND instr(CAST(state AS TEXT), ?) > 0",
                              (old, new, version, old)).rowcount
    with psycopg.connect(f"host=127.0.0.1 port=5432 dbname={PG_DBNAME} user=postgres", autocommit=True) as c:
        (table,) = c.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'public' "
                             "AND tablename LIKE '%events' AND tablename LIKE 'tickets%'").fetchone()
        return c.execute(f"UPDATE {table} SET state = convert_to(replace(convert_from(state, 'UTF8'), %s, %s), "
                         "'UTF8') WHERE originator_version = %s AND position(%s in convert_from(state, 'UTF8')) > 0",
                         (old, new, version, old)).rowcount


async def test_the_ticket_page_shows_a_new_or_changed_event_at_once_and_masks_for_each_viewer(any_console):
    """The console keeps each stored event's decoded and rendered form (api/console/history.py):
    that never stands in for an event recorded since, for a stored event changed since, or for
    what another role may see."""
    from api.console.pages import parts

    console = any_console
    ticket = await console.api.report(customer="Qujing Hospital", confidential_notes="BMC root password Xy9!")
    page = f"/console/tickets/{ticket}"
    async with signed_in(console, "M001") as manager, signed_in(console, "A001") as auditor:
        seen = (await manager.get(page)).text  # kept now, unmasked: the manager may see the notes
        assert seen.count('<li id="v') == 1 and "Xy9!" in _event_item(seen, 1) and "0871-6300000" in seen
        assert "0871-6300000" in _state_panel(seen) and _status(seen) == "reported"
        masked = (await auditor.get(page)).text
        assert "Xy9!" not in masked and "0871-6300000" not in masked
        assert "***" in _event_item(masked, 1) and "***" in _state_panel(masked)
        assert "Xy9!" in _event_item((await manager.get(page)).text, 1)  # the auditor's view is not the manager's

        await console.api.ok(ticket, "triage", "S001", severity="critical", zone="A")  # a new event
        for client in (manager, auditor):
            shown = (await client.get(page)).text
            assert shown.count('<li id="v') == 2 and "Triaged as critical in zone A" in _event_item(shown, 2)
            assert _status(shown) == "triaged"  # the state panel of the new state, not the kept one
        assert "Xy9!" not in shown and "0871-6300000" not in shown  # the auditor's, still masked
        assert "0871-6300000" in _state_panel((await manager.get(page)).text)
        memo = parts(console.services).memo
        assert memo.read_history("ticket", ticket) == console.services.store.read_history("ticket", ticket)

        assert _edit_stored_event(1, "Qujing", "Zhaotong") == 1  # shown as stored now
        shown = (await manager.get(page)).text
        assert "Zhaotong Hospital" in _event_item(shown, 1) and "Qujing" not in _event_item(shown, 1)


async def test_the_console_keeps_the_events_of_the_cases_read_last_up_to_its_bound(console):
    from api.console.history import EventMemo

    store = console.services.store
    a, b = await console.api.report(), await console.api.report()
    await console.api.ok(a, "triage", "S001", severity="critical", zone="A")
    memo = EventMemo(store, max_events=2)
    first, _ = memo.read_history("ticket", a)
    assert first == store.read_history("ticket", a)[0] and len(first) == 2
    again, _ = memo.read_history("ticket", a)
    assert all(x is y for x, y in zip(first, again))  # decoded once
    memo.read_history("ticket", b)  # over the bound: the case read longest ago goes
    assert all(x is not y for x, y in zip(first, memo.read_history("ticket", a)[0]))
    assert memo.read_history("ticket", "no-such-ticket") == ([], None)
