"""The per-case hash chain: each event carries the hash of its predecessor and its
own, so a later dispute can prove the record unaltered. The chain alone cannot tell an
event appended at the end with a correctly computed hash, nor events deleted from the
end: the case's workflow keeps its own record of what it recorded (api.evidence compares)."""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
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


@dataclass(frozen=True)
class ChainCheck:
    """What the chain alone says about a case's stored events: the versions whose own
    hash or link to their predecessor does not match, and the versions absent from the
    sequence 1..last (deleted from the middle or the start; deletions from the end leave no
    gap, only the workflow's own record shows them: api.evidence)."""

    mismatched: tuple[int, ...] = ()
    missing: tuple[int, ...] = ()

    @property
    def intact(self) -> bool:
        return not self.mismatched and not self.missing

    @property
    def first_bad(self) -> int | None:
        return min((*self.mismatched, *self.missing), default=None)


def examine(events: list[dict]) -> ChainCheck:
    """Check every event's hash and link. A gap in the versions is named as missing; the
    event after it has no predecessor to link to, so only its own hash is checked there."""
    prev, expected = GENESIS, 1
    mismatched: list[int] = []
    missing: list[int] = []
    for e in events:
        gap = e["version"] > expected
        missing.extend(range(expected, e["version"]))
        fields = {k: e[k] for k in ("ticket", "version", "type", "at", "actor", "command_id", "data", "recorded_at")}
        if (not gap and e["prev_hash"] != prev) or event_hash(**fields, prev_hash=e["prev_hash"]) != e["hash"]:
            mismatched.append(e["version"])
        prev, expected = e["hash"], e["version"] + 1
    return ChainCheck(tuple(mismatched), tuple(missing))


def verify(events: list[dict]) -> int | None:
    """First version whose stored hash or link does not match, or that is missing from the
    sequence, or None when intact. `events` are dicts with the keys of `event_hash` plus
    `hash`, in version order."""
    return examine(events).first_bad
