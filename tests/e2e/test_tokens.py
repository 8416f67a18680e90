"""Bearer tokens expire, record their last use, are listed and revoked one by one
(`weibao token`), and tokens of a table made before all that keep working."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from api import auth, cli
from api.auth import Tokens, token_hash, token_id
from api.db import Database
from tests.api_fixtures import Api, api  # noqa: F401 - fixture


def weibao_token(capsys, *args: str) -> tuple[int, str, str]:
    code = cli.main(["token", *args])
    out = capsys.readouterr()
    return code, out.out, out.err


def listed(capsys, *args: str) -> dict[str, dict[str, str]]:
    """`weibao token --list` as {id: {column: value}}."""
    code, out, err = weibao_token(capsys, "--list", *args)
    assert code == 0, err
    header, *rows = out.splitlines()
    columns = ["id", "staff", "created", "expires", "last used", "revoked", "status"]
    assert header.split() == ["id", "staff", "created", "expires", "last", "used", "revoked", "status"]
    starts = [header.index(c) for c in columns] + [None]
    return {r[:starts[1]].strip(): {c: r[starts[i]:starts[i + 1]].strip() for i, c in enumerate(columns)}
            for r in rows}


async def _reads(api: Api, token: str) -> int:
    return (await api.http.get("/tickets", headers={"Authorization": f"Bearer {token}"})).status_code


async def test_a_token_expires_after_30_days_unless_told_otherwise(api: Api, capsys):
    code, token, err = weibao_token(capsys, "E001")
    token = token.strip()
    assert code == 0 and f"token {token_id(token)} for E001" in err and "valid 30 days" in err
    row = listed(capsys)[token_id(token)]
    created = datetime.strptime(row["created"], "%Y-%m-%d %H:%M UTC")
    expires = datetime.strptime(row["expires"], "%Y-%m-%d %H:%M UTC")
    assert expires - created == timedelta(days=30) and row["status"] == "live"
    code, short, err = weibao_token(capsys, "E001", "--days", "2")
    row = listed(capsys)[token_id(short.strip())]
    assert code == 0 and "valid 2 days" in err and datetime.strptime(row["expires"], "%Y-%m-%d %H:%M UTC") - \
        datetime.strptime(row["created"], "%Y-%m-%d %H:%M UTC") == timedelta(days=2)
    code, _, err = weibao_token(capsys, "E001", "--days", "0")
    assert code == 2 and "--days must be 1 or more" in err


async def test_an_expired_token_is_refused_saying_so(api: Api):
    token = api.services.tokens.issue("M001", days=1)
    assert await _reads(api, token) == 200
    past = (datetime.now(timezone.utc) - timedelta(seconds=1)).isoformat(timespec="microseconds")
    api.services.tokens.db.execute("UPDATE api_tokens SET expires_at = ? WHERE token_hash = ?",
                                   (past, token_hash(token)))
    r = await api.http.get("/tickets", headers={"Authorization": f"Bearer {token}"})
    assert r.status_code == 401 and "expired" in r.json()["detail"] and token_id(token) in r.json()["detail"]
    assert r.json()["error"] == "unauthorized"


async def test_a_tokens_last_use_is_recorded_and_listed(api: Api, capsys, monkeypatch):
    token = api.services.tokens.issue("S001")
    assert listed(capsys)[token_id(token)]["last used"] == "-"
    before = datetime.now(timezone.utc).replace(second=0, microsecond=0)
    assert await _reads(api, token) == 200
    used = listed(capsys)[token_id(token)]["last used"]
    assert datetime.strptime(used, "%Y-%m-%d %H:%M UTC").replace(tzinfo=timezone.utc) >= before
    # written at most once a minute per token: a busy token costs no write per request
    stamp = api.services.tokens.db.fetchone("SELECT last_used_at FROM api_tokens WHERE token_hash = ?",
                                            (token_hash(token),))[0]
    assert await _reads(api, token) == 200
    assert api.services.tokens.db.fetchone("SELECT last_used_at FROM api_tokens WHERE token_hash = ?",
                                           (token_hash(token),))[0] == stamp
    monkeypatch.setattr(auth, "TOUCH_EVERY", 0.0)
    assert await _reads(api, token) == 200
    assert api.services.tokens.db.fetchone("SELECT last_used_at FROM api_tokens WHERE token_hash = ?",
                                           (token_hash(token),))[0] > stamp


async def test_one_token_is_revoked_by_its_id_and_the_others_keep_working(api: Api, capsys):
    phone, laptop = api.services.tokens.issue("E002"), api.services.tokens.issue("E002")
    code, _, err = weibao_token(capsys, "--revoke-token", token_id(phone))
    assert code == 0 and f"token {token_id(phone)} of E002 revoked" in err
    assert await _reads(api, phone) == 401 and await _reads(api, laptop) == 200
    rows = listed(capsys, "E002")
    assert set(rows) == {token_id(phone), token_id(laptop)}
    assert rows[token_id(phone)]["status"] == "revoked" and rows[token_id(phone)]["revoked"] != "-"
    assert rows[token_id(laptop)]["status"] == "live" and rows[token_id(laptop)]["revoked"] == "-"
    code, _, err = weibao_token(capsys, "--revoke", "E002")  # every token of a person, as before
    assert code == 0 and "revoked 1 token(s) of E002" in err and await _reads(api, laptop) == 401


@pytest.mark.parametrize("bad, why", [("zz", "is not a token id"), ("0123456789ab", "no token has the id")])
async def test_an_unknown_token_id_is_refused(api: Api, capsys, bad, why):
    code, _, err = weibao_token(capsys, "--revoke-token", bad)
    assert code == 2 and why in err


async def test_token_arguments_that_do_not_go_together_are_refused(api: Api, capsys):
    for args, why in ((["--list", "--revoke", "E001"], "give one of"), (["--revoke-token", "abcdef12", "E001"],
                      "takes no STAFF_ID"), ([], "give a STAFF_ID"), (["--list", "--days", "3"], "--days is for"),
                      (["X999"], "not on the staff")):
        code, _, err = weibao_token(capsys, *args)
        assert code == 2 and why in err, (args, err)


@pytest.mark.parametrize("kind", ["sqlite", "postgres"])
def test_tokens_of_a_table_made_before_expiry_keep_working_and_now_expire(use_store, kind):
    use_store(kind)
    db = Database()
    try:
        db.execute("DROP TABLE IF EXISTS api_tokens")
        db.execute("CREATE TABLE api_tokens (token_hash TEXT PRIMARY KEY, staff_id TEXT NOT NULL, "
                   "issued_at TEXT NOT NULL, revoked_at TEXT)")  # the table as it was
        old = "wb_issued-before-tokens-expired"
        db.execute("INSERT INTO api_tokens (token_hash, staff_id, issued_at) VALUES (?, ?, ?)",
                   (token_hash(old), "M001", "2025-01-01T00:00:00+00:00"))
        tokens = Tokens(db)
        assert tokens.staff_of(old) == "M001"
        (info,) = tokens.list()
        assert info.id == token_id(old) and info.created == datetime(2025, 1, 1, tzinfo=timezone.utc)
        assert timedelta(days=29) < info.expires - datetime.now(timezone.utc) <= timedelta(days=30)
        assert info.last_used is not None and info.revoked is None
        Tokens(db)  # a second start changes nothing
        assert tokens.list()[0].expires == info.expires
        assert tokens.revoke_token(old).revoked is not None and tokens.staff_of(old) is None
    finally:
        db.close()
