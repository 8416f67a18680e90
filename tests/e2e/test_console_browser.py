"""The console in a real browser (Debian's Chromium, Playwright): what each person sees and
does, over the real API, worker and event store (tests/browser.py)."""
from __future__ import annotations

import re

from playwright.async_api import expect

from tests.browser import console, people, browser, sign_in  # noqa: F401 - fixtures


async def test_a_sign_in_link_opens_a_session_once(console, people):
    link = console.login_link("S001")
    async with people() as page:
        await page.goto(link)
        await expect(page.get_by_text("This link signs in Wu Gang")).to_be_visible()
        await page.get_by_role("button", name="Sign in as").click()
        await expect(page.get_by_role("heading", name="Queue")).to_be_visible()
        await expect(page.get_by_text("Wu Gang (maintenance supervisor) · S001")).to_be_visible()
    async with people() as page:  # someone else with the same link: it was used
        await page.goto(link)
        await expect(page.get_by_role("alert")).to_contain_text("used already")


async def test_a_supervisor_triages_and_dispatches_from_the_queue(console, people):
    ticket = await console.api.report(customer="Kunming No.2 Hospital", severity="major")
    async with people() as page:
        await sign_in(page, console, "S001")
        queue = page.get_by_role("table", name="Open work")
        await expect(queue).to_contain_text(f"Ticket {ticket}")
        await expect(queue).to_contain_text("Kunming No.2 Hospital")
        await page.get_by_role("link", name=f"Ticket {ticket}").click()
        await expect(page.get_by_role("heading", name=f"Ticket {ticket}")).to_be_visible()
        await expect(page.get_by_text("Record intact")).to_be_visible()
        triage = page.get_by_role("form", name="Step triage")
        await triage.get_by_label("severity").select_option("critical")
        await triage.get_by_label("zone").select_option("A")
        await triage.get_by_role("button", name="Triage").click()
        await expect(page.get_by_role("status")).to_have_text("Recorded: triage")
        dispatch = page.get_by_role("form", name="Step dispatch")
        await dispatch.get_by_label("engineer").select_option("E001")
        await dispatch.get_by_label("travel mode").select_option("taxi")
        await dispatch.get_by_role("button", name="Dispatch").click()
        await expect(page.get_by_role("status")).to_have_text("Recorded: dispatch")
        state = page.get_by_role("region", name="State", exact=True)
        await expect(state).to_contain_text("dispatched")
        await expect(state).to_contain_text("Wang Fang (engineer) · E001")
        timeline = page.get_by_role("list", name="Timeline")
        await expect(timeline).to_contain_text("Dispatched to Wang Fang (engineer) · E001, travelling by taxi")
        await expect(timeline).to_contain_text("by Wu Gang (maintenance supervisor) · S001")
        # an illegal step shows why: dispatch again is fine, but arrival is the engineer's
        later = page.get_by_text("Not possible now")
        await later.click()
        await expect(page.get_by_text("close: the supervisor closes a signed-off ticket")).to_be_visible()
    events = console.api.history(ticket)
    assert [e["type"] for e in events] == ["Reported", "Triaged", "Dispatched"]
    assert events[-1]["actor"] == "S001" and events[-1]["data"]["engineer"] == "E001"


async def dispatched(console, **report) -> str:
    ticket = await console.api.report(**report)
    await console.api.ok(ticket, "triage", "S001", severity=report.get("severity", "critical"), zone="A")
    await console.api.ok(ticket, "dispatch", "S001", engineer="E001", travel_mode="taxi")
    return ticket


