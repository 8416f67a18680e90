"""The search attributes every case's workflow keeps up to date, so that operators find
cases in the Temporal UI or with `temporal workflow list --query '…'`:

    WeibaoKind, WeibaoStatus, WeibaoAssignee, WeibaoCustomer, WeibaoSeverity, WeibaoZone
    (Keyword), WeibaoBreached (Bool), WeibaoEscalationLevel (Int), WeibaoNextDeadline
    (Datetime)

Derived from the state folded from what was recorded, after every recorded fact; never
contact data (the customer is the organisation, not a person). A cluster must know them
before a worker runs (`register` does it at the worker's start; `make run`'s dev server
is started with them)."""
from __future__ import annotations

import logging
from typing import Any

from temporalio.api.operatorservice.v1 import AddSearchAttributesRequest, ListSearchAttributesRequest
from temporalio.client import Client
from temporalio.service import RPCError, RPCStatusCode
from temporalio.common import SearchAttributeIndexedValueType as Type
from temporalio.common import SearchAttributeKey, SearchAttributeUpdate

from domain.casework import CaseState

KIND = SearchAttributeKey.for_keyword("WeibaoKind")
STATUS = SearchAttributeKey.for_keyword("WeibaoStatus")
ASSIGNEE = SearchAttributeKey.for_keyword("WeibaoAssignee")
CUSTOMER = SearchAttributeKey.for_keyword("WeibaoCustomer")
SEVERITY = SearchAttributeKey.for_keyword("WeibaoSeverity")
ZONE = SearchAttributeKey.for_keyword("WeibaoZone")
BREACHED = SearchAttributeKey.for_bool("WeibaoBreached")
LEVEL = SearchAttributeKey.for_int("WeibaoEscalationLevel")
NEXT_DEADLINE = SearchAttributeKey.for_datetime("WeibaoNextDeadline")
KEYS = (KIND, STATUS, ASSIGNEE, CUSTOMER, SEVERITY, ZONE, BREACHED, LEVEL, NEXT_DEADLINE)

# Histories recorded before the attributes existed upsert none (one patch per recorded
# version, so a case open across the deploy is indexed from its next fact on).
PATCH = "search-attributes"

# The dev server's `--search-attribute` flag and `temporal operator search-attribute create --type`
_TYPE_NAMES = {Type.KEYWORD: "Keyword", Type.BOOL: "Bool", Type.INT: "Int", Type.DATETIME: "Datetime"}
log = logging.getLogger("weibao.search")


def values(kind: str, state: CaseState) -> dict[SearchAttributeKey, Any]:
    """Each attribute's value for `state` (None: the case has none)."""
    return {
        KIND: kind,
        STATUS: state.status,
        ASSIGNEE: state.holder,
        CUSTOMER: getattr(state, "customer", None) or None,
        SEVERITY: getattr(state, "severity", None),
        ZONE: getattr(state, "zone", None),
        BREACHED: bool(state.breaches),
        LEVEL: state.escalation_level,
        NEXT_DEADLINE: state.next_deadline,
    }


def changes(now: dict[SearchAttributeKey, Any], before: dict[SearchAttributeKey, Any]) -> list[SearchAttributeUpdate]:
    """The upserts that take the attributes from `before` to `now` (a None value unsets)."""
    return [key.value_set(v) if v is not None else key.value_unset()
            for key, v in now.items() if key not in before and v is not None or key in before and before[key] != v]


def flags() -> list[str]:
    """The dev server's flags that define every attribute."""
    return [arg for key in KEYS for arg in ("--search-attribute", f"{key.name}={_TYPE_NAMES[key.indexed_value_type]}")]


async def register(client: Client) -> list[str]:
    """Define on the cluster's namespace the attributes it lacks; the names added. Raises
    when the cluster refuses (a hosted namespace: define them there with the commands the
    README gives)."""
    namespace = client.namespace
    try:
        have = await client.operator_service.list_search_attributes(ListSearchAttributesRequest(namespace=namespace))
    except RPCError as e:
        if e.status != RPCStatusCode.UNIMPLEMENTED:
            raise
        return await _add_one_by_one(client)  # the time-skipping test server lists none
    known = {**have.system_attributes, **have.custom_attributes}
    missing = {key.name: key.indexed_value_type for key in KEYS if key.name not in known}
    wrong = [f"{key.name} is {Type(known[key.name]).name.title()}, not {_TYPE_NAMES[key.indexed_value_type]}"
             for key in KEYS if key.name in known and known[key.name] != key.indexed_value_type]
    if wrong:
        raise RuntimeError("search attributes of the wrong type on the cluster: " + "; ".join(wrong))
    if missing:
        try:
            await client.operator_service.add_search_attributes(
                AddSearchAttributesRequest(namespace=namespace, search_attributes=missing))
        except RPCError as e:  # another worker starting beside this one defined some first
            if not _already_exists(e):
                raise
            return await _add_one_by_one(client)
        log.info("defined search attributes %s on namespace %s", ", ".join(sorted(missing)), namespace)
    return sorted(missing)


async def _add_one_by_one(client: Client) -> list[str]:
    added = []
    for key in KEYS:
        try:
            await client.operator_service.add_search_attributes(AddSearchAttributesRequest(
                namespace=client.namespace, search_attributes={key.name: key.indexed_value_type}))
            added.append(key.name)
        except RPCError as e:
            if not _already_exists(e):
                raise
    return added


def _already_exists(e: RPCError) -> bool:
    # by its status, or (the time-skipping test server's answer) by its message
    return e.status == RPCStatusCode.ALREADY_EXISTS or "already exists" in e.message
