"""Tamper evidence for every case kind: the event store's hash chain (domain.chain),
checked against the case workflow's own record of what it recorded.

The chain alone proves each stored event unaltered and linked to its predecessor, and
names a version deleted from the middle as missing. It cannot tell an event forged and
appended at the end with a correctly computed hash, nor events deleted from the end, nor
a chain rewritten from some version on. The workflow can: `record_case` answers each
append with the event's version and hash, the workflow keeps them (the `recorded` query
of workflows.casework), and the comparison names
- a version in the store that the workflow never recorded (`unrecorded_versions`),
- a version it recorded that the store lacks (`missing_versions`, with the chain's gaps),
- a version whose stored hash is not the one it recorded (`differing_versions`).

What the comparison cannot cover, the answer says:
- `cross_check` "versions": histories recorded before `record_case` answered with the
  hash (a bare version, or no hash) compare versions only for those events;
- `cross_check` "not possible": the workflow cannot be asked (no worker answers in time,
  or Temporal no longer keeps it after its retention period); the chain alone was checked;
- versions up to the record's `since` were recorded by earlier runs (a plan continues as
  new every month) and are checked by the chain only;
- warnings' and escalations' delivery outcomes (NotificationSent, NotificationGivenUp,
  EscalationAcknowledged) are recorded by the Delivery workflow, not the case's: such an
  event counts when it belongs to a notification the case's workflow recorded
  (`delivery_versions`), and is checked by the chain only.

A closed workflow still answers the query while a worker runs (it replays its history)."""
from __future__ import annotations

import asyncio
import logging
from datetime import timedelta
from typing import Any, Awaitable, Callable, Literal

from pydantic import BaseModel, Field
from temporalio.client import Client, WorkflowQueryFailedError
from temporalio.service import RPCError, RPCStatusCode

from domain import chain
from workflows.delivery import delivery_workflow_id
from workflows.casework import CaseRecord
from workflows.complaint import complaint_workflow_id
from workflows.inspection import inspection_workflow_id
from workflows.plan import plan_workflow_id
from workflows.returns import return_workflow_id
from workflows.ticket import ticket_workflow_id

log = logging.getLogger("weibao.api")

WORKFLOW_ID: dict[str, Callable[[str], str]] = {
    "ticket": ticket_workflow_id, "complaint": complaint_workflow_id, "return": return_workflow_id,
    "inspection": inspection_workflow_id, "plan": plan_workflow_id,
}
DELIVERY_EVENTS = frozenset({"NotificationSent", "NotificationGivenUp", "EscalationAcknowledged"})
QUERY_TIMEOUT = timedelta(seconds=3)  # how long a history or verify waits for the workflow's answer

Events = list[dict[str, Any]]
CrossCheck = Literal["hashes", "versions", "not possible"]


class Evidence(BaseModel):
    intact: bool = Field(description="the chain matches and, where the workflow could be asked, so does its record")
    versions: int = Field(description="events in the store")
    first_bad_version: int | None = Field(description="the first version found wrong in any way below")
    mismatched_versions: list[int] = Field(description="stored hash or link to the predecessor does not match")
    missing_versions: list[int] = Field(description="absent from the store: a gap in the chain, or recorded by "
                                                    "the workflow and not stored")
    unrecorded_versions: list[int] = Field(description="in the store, but the case's workflow never recorded them")
    differing_versions: list[int] = Field(description="the stored hash is not the one the workflow recorded")
    delivery_versions: list[int] = Field(description="recorded by the delivery of a notification the workflow "
                                                     "recorded; checked by the chain only")
    cross_check: CrossCheck = Field(description="what was compared with the workflow's own record: hashes, "
                                                "versions only (histories recorded before hashes were kept), "
                                                "or nothing (the workflow could not be asked)")
    detail: str


class TicketVerification(Evidence):
    ticket_id: str