async def test_an_engineer_arrives_and_resolves_on_a_phone_and_the_customer_signs_through_the_qr_link(
        console, people):
    ticket = await dispatched(console, customer="Yunnan Cancer Hospital")
    async with people(phone=True) as phone:
        await sign_in(phone, console, "E001")
        await expect(phone.get_by_role("heading", name="My work")).to_be_visible()
        await phone.get_by_role("link", name=f"Ticket {ticket}").click()
        arrive = phone.get_by_role("form", name="Step arrive")
        await expect(arrive.get_by_label("staff id shown")).to_be_checked()
        await arrive.get_by_role("button", name="Arrive").click()
        await expect(phone.get_by_role("status")).to_have_text("Recorded: arrive")
        resolve = phone.get_by_role("form", name="Step resolve")
        await resolve.get_by_label("cause").fill("RAID controller failed")
        await resolve.get_by_label("resolution").fill("replaced the controller, rebuilt the array")
        await resolve.get_by_label("parts used").fill("RAID controller")
        await resolve.get_by_role("button", name="Resolve").click()
        await expect(phone.get_by_role("status")).to_have_text("Recorded: resolve")
        await expect(phone.get_by_role("region", name="State", exact=True)).to_contain_text("resolved")
        # the page fits the phone: nothing wider than the screen
        width = await phone.evaluate("document.documentElement.scrollWidth")
        assert width <= 390, width
        await expect(phone.get_by_role("img", name="QR code of the sign-off link")).to_be_visible()
        link = await phone.get_by_role("link", name=re.compile("console.sign")).get_attribute("href")
    async with people(phone=True) as customer:  # the customer's own phone, not signed in
        await customer.goto(link)
        await expect(customer.get_by_text("replaced the controller, rebuilt the array")).to_be_visible()
        await expect(customer.get_by_text("Wang Fang (engineer)")).to_be_visible()
        await customer.get_by_label("Your name").fill("Dr. Li Wei")
        await customer.get_by_label("5 very satisfied").check()
        await customer.get_by_label("Your opinion").fill("fast and tidy")
        await customer.get_by_role("button", name="Sign off").click()
        await expect(customer.get_by_role("status")).to_contain_text("is recorded")
        await customer.goto(link)  # once only
        await expect(customer.get_by_role("alert")).to_contain_text("used already")
    signed = console.api.history(ticket)[-1]
    assert signed["type"] == "SignedOff"
    assert signed["actor"] == "customer:Dr. Li Wei"
    assert signed["data"]["satisfaction"] == 5 and signed["data"].get("entered_by") is None


async def test_a_manager_moves_the_as_of_slider_to_before_a_breach_and_sees_the_state_then(console, people):
    ticket = await console.api.report(customer="Kunming First People's Hospital", severity="critical")
    await console.api.ok(ticket, "triage", "S001", severity="critical", zone="A")
    await console.env.sleep(__import__("datetime").timedelta(hours=4, minutes=5))  # past the 4 h on-site window
    for _ in range(100):
        if any(e["type"] == "SlaBreached" for e in console.api.history(ticket)):
            break
        await __import__("asyncio").sleep(0.05)
    events = console.api.history(ticket)
    breach = next(e for e in events if e["type"] == "SlaBreached")
    async with people() as page:
        await sign_in(page, console, "M001")
        await page.goto(f"{console.base}/console/tickets/{ticket}")
        state = page.get_by_role("region", name="State", exact=True)
        await expect(state).to_contain_text("breached")
        await expect(page.get_by_role("list", name="Timeline")).to_contain_text("BREACH: on site (到场) missed")
        await expect(page.get_by_role("heading", name="Steps")).to_have_count(0)  # a manager changes nothing
        before = int(breach["at"].timestamp()) - 100
        await page.get_by_role("slider", name="As of").fill(str(before))
        await expect(state).to_contain_text("State as of")
        await expect(state).to_contain_text("warned: on site")  # the 75 % warning had gone out, no breach yet
        await expect(state).to_contain_text("open: 1 min left")
        await expect(state).not_to_contain_text("breached")
        await expect(page.locator("#as-of-label")).not_to_have_text("now")


async def test_an_auditor_sees_contact_fields_masked_and_no_step_form(console, people):
    ticket = await dispatched(console, customer="Qujing Hospital", confidential_notes="BMC root password Xy9!")
    async with people() as page:
        await sign_in(page, console, "A001")
        await page.goto(f"{console.base}/console/tickets/{ticket}")
        state = page.get_by_role("region", name="State", exact=True)
        await expect(state).to_contain_text("Contact phone***")
        await expect(state).to_contain_text("Confidential notes***")
        await expect(page.locator("body")).not_to_contain_text("0871-6300000")
        await expect(page.locator("body")).not_to_contain_text("Xy9!")
        await expect(page.get_by_role("heading", name="Steps")).to_have_count(0)
        await expect(page.get_by_role("form", name=re.compile("^Step "))).to_have_count(0)
        await page.goto(f"{console.base}/console/tickets/{ticket}/record")  # the printable record masks too
        await expect(page.get_by_role("heading", name=f"Service record of ticket {ticket}")).to_be_visible()
        await expect(page.locator("body")).not_to_contain_text("0871-6300000")


