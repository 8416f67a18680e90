"""Replay safety: recorded ticket histories must replay against today's workflow code,
so a change that would break in-flight tickets fails here (use workflow.patched).

`ticket_history.json` was recorded before tickets became a case kind (its appends went
through the activity `record`); `ticket_history_one_machinery.json` after, through
`record_case` behind the patch marker, its alarms in four local activities and nothing
delivered; `ticket_history_one_round_trip.json` after alarms took one round trip
(`raise_alarm`) and started their delivery; `ticket_history_search_attributes.json` after
every fact upserted the case's search attributes; `ticket_history_delivery_relay.json` after
the alarms left their deliveries to the relay (activities/relay.py) instead of starting
them. Every branch of each patch is replayed."""
import json

import pytest
from tests.replay_fixtures import FIXTURES, markers, replay
from workflows.casework import PATCH_DELIVERY_BY_RELAY, PATCH_ONE_ROUND_TRIP
from workflows import search
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
])
async def test_a_recorded_ticket_history_replays_on_the_current_workflow(name, patched, appends):
    raw = (FIXTURES / name).read_text()
    assert len(json.loads(raw)["events"]) > 50  # a full lifecycle with a breach, not a stub
    patches, activities = markers(raw)
    assert patches == patched
    assert activities & {"record", "record_case", "raise_alarm", "start_delivery"} == appends
    await replay(name)