def _ranges(versions: list[int]) -> str:
    out: list[str] = []
    for v in sorted(versions):
        if out and out[-1].split("..")[-1] == str(v - 1):
            out[-1] = f"{out[-1].split('..')[0]}..{v}"
        else:
            out.append(str(v))
    return ", ".join(out)


def _versions(versions: list[int] | set[int]) -> str:
    """'version 3' or 'versions 3..5, 7'."""
    return f"version {_ranges(list(versions))}" if len(versions) == 1 else f"versions {_ranges(list(versions))}"


def _are(versions: list[int] | set[int], one: str, many: str) -> str:
    return one if len(versions) == 1 else many


def judge(events: Events, damaged: int | None, record: CaseRecord | None, why_not: str | None = None,
          present_later: set[int] | None = None, delivered: frozenset[str] = frozenset()) -> Evidence:
    """The evidence from the stored `events` (and the version of the first one that could
    not be read, if any), against the workflow's `record` (None: it could not be asked,
    `why_not` says why). `present_later`: the versions of a second read of the store, made
    after the workflow answered, so an event recorded meanwhile is not called missing.
    `delivered`: the notifications whose Delivery workflow's own record is in `record`:
    their outcome events are checked against it like any other."""
    found = chain.examine(events)
    mismatched = set(found.mismatched) | ({damaged} if damaged is not None else set())
    missing = set(found.missing)
    stored = {e["version"]: e for e in events}
    unread_from = damaged  # nothing at or after an unreadable event was read
    unrecorded: list[int] = []
    differing: list[int] = []
    by_delivery: list[int] = []
    notes: list[str] = []
    if record is None:
        mode: CrossCheck = "not possible"
        notes.append(f"the cross-check with the workflow's own record was not possible ({why_not}); "
                     "only the hash chain was checked")
    else:
        recorded = {f.version: f.hash for f in record.facts}
        present = set(stored) | (present_later or set())
        missing |= {v for v in recorded if v not in present and (unread_from is None or v < unread_from)}
        vouched = {stored[v]["command_id"] for v, h in recorded.items()
                   if v in stored and h in (None, stored[v]["hash"])}
        for v, e in sorted(stored.items()):
            if v <= record.since:
                continue
            if v not in recorded:
                if e["type"] in DELIVERY_EVENTS and e["data"].get("notice") not in delivered \
                        and any(e["command_id"].startswith(c + ":") for c in vouched):
                    by_delivery.append(v)
                else:
                    unrecorded.append(v)
            elif recorded[v] is not None and recorded[v] != e["hash"]:
                differing.append(v)
        bare = sorted(v for v, h in recorded.items() if h is None)
        mode = "versions" if bare else "hashes"
        if bare:
            notes.append(f"{_versions(bare)} {_are(bare, 'was', 'were')} recorded before the workflow kept hashes: "
                         "their versions were compared, not their hashes")
        if record.since:
            notes.append(f"versions up to {record.since} were recorded by earlier runs of the workflow: "
                         "checked by the chain only")
        if by_delivery:
            notes.append(f"{_versions(by_delivery)} {_are(by_delivery, 'was', 'were')} recorded by the delivery of notifications the "
                         "workflow recorded: checked by the chain only")
    problems = []
    if mismatched:
        problems.append(f"{_versions(mismatched)} {_are(mismatched, 'does', 'do')} not match "
                        f"{_are(mismatched, 'its', 'their')} recorded hash or the predecessor's")
    if missing:
        problems.append(f"{_versions(missing)} {_are(missing, 'is', 'are')} missing from the store")
    if unrecorded:
        problems.append(f"{_versions(unrecorded)} {_are(unrecorded, 'is', 'are')} in the store but the case's "
                        f"workflow never recorded {_are(unrecorded, 'it', 'them')}")
    if differing:
        problems.append(f"{_versions(differing)} {_are(differing, 'has', 'have')} another hash than the "
                        "workflow recorded")
    bad = sorted(mismatched | missing | set(unrecorded) | set(differing))
    stored_count = len(events) + (0 if damaged is None else 1)
    if bad:
        head = "; ".join(problems)
    elif record is None:
        head = f"the hash chain of {stored_count} events is intact"
    else:
        head = (f"intact: every event's hash and link match, and the {stored_count} stored events are the ones "
                f"the case's workflow recorded ({'hashes' if mode == 'hashes' else 'versions'} compared)")
    return Evidence(intact=not bad, versions=stored_count, first_bad_version=bad[0] if bad else None,
                    mismatched_versions=sorted(mismatched), missing_versions=sorted(missing),
                    unrecorded_versions=unrecorded, differing_versions=differing, delivery_versions=by_delivery,
                    cross_check=mode, detail="; ".join([head, *notes]))


