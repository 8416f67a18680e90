"""The per-ticket hash chain: each event carries the hash of its predecessor and its
own, so a later dispute can prove the record unaltered."""
from __future__ import annotations

import hashlib
import json
from datetime import datetime, timezone
from typing import Any

GENESIS = "0" * 64


def _default(v: Any) -> str:
    if isinstance(v, datetime):
        return v.astimezone(timezone.utc).isoformat()
    return str(v)


def event_hash(*, ticket: str, version: int, type: str, at: datetime, actor: str,
               command_id: str, data: dict, prev_hash: str, recorded_at: datetime) -> str:
    body = {
        "ticket": ticket, "version": version, "type": type, "at": at, "actor": actor,
        "command_id": command_id, "data": data, "prev": prev_hash, "recorded_at": recorded_at,
    }
    canon = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=_default)
    return hashlib.sha256(canon.encode()).hexdigest()


def verify(events: list[dict]) -> int | None:
    """First version whose stored hash or link does not match, or None when intact.
    `events` are dicts with the keys of `event_hash` plus `hash`, in version order."""
    prev = GENESIS
    for e in events:
        fields = {k: e[k] for k in ("ticket", "version", "type", "at", "actor", "command_id", "data", "recorded_at")}
        if e["prev_hash"] != prev or event_hash(**fields, prev_hash=e["prev_hash"]) != e["hash"]:
            return e["version"]
        prev = e["hash"]
    return None