async def test_a_form_posted_without_its_csrf_token_is_refused(console, people):
    ticket = await console.api.report()
    async with people() as page:
        await sign_in(page, console, "S001")
        await page.goto(f"{console.base}/console/tickets/{ticket}")
        triage = page.get_by_role("form", name="Step triage")
        await triage.evaluate("form => form.querySelector('input[name=csrf]').remove()")
        await triage.get_by_role("button", name="Triage").click()
        await expect(page.get_by_role("heading", name="Refused")).to_be_visible()
        await expect(page.get_by_role("alert")).to_contain_text("no valid CSRF token")
    assert [e["type"] for e in console.api.history(ticket)] == ["Reported"]


async def test_a_report_chart_renders_with_the_months_numbers(console, people, tmp_path):
    ticket = await dispatched(console, customer="Dali Hospital")
    await console.api.ok(ticket, "arrive", "E001", staff_id_shown=True)
    await console.api.ok(ticket, "resolve", "E001", cause="PSU failed", resolution="replaced the PSU")
    await console.api.ok(ticket, "sign-off", "E001", signature="Dr. Zhang", satisfaction=4)
    month = __import__("api.console.present", fromlist=["cst"]).cst(console.api.history(ticket)[-1]["at"])[:7]
    async with people() as page:
        await sign_in(page, console, "M001")
        await page.goto(f"{console.base}/console/reports?month={month}")
        chart = page.get_by_role("img", name="Chart: Engineer scorecards")
        await expect(chart.locator("svg")).to_be_visible()
        await expect(chart).to_contain_text("Wang Fang (engineer)")
        await expect(chart).to_contain_text("tickets handled")
        scorecards = page.get_by_role("table", name="Engineer scorecards")
        await expect(scorecards).to_contain_text("Wang Fang (engineer)")
        await expect(scorecards.get_by_role("link", name=re.compile(f"{ticket} @1,"))).to_be_visible()
        sla = page.get_by_role("img", name="Chart: SLA compliance")
        await expect(sla).to_contain_text("Dali Hospital")
        async with page.expect_download() as download:
            await page.get_by_role("link", name="Excel (.xlsx)").first.click()
        path = tmp_path / "engineers.xlsx"
        await (await download.value).save_as(path)
        from openpyxl import load_workbook
        sheet = load_workbook(path).active
        header = [c.value for c in sheet[1]]
        assert "tickets_handled" in header
        assert sheet.cell(2, header.index("tickets_handled") + 1).value == 1
        await scorecards.get_by_role("link", name=re.compile(f"{ticket} @1,")).click()
        await expect(page.get_by_role("heading", name=f"Ticket {ticket}")).to_be_visible()


async def test_the_console_and_the_api_docs_load_nothing_from_outside_the_server(console, people):
    ticket = await console.api.report()
    async with people() as page:
        await page.goto(f"{console.base}/")  # redirected to the console, which asks to sign in
        await expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
        await page.goto(f"{console.base}/docs")
        await expect(page.get_by_role("heading", name=re.compile("weibao"))).to_be_visible()
        await expect(page.get_by_text("/tickets/{ticket_id}/steps/triage").first).to_be_visible()
        await page.goto(f"{console.base}/redoc")
        await expect(page.get_by_role("heading", name="weibao (0.1.0)")).to_be_visible()
        await expect(page.get_by_role("menuitem", name="steps")).to_be_visible()
        await sign_in(page, console, "M001")
        for path in (f"/console/tickets/{ticket}", f"/console/tickets/{ticket}/record", "/console/reports",
                     "/console/cases/complaint", "/console/cases/inspection"):
            await page.goto(console.base + path)
            await page.wait_for_load_state("networkidle")
    assert any(u.endswith("/console/static/vendor/htmx/htmx.min.js") for u in people.requests.urls)
    assert any(u.endswith("swagger-ui-bundle.js") for u in people.requests.urls)
