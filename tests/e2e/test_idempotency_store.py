"""The idempotency store keeps no unmasked personal data, a repeat still answers what the
first answered, and keys are purged after WEIBAO_IDEMPOTENCY_TTL (api/idempotency.py)."""
from __future__ import annotations

import uuid
from datetime import datetime, timedelta, timezone

import pytest

from activities import settings
from activities.settings import ConfigError
from api import idempotency
from api.db import Database
from api.idempotency import IdempotencyKeys, fingerprint, scope_of
from tests.api_fixtures import Api, api, pg_api  # noqa: F401 - fixtures
from tests.case_helpers import COMPLAINT
from tests.conftest import REPORT

PHONE = "0871-6300000"
SECRET = "iDRAC root password: hunter2"


def key(name: str) -> str:
    """A key of its own: the ids derived from a key live on the session's Temporal server."""
    return f"{name}-{uuid.uuid4().hex[:8]}"


def kept(api: Api) -> str:
    """Everything the idempotency table holds, as one text."""
    rows = api.services.keys.db.fetchall("SELECT scope, fingerprint, status, response, created_at, restore "
                                         "FROM api_idempotency")
    assert rows
    return repr(rows)


async def test_a_report_is_kept_without_the_contact_phone_or_confidential_notes_and_repeated_in_full(api: Api):
    await _report_kept_masked(api)


async def test_in_postgresql_too(pg_api: Api):
    await _report_kept_masked(pg_api)


async def _report_kept_masked(api: Api) -> None:
    body = {**REPORT, "severity": "critical", "zone": "A", "confidential_notes": SECRET}
    k = key("report")
    first = await api.post("/tickets", "C001", body, key=k)
    assert first.status_code == 201, first.text
    assert first.json()["state"]["contact_phone"] == PHONE and first.json()["state"]["confidential_notes"] == SECRET
    assert PHONE not in kept(api) and "hunter2" not in kept(api)
    tid = first.json()["ticket_id"]
    await api.ok(tid, "triage", "S001", severity="major", zone="A")  # the ticket moves on
    again = await api.post("/tickets", "C001", body, key=k)
    assert again.status_code == 201 and again.json() == first.json()  # what the first answered, in full


async def test_a_step_is_kept_masked_and_its_repeat_answers_the_state_the_first_answered(api: Api):
    tid = await api.report()
    k = key("triage")
    first = await api.step(tid, "triage", "S001", key=k, severity="critical", zone="A")
    assert first.status_code == 200 and first.json()["contact_phone"] == PHONE
    await api.ok(tid, "dispatch", "S001", engineer="E001")
    assert PHONE not in kept(api)
    again = await api.step(tid, "triage", "S001", key=k, severity="critical", zone="A")
    assert again.status_code == 200 and again.json() == first.json()
    assert again.json()["status"] == "triaged" and again.json()["version"] == 2  # not the state now


async def test_a_complaints_contact_is_kept_masked_and_repeated_in_full(api: Api):
    body = {**COMPLAINT, "about_person": "E002"}
    k = key("complaint")
    first = await api.post("/complaints", "C001", body, key=k)
    assert first.status_code == 201, first.text
    assert first.json()["state"]["contact"] == PHONE and PHONE not in kept(api)
    again = await api.post("/complaints", "C001", body, key=k)
    assert again.json() == first.json()


async def test_the_same_key_with_another_body_is_still_refused(api: Api):
    body = {**REPORT, "severity": "critical", "zone": "A"}
    k = key("k")
    assert (await api.post("/tickets", "C001", body, key=k)).status_code == 201
    r = await api.post("/tickets", "C001", {**body, "contact_phone": "0871-1111111"}, key=k)
    assert r.status_code == 409 and r.json()["error"] == "idempotency_key_reused"


async def test_keys_older_than_the_ttl_are_purged_as_the_api_claims_keys(api: Api, monkeypatch):
    keys = api.services.keys
    body = {**REPORT, "severity": "critical", "zone": "A"}
    old, new = key("old"), key("new")
    first = await api.post("/tickets", "C001", body, key=old)
    scope = scope_of("C001", old)
    long_ago = (datetime.now(timezone.utc) - keys.ttl - timedelta(minutes=1)).isoformat(timespec="microseconds")
    keys.db.execute("UPDATE api_idempotency SET created_at = ? WHERE scope = ?", (long_ago, scope))
    monkeypatch.setattr(idempotency, "PURGE_EVERY", 0.0)  # instead of waiting a minute for the next purge
    assert (await api.post("/tickets", "C001", body, key=new)).status_code == 201
    assert keys.db.fetchone("SELECT COUNT(*) FROM api_idempotency WHERE scope = ?", (scope,))[0] == 0
    assert keys.db.fetchone("SELECT COUNT(*) FROM api_idempotency")[0] == 1
    # the key is forgotten: sent again, it is a new request (its derived ticket id answers it)
    again = await api.post("/tickets", "C001", body, key=old)
    assert again.status_code == 201 and again.json()["ticket_id"] == first.json()["ticket_id"]


def test_a_purge_deletes_exactly_what_is_older_than_the_ttl(use_store):
    use_store("sqlite")
    db = Database()
    try:
        keys = IdempotencyKeys(db, ttl=timedelta(hours=2))
        now = datetime.now(timezone.utc)
        for name, age in (("fresh", timedelta(hours=1)), ("stale", timedelta(hours=3))):
            db.execute("INSERT INTO api_idempotency (scope, fingerprint, created_at) VALUES (?, ?, ?)",
                       (name, "fp", (now - age).isoformat(timespec="microseconds")))
        assert keys.purge(now) == 1
        assert db.fetchall("SELECT scope FROM api_idempotency") == [("fresh",)]
    finally:
        db.close()


def test_the_ttl_is_a_setting_of_seven_days_by_default(monkeypatch, use_store):
    use_store("sqlite")
    assert settings.load().idempotency_ttl == "7d"
    monkeypatch.setenv("WEIBAO_IDEMPOTENCY_TTL", "36h")
    db = Database()
    try:
        assert IdempotencyKeys(db).ttl == timedelta(hours=36)
    finally:
        db.close()
    monkeypatch.setenv("WEIBAO_IDEMPOTENCY_TTL", "soon")
    with pytest.raises(ConfigError) as e:
        settings.load()
    assert str(e.value).startswith("WEIBAO_IDEMPOTENCY_TTL: ")


@pytest.mark.parametrize("kind", ["sqlite", "postgres"])
def test_a_key_kept_before_answers_were_masked_still_answers_its_repeat(use_store, kind):
    use_store(kind)
    db = Database()
    try:
        db.execute("DROP TABLE IF EXISTS api_idempotency")
        db.execute("CREATE TABLE api_idempotency (scope TEXT PRIMARY KEY, fingerprint TEXT NOT NULL, "
                   "status INTEGER, response TEXT, created_at TEXT NOT NULL)")  # the table as it was
        fp = fingerprint("POST", "/tickets/t1/steps/arrive", {"staff_id_shown": True})
        db.execute("INSERT INTO api_idempotency VALUES (?, ?, ?, ?, ?)",  # its fingerprint: the digest alone
                   (scope_of("E001", "k"), fp.rpartition(" ")[2], 200, '{"status": "on_site"}',
                    datetime.now(timezone.utc).isoformat()))
        claim = IdempotencyKeys(db).claim("E001", "k", fp)
        assert (claim.status, claim.response) == (200, {"status": "on_site"})
    finally:
        db.close()
