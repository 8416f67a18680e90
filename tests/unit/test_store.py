"""The event store's quick JSON decoding gives what eventsourcing's own decoder gives,
for every shape a stored event can take."""
from datetime import datetime, timezone
from uuid import UUID

import pytest
from eventsourcing.persistence import JSONTranscoder

from activities.store import QuickJSONTranscoder, EventStore

AT = datetime(2026, 3, 1, 0, 12, tzinfo=timezone.utc)
STATES = [
    {"timestamp": AT, "at": AT, "actor": "S001", "command_id": "c:2", "data": {"severity": "critical"},
     "prev_hash": "a", "hash": "b"},
    {"at": AT, "data": {"deadline": AT, "ticket": UUID(int=3)}},  # custom values deeper down
    {"at": AT, "data": {"symptoms": 'the label says "_type_" and "_data_"'}},  # the words, not a custom value
    {"at": AT, "data": {"_type_": "not a transcoding", "x": 1}},  # a key that looks like one
    {"data": {"drift": float("inf")}},  # JSON that orjson refuses (Infinity)
    {"data": {"big": 2 ** 70, "id": UUID(int=7)}},
    {"plain": [1, 2.5, None, True, "维保"]},
]


def transcoders() -> tuple[JSONTranscoder, QuickJSONTranscoder]:
    app = EventStore(env={"PERSISTENCE_MODULE": "eventsourcing.popo"})
    library = JSONTranscoder()
    app.register_transcodings(library)
    assert isinstance(app.mapper.transcoder, QuickJSONTranscoder)
    return library, app.mapper.transcoder


@pytest.mark.parametrize("state", STATES)
def test_quick_decoding_equals_the_librarys(state):
    library, quick = transcoders()
    stored = library.encode(state)
    assert quick.encode(state) == stored  # the stored format is the library's
    decoded = quick.decode(stored)
    assert decoded == library.decode(stored) == state
    assert [type(v) for v in decoded.values()] == [type(v) for v in state.values()]
