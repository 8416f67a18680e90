"""Issue 13, bad input as users expect it: control characters, strict types, every
validation error at once, unknown parameters, instants without a zone, a body that is
not JSON or too large. Each is a 4xx naming the field and the reason, before anything
is started or recorded."""
from __future__ import annotations

import asyncio
import json

import httpx
import pytest
import requests

from activities import settings
from api.app import create_app
from api.limits import MAX_URL
from tests.api_fixtures import Api, api, served  # noqa: F401 - fixture
from tests.case_helpers import COMPLAINT, PLAN, RETURN
from tests.conftest import REPORT

TICKET = {**REPORT, "severity": "critical", "zone": "A"}


def invalid(r, field: str) -> dict:
    assert r.status_code == 422, r.text
    body = r.json()
    assert body["error"] == "invalid" and body["field"] == field, body
    assert field in body["detail"], body
    return body


# --- control characters ---------------------------------------------------------------------

@pytest.mark.parametrize("who,path,body,field", [
    ("C001", "/tickets", {**TICKET, "customer": "Nul\u0000Hosp"}, "customer"),
    ("C001", "/tickets", {**TICKET, "customer": "two\nlines"}, "customer"),
    ("C001", "/tickets", {**TICKET, "symptoms": "rings the \u0007bell"}, "symptoms"),
    ("C001", "/tickets", {**TICKET, "confidential_notes": "pw \u001b[31m"}, "confidential_notes"),
    ("S001", "/tickets/t1/steps/dispatch", {"engineer": "E0\u000001"}, "engineer"),
    ("S001", "/tickets/t1/steps/resolve", {"cause": "c", "resolution": "r", "parts_used": ["ok", "x\u0000"]},
     "parts_used.1"),
    ("C001", "/complaints", {**COMPLAINT, "description": "rude\u0000"}, "description"),
    ("C001", "/returns", {**RETURN, "delivery_date": "2026-01-01", "customer": "A\u0085B"}, "customer"),
    ("M001", "/contracts/K-1/plan", {**PLAN, "delivery_date": "2026-01-01", "site": "x\u007fy"}, "site"),
    ("E001", "/inspections/i1/steps/call", {"spoke_with": "Dr Li", "notes": "fine\u0000"}, "notes"),
])
async def test_a_control_character_in_a_body_field_is_a_422_naming_the_field(api: Api, who, path, body, field):
    body = invalid(await api.post(path, who, body), field)
    assert "control character" in body["detail"]


async def test_a_lone_surrogate_is_refused_like_a_control_character(api: Api):
    raw = json.dumps({**TICKET, "customer": "\ud800"}).encode()  # ASCII JSON: the escape travels as it is
    r = await api.http.post("/tickets", content=raw, headers={**api.auth("C001"), "content-type": "application/json"})
    invalid(r, "customer")


async def test_multi_line_text_keeps_its_newlines_and_tabs(api: Api):
    tid = await api.report(symptoms="HIS down\r\n\tall wards\nsince 08:00")
    r = await api.get(f"/tickets/{tid}", "M001")
    assert r.status_code == 200 and r.json()["symptoms"] == "HIS down\r\n\tall wards\nsince 08:00"


# --- strict types -----------------------------------------------------------------------------

@pytest.mark.parametrize("who,path,body,field", [
    ("E001", "/tickets/t1/steps/arrive", {"staff_id_shown": "yes"}, "staff_id_shown"),
    ("E001", "/tickets/t1/steps/arrive", {"staff_id_shown": 1}, "staff_id_shown"),
    ("C001", "/tickets/t1/steps/sign-off", {"signature": "Dr Li", "satisfaction": "5"}, "satisfaction"),
    ("S001", "/tickets/t1/steps/close", {"time_rating": 4.0, "quality_rating": 4}, "time_rating"),
    ("S001", "/complaints/c1/steps/close", {"satisfaction": "5"}, "satisfaction"),
    ("M002", "/returns/r1/steps/approve", {"approved": "true"}, "approved"),
    ("C001", "/complaints", {**COMPLAINT, "emergency": "no"}, "emergency"),
])
async def test_a_string_or_number_is_no_boolean_and_a_string_is_no_rating(api: Api, who, path, body, field):
    invalid(await api.post(path, who, body), field)


async def test_dates_still_parse_from_iso_strings(api: Api, env):
    r = await api.post("/returns", "C001", {**RETURN, "delivery_date": "2020-01-01", "defect_kind": "user_damage"})
    assert r.status_code == 201, r.text


# --- every error at once ------------------------------------------------------------------------

async def test_every_validation_error_is_in_one_422_each_naming_its_field(api: Api):
    r = await api.post("/tickets", "C001", {"site": "", "contact_phone": "call me", "product_model": "x",
                                            "symptoms": "s", "channel": "fax", "severity": "apocalyptic"})
    body = invalid(r, "customer")
    fields = [e["field"] for e in body["errors"]]
    assert fields[0] == body["field"]
    assert set(fields) == {"customer", "site", "contact_phone", "channel", "severity"}
    assert all(e["field"] in e["detail"] for e in body["errors"])
    body = invalid(await api.post("/tickets/t1/steps/sign-off", "C001", {"satisfaction": 9, "opinion": "\u0000"}),
                   "signature")
    assert [e["field"] for e in body["errors"]] == ["signature", "satisfaction", "opinion"]


# --- query parameters ---------------------------------------------------------------------------

