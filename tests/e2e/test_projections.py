"""Read models over a small scripted month of tickets (March 2025, China Standard
Time), each figure worked out by hand below; a rebuild from zero equals the
incremental result; the ticket list agrees with the aggregate's own fold; a batch and
its position commit together. SQLite and PostgreSQL alike."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any

import pytest

from activities.store import open_store
from domain import policy
from domain.policy import CST
from domain.ticket import Ticket
from projections import candidates, departments, escalations, faults, scorecard, sla_compliance, ticket_list
from projections.base import ReadModel
from projections.escalations import EscalationLog
from projections.runner import ReadModels, Runner
from tests.projection_fixtures import (DALI, KUNMING, YUNNAN, MONTH, MS, STORES, append, by, cst, month, snapshot,  # noqa: F401
                                       ticket_events, version_of, view)

def test_engineer_scorecard_for_march_matches_the_figures_worked_by_hand(month):
    app, models = month
    rows = by(scorecard.engineer_scorecard(view(models, scorecard.EngineerScorecard), "2025-03"), "engineer")
    assert set(rows) == {"E001", "E002"}
    e1 = rows["E001"]  # T1, T2, T3 resolved in March; T7 still open
    assert e1["tickets_handled"] == 3
    assert (e1["on_site_goals"], e1["on_site_on_time"], e1["on_site_on_time_share"]) == (1, 1, 1.0)  # T1
    assert (e1["resolved_goals"], e1["resolved_on_time"], e1["resolved_on_time_share"]) == (2, 1, 0.5)  # T2 yes, T3 no
    assert (e1["hours_to_arrive_median"], e1["hours_to_arrive_p90"]) == (2.0, 25.0)  # 2, 2, 25
    assert (e1["hours_to_resolve_median"], e1["hours_to_resolve_p90"]) == (5.0, 50.0)  # 5, 5, 50
    assert (e1["breaches"], e1["escalations_caused"]) == (1, 1)  # T3
    assert e1["satisfaction_mean"] == round(11 / 3, 4) and e1["satisfaction_count"] == 3  # 5, 4, 2
    # the scripted month's scores were all typed in by the engineer: none counts as the customer's own
    assert (e1["satisfaction_entered_by_engineer_count"], e1["satisfaction_by_customer_count"]) == (3, 0)
    assert (e1["assessed"], e1["time_rating_mean"], e1["quality_rating_mean"]) == (3, round(11 / 3, 4), 4.0)
    assert e1["department"] == "after_sales"

    e2 = rows["E002"]  # T4, T6, T8 in March; T5 was resolved 4/1 01:00 CST
    assert e2["tickets_handled"] == 3
    assert (e2["on_site_goals"], e2["on_site_on_time"], e2["on_site_on_time_share"]) == (2, 0, 0.0)  # T4, T8 late
    assert (e2["resolved_goals"], e2["resolved_on_time"], e2["resolved_on_time_share"]) == (1, 1, 1.0)  # T6
    assert (e2["hours_to_arrive_median"], e2["hours_to_arrive_p90"]) == (71.5, 73.0)  # 70, 73 (T6 was remote)
    assert (e2["hours_to_resolve_median"], e2["hours_to_resolve_p90"]) == (75.0, 75.0)  # 3, 75, 75
    assert (e2["breaches"], e2["escalations_caused"]) == (2, 3)  # T4, T8; T4 L1, T8 L1 and L2
    assert e2["satisfaction_mean"] == 3.0  # 3, 5, 1
    assert (e2["time_rating_mean"], e2["quality_rating_mean"]) == (round(8 / 3, 4), round(11 / 3, 4))

    april = scorecard.engineer_scorecard(view(models, scorecard.EngineerScorecard), "2025-04")
    assert [(r["engineer"], r["tickets_handled"], r["breaches"]) for r in april] == [("E002", 1, 0)]  # T5


def test_every_scorecard_row_links_to_the_events_it_came_from(month):
    app, models = month
    rows = by(scorecard.engineer_scorecard(view(models, scorecard.EngineerScorecard), "2025-03"), "engineer")
    refs = {r["ticket_id"]: r["versions"] for r in rows["E001"]["events"]}
    assert set(refs) == {"T1", "T2", "T3"}
    assert version_of(app, "T3", "SlaBreached") in refs["T3"] and version_of(app, "T3", "Resolved") in refs["T3"]
    assert version_of(app, "T3", "SlaWarned") not in refs["T3"]  # a warning is not a breach
    assert refs["T1"] == [e["version"] for e in app.history("ticket", "T1")]  # every T1 event shaped a figure


def test_department_accountability_attributes_breaches_and_escalations_through_the_person(month):
    app, models = month
    rows = by(departments.department_accountability(view(models, departments.DepartmentAccountability), "2025-03"),
              "department")
    assert set(rows) == {"after_sales", "project"}
    a, p = rows["after_sales"], rows["project"]
    assert (a["breaches"], a["escalations"], a["leadership_escalations"], a["tickets"]) == (1, 1, 0, 1)
    assert a["people"] == [{"person": "E001", "name": "Wang Fang (engineer)", "breaches": 1, "escalations": 1,
                            "substantiated_complaints": 0, "return_causes": 0}]
    assert (a["substantiated_complaints"], a["return_causes"]) == (0, 0)
    assert (p["breaches"], p["escalations"], p["leadership_escalations"], p["tickets"]) == (2, 3, 1, 2)
    assert [(x["person"], x["breaches"], x["escalations"]) for x in p["people"]] == [("E002", 2, 3)]
    assert {r["ticket_id"] for r in p["events"]} == {"T4", "T8"}


def test_sla_compliance_per_customer_counts_met_missed_and_open_windows(month):
    app, models = month
    rows = sla_compliance.sla_compliance(view(models, sla_compliance.SlaCompliance), "2025-03")
    got = {(r["customer"], r["severity"], r["zone"], r["window"]): (r["tickets"], r["met"], r["missed"], r["open"])
           for r in rows}
    assert got == {
        (KUNMING, "critical", "A", "on_site"): (1, 1, 0, 0),  # T1
        (KUNMING, "major", "A", "resolved"): (1, 1, 0, 0),  # T2
        (KUNMING, "general", "A", "resolved"): (1, 0, 0, 1),  # T7, open
        (YUNNAN, "general", "A", "resolved"): (2, 1, 1, 0),  # T3 missed; T5 reported in March, met
        (DALI, "critical", "B", "on_site"): (1, 0, 1, 0),  # T4
        (DALI, "general", "B", "on_site"): (1, 0, 1, 0),  # T8
        (DALI, "major", "A", "resolved"): (1, 1, 0, 0),  # T6
    }
    yunnan = sla_compliance.sla_compliance(view(models, sla_compliance.SlaCompliance), "2025-03", customer=YUNNAN)
    assert [(r["met_share"], r["missed_tickets"]) for r in yunnan] == [(0.5, ["T3"])]


def test_escalation_log_lists_every_warning_and_escalation_in_the_period(month):
    app, models = month
    log = view(models, escalations.EscalationLog)
    everything = escalations.escalation_log(log)
    assert len(everything) == 2 + 2 + 3  # T3 and T4: warning and L1; T8: warning, L1, L2
    # 3/12 00:00 to 3/22 24:00 CST, as the API reads `from=2025-03-12&to=2025-03-22`
    start = cst(3, 12, 0).astimezone(timezone.utc).isoformat(timespec="microseconds")
    end = cst(3, 23, 0).astimezone(timezone.utc).isoformat(timespec="microseconds")
    rows = escalations.escalation_log(log, start, end)
    assert [(r["ticket_id"], r["kind"], r["level"], r["target"]) for r in rows] == [
        ("T3", "escalation", 1, "S001"), ("T8", "warning", 0, "E002"), ("T8", "escalation", 1, "S002"),
        ("T8", "escalation", 2, "L001"), ("T4", "warning", 0, "E002"), ("T4", "escalation", 1, "S002")]
    assert rows[0]["events"] == [{"ticket_id": "T3", "versions": [version_of(app, "T3", "Escalated")]}]


def test_fault_register_is_searchable_by_words_in_symptoms_and_cause(month):
    app, models = month
    register = view(models, faults.FaultRegister)
    assert len(faults.search_faults(register)) == 7  # every resolved ticket (T7 is open)
    assert {r["ticket_id"] for r in faults.search_faults(register, "搓纸轮")} == {"T3"}
    assert {r["ticket_id"] for r in faults.search_faults(register, "PRINTER roller")} == {"T3"}
    assert {r["ticket_id"] for r in faults.search_faults(register, "psu wards")} == {"T1", "T2", "T4", "T5", "T6",
                                                                                      "T8"}
    assert faults.search_faults(register, "printer psu") == []
    t3 = faults.search_faults(register, "卡纸")[0]
    assert (t3["product_model"], t3["engineer"], t3["parts_used"]) == ("Printer LX-310", "E001", ["PSU"])
    assert t3["events"] == [{"ticket_id": "T3", "versions": [version_of(app, "T3", "Resolved")]}]


def test_reward_and_penalty_candidates_follow_the_rules_with_their_evidence(month):
    app, models = month
    rows = candidates.candidates(view(models, candidates.Candidates), "2025-03")
    got = {(r["rule"], r["subject"]): r for r in rows}
    assert set(got) == {("customer_no_breach_no_complaint", KUNMING), ("repeated_breaches", "E002"),
                        ("escalated_to_leadership", "E002")}
    assert rows[0]["kind"] == "reward"  # rewards first
    assert got[("repeated_breaches", "E002")]["figures"] == {"breaches": 2}
    assert got[("repeated_breaches", "E002")]["events"] == [
        {"ticket_id": "T4", "versions": [version_of(app, "T4", "SlaBreached")]},
        {"ticket_id": "T8", "versions": [version_of(app, "T8", "SlaBreached")]}]
    assert got[("escalated_to_leadership", "E002")]["events"] == [
        {"ticket_id": "T8", "versions": [version_of(app, "T8", "Escalated", 1)]}]
    # Rules are data: a stricter one, passed in, picks out E001's single breach too.
    strict = [{"id": "any_breach", "kind": "penalty", "subject": "staff", "when": [["breaches", ">=", 1]],
               "evidence": ["breach"]}]
    assert {r["subject"] for r in candidates.candidates(view(models, candidates.Candidates), "2025-03", strict)} \
        == {"E001", "E002"}


def test_ticket_list_agrees_with_the_aggregates_own_fold(month):
    app, models = month
    rows = by(ticket_list.list_tickets(limit=100, view=view(models, ticket_list.TicketList)), "ticket_id")
    assert set(rows) == {f"T{i}" for i in range(1, 9)}
    for tid, row in rows.items():
        state = app.aggregate("ticket", tid).state
        assert (row["status"], row["assignee"], row["severity"], row["zone"], row["version"]) == (
            state.status, state.assignee, state.severity, state.zone, state.version), tid
        assert row["breached"] == bool(state.breaches), tid
        assert row["deadlines"] == {g: d.astimezone(timezone.utc).isoformat(timespec="microseconds")
                                    for g, d in state.deadlines.items()}, tid
    v = view(models, ticket_list.TicketList)
    assert [r["ticket_id"] for r in ticket_list.list_tickets(status="dispatched", view=v)] == ["T7"]
    assert {r["ticket_id"] for r in ticket_list.list_tickets(breached=True, view=v)} == {"T3", "T4", "T8"}
    assert {r["ticket_id"] for r in ticket_list.list_tickets(assignee="E002", breached=False, view=v)} == {"T5", "T6"}
    newest = ticket_list.list_tickets(limit=2, offset=1, view=v)
    assert [r["ticket_id"] for r in newest] == ["T7", "T6"]  # newest report first: T5, T7, T6, ...


# ------------------------------------------------------------------ rebuild and atomicity

@pytest.mark.parametrize("kind", STORES)
def test_a_rebuild_from_zero_equals_the_incremental_result(use_store, kind):
    use_store(kind)
    app = open_store()
    models = ReadModels()
    runner = Runner(app, models, batch_size=4, workers=1)
    for i in range(0, len(MONTH), 9):  # events arrive while the runner catches up, in small batches
        append(app, MONTH[i:i + 9])
        runner.step()
    runner.catch_up()
    runner.close()
    incremental = snapshot(models)
    assert sum(len(rows) for rows in incremental.values()) > 0
    for name in models.projections:
        models.reset(name)
    assert all(rows == [] for rows in snapshot(models).values())
    assert all(pos is None for pos in models.positions().values())
    rebuilt = Runner(app, ReadModels(), batch_size=10_000, workers=4)  # a fresh process, one batch
    assert rebuilt.catch_up() == len(MONTH)
    rebuilt.close()
    assert snapshot(models) == incremental
    models.close()


class BrokenEscalationLog(EscalationLog):
    """The escalation log with a bug: it cannot apply a warning."""

    name = "escalation_log"

    def _handler(self, cls: type) -> Any:
        handler = super()._handler(cls)
        if cls is Ticket.SlaWarned:
            handler = self._handlers[cls] = self.fail
        return handler

    @staticmethod
    def fail(self: Any, event: Any, batch: Any) -> None:
        raise RuntimeError("a bug in a handler")


@pytest.mark.parametrize("kind", STORES)
def test_a_batch_that_fails_writes_nothing_and_moves_no_position(use_store, kind):
    """One transaction per batch: an event that fails rolls the whole batch back. (The
    runner then applies it in halves and quarantines the event that fails alone:
    tests/e2e/test_projections_faults.py.)"""
    from eventsourcing.persistence import Tracking

    use_store(kind)
    app = open_store()
    append(app, MONTH[:20])
    assert any(e[2] == "SlaWarned" for e in MONTH[:20])
    models = ReadModels(models=(ticket_list.TicketList, BrokenEscalationLog))
    items = [(app.mapper.to_domain_event(n), Tracking(app.name, n.id))
             for n in app.recorder.select_notifications(start=1, limit=20)]
    with pytest.raises(RuntimeError, match="a bug in a handler"):
        models.projections["escalation_log"].process_batch(items, None)
    assert models.positions()["escalation_log"] is None
    assert models.view("escalation_log").query("SELECT * FROM escalation_tickets") == []  # rolled back whole
    models.close()


@pytest.mark.parametrize("kind", STORES)
def test_two_runners_racing_apply_each_event_once(use_store, kind):
    """The position moves by compare-and-set in the batch's transaction: a second
    runner (another process, a rebuild) can never apply a batch the first applied."""
    use_store(kind)
    app = open_store()
    append(app, MONTH)
    first, second = ReadModels(), ReadModels()
    a = Runner(app, first, batch_size=5, workers=1)
    b = Runner(open_store(), second, batch_size=8, workers=1)
    while a.step() + b.step():
        pass
    a.catch_up(), b.catch_up()
    assert not a.failed and not b.failed
    raced = snapshot(first)
    for name in first.projections:
        first.reset(name)
    Runner(app, first, batch_size=1000, workers=1).catch_up()
    assert snapshot(first) == raced
    assert len(escalations.escalation_log(first.view("escalation_log"))) == 7
    first.close(), second.close()


def test_the_librarys_one_event_projection_runner_drives_a_read_model_too(use_store):
    """`process_event` keeps the library's contract (one event, tracked): eventsourcing's
    own ProjectionRunner can run a read model, on PostgreSQL (SQLite cannot subscribe)."""
    from eventsourcing.projection import ProjectionRunner

    from activities.store import EventStore, store_env
    from projections.base import PostgresReadModelView

    use_store("postgres")
    app = open_store()
    append(app, MONTH[:30])

    class OneByOne(EscalationLog):
        name = "escalation_log"

    class EscalationLogView(PostgresReadModelView):
        tables = EscalationLog.tables()

    with ProjectionRunner(application_class=EventStore, projection_class=OneByOne, view_class=EscalationLogView,
                          env=store_env("postgres")) as runner:
        runner.wait(app.recorder.max_notification_id(), timeout=20)
        rows = escalations.escalation_log(runner.projection.view)
    assert len(rows) == sum(1 for e in MONTH[:30] if e[2] in ("SlaWarned", "Escalated"))


@pytest.mark.parametrize("kind,poll", [("postgres", 30.0), ("sqlite", 0.2)])
def test_a_running_runner_applies_new_events_without_a_restart(use_store, kind, poll):
    """PostgreSQL wakes the runner by NOTIFY (its poll is 30 s and the test waits at most
    20 s: only a notification can bring the new event in); SQLite cannot notify, so the
    runner polls."""
    import threading
    import time

    use_store(kind)
    app = open_store()
    append(app, MONTH[:10])
    models = ReadModels()
    runner = Runner(app, models, batch_size=100)
    stop = threading.Event()
    thread = threading.Thread(target=runner.run, args=(stop,), kwargs={"poll_interval": poll})
    thread.start()
    try:
        deadline = time.monotonic() + 20
        while models.positions()["ticket_list"] != 10 and time.monotonic() < deadline:
            time.sleep(0.02)
        assert models.positions()["ticket_list"] == 10  # caught up: the runner now waits
        append(open_store(), MONTH[10:11])  # another process's append
        deadline = time.monotonic() + 20
        while models.positions()["ticket_list"] != 11 and time.monotonic() < deadline:
            time.sleep(0.02)
        assert models.positions()["ticket_list"] == 11
    finally:
        stop.set()
        thread.join(timeout=poll + 5)
        runner.close(), models.close()


def test_complaints_weigh_in_the_candidates_against_the_person_found_responsible(use_store):
    """A complaint (its own case in the same store) ends a customer's clean month,
    counts against the person and department a reply found responsible, and a
    valuable suggestion is a reward (§九.C.6-7)."""
    from domain import complaint
    use_store("sqlite")
    app = open_store()
    append(app, MONTH)
    c = complaint.Complaint.open("C1", at=cst(3, 6, 9), actor="C001", command_id="complaint-C1:register", data={
        "customer": KUNMING, "contact": "0871-6300000", "channel": "phone", "category": "service_attitude",
        "description": "the engineer was rude", "about_person": "E001"})
    c.record("Replied", at=cst(3, 6, 15), actor="M001", command_id="complaint-C1:reply", data={
        "reply": "we apologise", "substantiated": True, "responsible_person": "E001",
        "responsible_department": "after_sales"})
    c.record("Closed", at=cst(3, 7, 9), actor="C001", command_id="complaint-C1:close",
             data={"satisfaction": 4, "valuable_suggestion": True})
    app.save(c)
    models = ReadModels()
    runner = Runner(app, models)
    runner.catch_up()
    runner.close()
    assert not runner.failed
    got = {(r["rule"], r["subject"]): r for r in candidates.candidates(models.view("candidates"), "2025-03")}
    assert ("customer_no_breach_no_complaint", KUNMING) not in got
    assert got[("valuable_suggestion", KUNMING)]["events"] == [{"complaint_id": "C1", "versions": [3]}]
    assert got[("substantiated_complaint", "E001")]["events"] == [{"complaint_id": "C1", "versions": [2]}]
    assert ("department_substantiated_complaint", "after_sales") in got
    assert len(ticket_list.list_tickets(view=models.view("ticket_list"))) == 8  # a complaint is no ticket
    models.close()
