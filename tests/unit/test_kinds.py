"""The registry of case kinds agrees with the aggregates: every event a kind declares is
a step's or one its workflow records, every step's event is declared, and each kind's
fold knows every event it declares (domain.kinds)."""
import inspect

import pytest

from domain.chained import event_types
from domain.kinds import AGGREGATES, ALARM_EVENTS, KINDS, kind_of_topic


@pytest.mark.parametrize("name", sorted(KINDS))
def test_each_event_is_declared_once_and_made_by_a_step_or_the_workflow(name):
    kind = KINDS[name]
    declared = event_types(kind.aggregate)
    assert kind.step_events <= declared, f"steps record undeclared events: {kind.step_events - declared}"
    assert declared == kind.step_events | kind.recorded_by_workflow
    assert kind.aggregate.CREATED in kind.recorded_by_workflow


@pytest.mark.parametrize("name", sorted(KINDS))
def test_each_kinds_fold_handles_every_event_it_declares(name):
    fold_source = inspect.getsource(inspect.getmodule(KINDS[name].aggregate.fold))
    alarm_fold = "evolve_alarm" in fold_source
    for event in event_types(KINDS[name].aggregate):
        if event in ALARM_EVENTS and alarm_fold:
            continue
        assert f'"{event}"' in fold_source, f"{name}'s fold does not mention {event}"


def test_a_stored_topic_names_its_kind():
    assert kind_of_topic("domain.ticket:Ticket.Reported") == "ticket"
    assert kind_of_topic("domain.returns:ReturnCase.Inspected") == "return"
    assert kind_of_topic("somewhere:Else.Happened") is None
    assert {a.KIND for a in AGGREGATES.values()} == set(KINDS)
