"""`weibao token` and `python -m api` as an operator runs them."""
from __future__ import annotations

import asyncio
import os
import subprocess
import sys

import httpx

from activities import config
from api import cli
from tests.api_fixtures import Api, api, free_port  # noqa: F401 - fixture
from tests.conftest import REPORT


def token_from_cli(capsys, *args: str) -> tuple[int, str, str]:
    code = cli.main(["token", *args])
    out = capsys.readouterr()
    return code, out.out.strip(), out.err


async def test_weibao_token_prints_a_token_once_stores_its_hash_and_revokes(api: Api, capsys):
    code, token, err = token_from_cli(capsys, "M001")
    assert code == 0 and token.startswith("wb_") and "only this once" in err
    assert api.services.tokens.db.fetchone("SELECT COUNT(*) FROM api_tokens WHERE token_hash = ?", (token,))[0] == 0
    ok = await api.http.get("/tickets", headers={"Authorization": f"Bearer {token}"})
    assert ok.status_code == 200
    code, _, err = token_from_cli(capsys, "--revoke", "M001")
    assert code == 0 and "revoked 1" in err
    gone = await api.http.get("/tickets", headers={"Authorization": f"Bearer {token}"})
    assert gone.status_code == 401
    code, token, err = token_from_cli(capsys, "X999")
    assert code == 2 and token == "" and "not on the staff" in err


async def test_python_m_api_serves_on_the_configured_port_with_the_pydantic_converter(env, api: Api):
    port = free_port()
    target = env.client.service_client.config.target_host
    proc_env = {**os.environ, "TEMPORAL_ADDRESS": target, "WEIBAO_TASK_QUEUE": api.task_queue,
                "WEIBAO_API_HOST": "127.0.0.1", "WEIBAO_API_PORT": str(port), "WEIBAO_API_LOG_LEVEL": "warning"}
    proc = subprocess.Popen([sys.executable, "-m", "api"], cwd=str(config.ROOT), env=proc_env)
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=30) as http:
            for _ in range(300):
                try:
                    schema = (await http.get("/openapi.json")).json()
                    break
                except httpx.TransportError:
                    assert proc.poll() is None, "python -m api exited"
                    await asyncio.sleep(0.1)
            assert {"/tickets", "/tickets/{ticket_id}", "/tickets/{ticket_id}/history",
                    "/tickets/{ticket_id}/verify", "/tickets/{ticket_id}/steps/arrive"} <= set(schema["paths"])
            assert (await http.get("/docs")).status_code == 200
            assert (await http.get("/tickets")).status_code == 401
            clerk = {"Authorization": f"Bearer {api.token('C001')}"}
            r = await http.post("/tickets", json={**REPORT, "severity": "major", "zone": "B"}, headers=clerk)
            assert r.status_code == 201, r.text
            tid = r.json()["ticket_id"]
            assert r.json()["state"]["deadlines"]["on_site"]
            got = await http.get(f"/tickets/{tid}", headers={"Authorization": f"Bearer {api.token('M001')}"})
            assert got.json()["status"] == "reported" and got.json()["received_by"] == "C001"
    finally:
        proc.terminate()
        proc.wait(timeout=20)
