"""Health for operators and orchestrators (compose, systemd, Kubernetes probes):
`GET /healthz` — the process is alive; `GET /readyz` — Temporal and the event store
answer, each named with what it said (503 when one does not). No authentication: they
say nothing about any case."""
from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any, Awaitable, Callable

from fastapi import APIRouter
from fastapi.responses import JSONResponse
from temporalio.api.workflowservice.v1 import GetSystemInfoRequest

from api.deps import Svc

router = APIRouter(tags=["health"])
CHECK = timedelta(seconds=3)


@router.get("/healthz")
async def healthz() -> dict[str, str]:
    return {"status": "alive"}


@router.get("/readyz")
async def readyz(svc: Svc) -> Any:
    async def temporal() -> None:
        await svc.client.workflow_service.get_system_info(GetSystemInfoRequest(), timeout=CHECK)

    async def event_store() -> None:
        await svc.io(svc.store.recorder.max_notification_id)

    checks: dict[str, Callable[[], Awaitable[None]]] = {"temporal": temporal, "event_store": event_store}
    answers: dict[str, str] = {}
    for name, check in checks.items():
        try:
            await asyncio.wait_for(check(), CHECK.total_seconds())
            answers[name] = "ok"
        except Exception as e:  # noqa: BLE001 - whatever it is, the answer names the part and the reason
            answers[name] = f"unavailable: {type(e).__name__}: {str(e)[:200]}"
    ready = all(v == "ok" for v in answers.values())
    return JSONResponse({"status": "ready" if ready else "not ready", **answers}, status_code=200 if ready else 503)