async def workflow_record(client: Client, kind: str, case_id: str,
                          timeout: timedelta | None = None) -> tuple[CaseRecord | None, str | None]:
    """The case workflow's own record (the `recorded` query), or None and why it could not
    be had. Never raises: the chain check stands on its own."""
    return await _record_of(client, WORKFLOW_ID[kind](case_id), f"{kind} {case_id}", timeout)


async def _record_of(client: Client, workflow_id: str, what: str,
                     timeout: timedelta | None = None) -> tuple[CaseRecord | None, str | None]:
    timeout = timeout or QUERY_TIMEOUT
    kind, case_id = what.split(" ", 1)
    handle = client.get_workflow_handle(workflow_id)
    try:
        record = await asyncio.wait_for(
            handle.query("recorded", result_type=CaseRecord, rpc_timeout=timeout),
            timeout.total_seconds() + 1)
    except RPCError as e:
        if e.status == RPCStatusCode.NOT_FOUND:
            return None, "Temporal no longer keeps the workflow (its retention period has passed) or never ran it"
        if e.status in (RPCStatusCode.DEADLINE_EXCEEDED, RPCStatusCode.CANCELLED):
            return None, f"no worker answered within {timeout.total_seconds():g} s"
        log.warning("%s %s: the recorded query failed: %s", kind, case_id, e)
        return None, f"Temporal did not answer: {e.message}"
    except asyncio.TimeoutError:
        return None, f"no worker answered within {timeout.total_seconds():g} s"
    except WorkflowQueryFailedError as e:
        return None, f"the workflow could not answer: {e}"
    except Exception as e:  # noqa: BLE001 - whatever it is, verify answers with what it could check
        log.warning("%s %s: the recorded query failed: %r", kind, case_id, e)
        return None, f"the workflow could not be asked: {type(e).__name__}"
    return record, None


async def examine(client: Client, read: Callable[[], Awaitable[tuple[Events, int | None]]], kind: str,
                  case_id: str, events: Events, damaged: int | None) -> Evidence:
    """The evidence for one case: `events` and `damaged` as first read from the store,
    `read` reads them again. The store is read before the workflow is asked, so every
    legitimately stored event is already in the workflow's record; a version the workflow
    has and the first read lacks is looked for once more before it is called missing."""
    record, why_not = await workflow_record(client, kind, case_id)
    delivered: set[str] = set()
    if record is not None:  # the notification facts are in the record of the delivery that appended them
        notices = sorted({e["data"].get("notice") for e in events if e["type"] in DELIVERY_EVENTS} - {None})
        for notice in notices:
            by_delivery, _ = await _record_of(client, delivery_workflow_id(notice), f"delivery {notice}")
            if by_delivery is not None and by_delivery.facts:
                record = record.model_copy(update={"facts": [*record.facts, *by_delivery.facts]})
                delivered.add(notice)
    later: set[int] | None = None
    if record is not None and any(f.version not in {e["version"] for e in events} for f in record.facts):
        again, damaged_again = await read()
        later = {e["version"] for e in again} | ({damaged_again} if damaged_again is not None else set())
    return judge(events, damaged, record, why_not, later, frozenset(delivered))
