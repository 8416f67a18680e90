"""Replay safety: recorded ticket histories must replay against today's workflow code,
so a change that would break in-flight tickets fails here (use workflow.patched).

`ticket_history.json` was recorded before tickets became a case kind (its appends went
through the activity `record`); `ticket_history_one_machinery.json` after, through
`record_case` behind the patch marker, its alarms in four local activities and nothing
delivered; `ticket_history_one_round_trip.json` after alarms took one round trip
(`raise_alarm`) and started their delivery; `ticket_history_search_attributes.json` after
every fact upserted the case's search attributes; `ticket_history_delivery_relay.json` after
the alarms left their deliveries to the relay (activities/relay.py) instead of starting
them; `ticket_history_started_by_code_1.json` after runs carried the code that started them
(workflows/messages.CODE), so that a new run takes every change without a patch marker.
Every branch of each patch is replayed."""
import base64
import json

import pytest
from tests.replay_fixtures import FIXTURES, markers, replay
from workflows.casework import PATCH_DELIVERY_BY_RELAY, PATCH_ONE_ROUND_TRIP
from workflows import search
from workflows.messages import CODE
from workflows.ticket import PATCH_ONE_RECORD


@pytest.mark.parametrize("name,patched,appends", [
    ("ticket_history.json", set(), {"record"}),
    ("ticket_history_one_machinery.json", {PATCH_ONE_RECORD}, {"record_case"}),
    ("ticket_history_one_round_trip.json", {PATCH_ONE_RECORD, PATCH_ONE_ROUND_TRIP},
     {"record_case", "raise_alarm", "start_delivery"}),
    ("ticket_history_search_attributes.json", {PATCH_ONE_RECORD, PATCH_ONE_ROUND_TRIP, f"{search.PATCH}:1"},
     {"record_case", "raise_alarm", "start_delivery"}),
    ("ticket_history_delivery_relay.json",
     {PATCH_ONE_RECORD, PATCH_ONE_ROUND_TRIP, f"{search.PATCH}:1", PATCH_DELIVERY_BY_RELAY},
     {"record_case", "raise_alarm"}),  # the alarms leave their deliveries to the relay: none started here
    ("ticket_history_started_by_code_1.json", set(), {"record_case", "raise_alarm"}),  # no marker: code 1
])
async def test_a_recorded_ticket_history_replays_on_the_current_workflow(name, patched, appends):
    raw = (FIXTURES / name).read_text()
    assert len(json.loads(raw)["events"]) > 50  # a full lifecycle with a breach, not a stub
    patches, activities = markers(raw)
    assert patches == patched
    assert activities & {"record", "record_case", "raise_alarm", "start_delivery"} == appends
    code = start_input(raw).get("code", 0)  # the runs started before CODE carry none
    assert code == (CODE if name == "ticket_history_started_by_code_1.json" else 0)
    # each patch marker comes with its TemporalChangeVersion upsert; a run started by CODE has neither
    assert len(change_version_upserts(raw)) == len(patched)
    await replay(name)


def start_input(raw: str) -> dict:
    event = json.loads(raw)["events"][0]["workflowExecutionStartedEventAttributes"]
    return json.loads(base64.b64decode(event["input"]["payloads"][0]["data"]))


def change_version_upserts(raw: str) -> list[dict]:
    return [e for e in json.loads(raw)["events"] if "TemporalChangeVersion" in
            e.get("upsertWorkflowSearchAttributesEventAttributes", {}).get("searchAttributes", {}).get(
                "indexedFields", {})]