@pytest.mark.parametrize("path,params,field", [
    ("/tickets", {"custmer": "Kunming"}, "custmer"),  # a misspelt filter must not list every ticket
    ("/tickets/t1/history", {"format": "csv"}, "format"),
    ("/tickets/t1", {"asof": "2026-01-01T00:00:00Z"}, "asof"),
    ("/complaints/c1", {"verbose": "1"}, "verbose"),
    ("/reports/sla", {"month": "2026-03", "mnth": "x"}, "mnth"),
])
async def test_an_unknown_query_parameter_is_a_422_naming_it(api: Api, path, params, field):
    body = invalid(await api.get(path, "M001", **params), field)
    assert "unknown" in body["detail"]


async def test_a_known_query_parameter_still_works(api: Api):
    tid = await api.report()
    r = await api.get("/tickets", "M001", status="reported", limit=5)
    assert r.status_code == 200 and tid in [t["ticket_id"] for t in r.json()["items"]]


@pytest.mark.parametrize("path,params,field", [
    ("/tickets/t1", {"as_of": "2026-03-01T08:00:00"}, "as_of"),
    ("/reports/escalations", {"from": "2026-03-01T08:00:00"}, "from"),
    ("/reports/escalations", {"from": "2026-03-01", "to": "2026-03-02T08:00"}, "to"),
])
async def test_an_instant_without_a_zone_is_a_422_asking_for_one(api: Api, path, params, field):
    body = invalid(await api.get(path, "M001", **params), field)
    assert "+08:00" in body["detail"]


# --- the body itself -----------------------------------------------------------------------------

@pytest.mark.parametrize("content_type", [None, "text/plain", "application/x-www-form-urlencoded"])
async def test_a_json_body_without_a_json_content_type_is_a_415_that_says_so(api: Api, content_type):
    headers = api.auth("C001") | ({"content-type": content_type} if content_type else {})
    r = await api.http.post("/tickets", content=json.dumps(TICKET).encode(), headers=headers)
    assert r.status_code == 415, r.text
    assert r.json()["error"] == "unsupported_media_type" and "application/json" in r.json()["detail"]


async def test_a_body_over_the_default_limit_is_a_413(api: Api):
    big = {**TICKET, "symptoms": "x" * (1 << 20)}
    r = await api.post("/tickets", "C001", big)
    assert r.status_code == 413, r.text
    assert r.json()["error"] == "too_large" and r.json()["field"] == "body"
    assert "1048576" in r.json()["detail"]


async def test_a_streamed_body_over_the_configured_limit_is_a_413_before_it_is_read_whole(api: Api, monkeypatch):
    monkeypatch.setenv("WEIBAO_API_MAX_BODY", "4096")
    app = create_app(api.services)
    sent = []

    async def chunks():
        yield b'{"customer": "'
        for _ in range(100):
            sent.append(1)
            yield b"x" * 1024

    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://api") as http:
        r = await http.post("/tickets", content=chunks(), headers={**api.auth("C001"),
                                                                   "content-type": "application/json"})
        assert r.status_code == 413, r.text
        assert len(sent) < 10
        declared = await http.post("/tickets", content=b"{" + b" " * 5000 + b"}",
                                   headers={**api.auth("C001"), "content-type": "application/json"})
        assert declared.status_code == 413 and declared.json()["field"] == "body"
        r = await http.post("/tickets", json=TICKET, headers=api.auth("C001"))
        assert r.status_code == 201, r.text


async def test_a_url_over_the_limit_is_a_414_in_the_error_shape_through_the_real_server(api: Api):
    """Through uvicorn as `python -m api` configures it, with a client that keeps its
    connection (requests): a 100 KB query, which the HTTP parser's own 16 KiB limit
    answered on a kept connection with a plain-text 400, closing it under a client still
    sending (a reset), is the API's 414 every time; one under the limit reaches the API's
    validation. (httpx refuses a query over 64 KiB itself.)"""
    def session(base: str) -> list:
        answers = []
        with requests.Session() as http:
            for _ in range(6):
                kept = http.get(f"{base}/tickets", headers=api.auth("S001"), timeout=30)
                assert kept.status_code == 200, kept.text
                r = http.get(f"{base}/tickets", params={"customer": "x" * 100_000}, headers=api.auth("S001"),
                             timeout=30)
                answers.append((r.status_code, r.headers.get("content-type"), r.text))
            under = http.get(f"{base}/tickets", params={"customer": "x" * (MAX_URL - 100)}, headers=api.auth("S001"),
                             timeout=30)
        return answers + [(under.status_code, under.headers.get("content-type"), under.text)]

    async with served(create_app(api.services)) as base:
        *answers, under = await asyncio.to_thread(session, base)
    for status, content_type, text in answers:
        assert status == 414 and content_type == "application/json", text
        assert json.loads(text)["error"] == "uri_too_long" and json.loads(text)["field"] == "url"
        assert str(MAX_URL) in json.loads(text)["detail"]
    # just under the limit: the API's own validation answers (a customer is at most 200 characters)
    assert under[0] == 422 and json.loads(under[2])["field"] == "customer", under


def test_the_body_limit_is_a_whole_number_of_bytes(monkeypatch):
    monkeypatch.setenv("WEIBAO_API_MAX_BODY", "2097152")
    assert settings.load().api_max_body == 2097152
    monkeypatch.delenv("WEIBAO_API_MAX_BODY")
    assert settings.load().api_max_body == 1 << 20
    for bad in ("1MB", "0", "-5"):
        monkeypatch.setenv("WEIBAO_API_MAX_BODY", bad)
        with pytest.raises(settings.ConfigError, match="WEIBAO_API_MAX_BODY"):
            settings.load()
