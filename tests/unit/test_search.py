"""The search attributes derived from a case's state (workflows/search.py): who holds each
kind of case, and upserts of only what changed."""
from datetime import datetime, timezone

from domain.casework import Alert, OpenWindow
from domain.complaint_rules import ComplaintState
from domain.return_rules import ReturnState, Route
from workflows import search

T0 = datetime(2026, 11, 26, 1, tzinfo=timezone.utc)


def test_each_kind_names_who_holds_it():
    complaint = ComplaintState(case_id="c1", status="routed", customer="Qujing No.2 Hospital", routed_head="S002")
    assert search.values("complaint", complaint)[search.ASSIGNEE] == "S002"
    assert search.values("complaint", complaint.model_copy(update={"handler": "E003"}))[search.ASSIGNEE] == "E003"
    ret = ReturnState(case_id="r1", status="requested", stage="decide", routes={"decide": Route(responsible="S004")})
    assert search.values("return", ret)[search.ASSIGNEE] == "S004"
    assert search.values("return", ret.model_copy(update={"stage": None}))[search.ASSIGNEE] is None


def test_level_breach_and_next_deadline_come_from_the_recorded_alarms():
    state = ComplaintState(
        case_id="c1", status="routed", requested_level=0,
        windows={"reply": OpenWindow(goal="reply", started_at=T0, deadline=T0.replace(hour=9)),
                 "done": OpenWindow(goal="done", started_at=T0, deadline=T0.replace(hour=5))},
        met={"done": T0.replace(hour=4)},
        breaches=[Alert(goal="reply", deadline=T0.replace(hour=9), at=T0.replace(hour=9))],
        escalations=[Alert(goal="reply", deadline=T0.replace(hour=9), at=T0.replace(hour=9), level=2)])
    found = search.values("complaint", state)
    assert found[search.BREACHED] is True and found[search.LEVEL] == 2
    assert found[search.NEXT_DEADLINE] == T0.replace(hour=9)  # the met window no longer counts
    assert search.values("complaint", state.model_copy(update={"status": "closed"}))[search.NEXT_DEADLINE] is None


def test_only_what_changed_is_upserted_and_a_value_gone_is_unset():
    before = {search.STATUS: "reported", search.ASSIGNEE: None, search.ZONE: "A"}
    now = {search.STATUS: "dispatched", search.ASSIGNEE: "E001", search.ZONE: "A"}
    assert [(u.key.name, u.value) for u in search.changes(now, before)] == [("WeibaoStatus", "dispatched"),
                                                                           ("WeibaoAssignee", "E001")]
    gone = search.changes({**now, search.ASSIGNEE: None}, now)
    assert [(u.key.name, u.value) for u in gone] == [("WeibaoAssignee", None)]
    assert search.changes({search.ZONE: None}, {}) == []  # never set, nothing to unset
