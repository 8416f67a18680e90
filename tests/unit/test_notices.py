"""The message of a warning or an escalation (domain/notices.py, pure): Chinese and English
in one message, the deadline in China time, the level in words, the acknowledgement
link, and never a confidential field of the case (§四.5)."""
from __future__ import annotations

import inspect
from datetime import datetime, timezone

from domain import notices
from domain.notices import facts, message_for, render

TICKET = {  # a ticket's state as the workflow holds it: confidential fields included
    "case_id": "T-20260302-7", "customer": "昆明市第二人民医院", "site": "Kunming, 157 Jinbi Rd",
    "contact_phone": "0871-6300000", "confidential_notes": "HIS admin password is Hx!2026",
    "core_parameters": {"db_password": "s3cret-core"}, "symptoms": "HIS down in all wards",
}
ESCALATED = {"goal": "on_site", "deadline": "2026-03-02T05:00:00+00:00", "responsible": "E001", "level": 1,
             "to": "S001", "to_name": "Wu Gang", "reason": "on_site deadline 2026-03-02T05:00:00+00:00 missed"}


def escalation(**change):
    return message_for("ticket", TICKET, {**ESCALATED, **change}, responsible_name="Wang Fang (engineer)",
                       ack_url="http://127.0.0.1:8000/ack/tok123")


def test_a_message_never_carries_the_cases_confidential_fields():
    for level in (0, 1, 2):
        title, body = escalation(level=level)
        for secret in ("0871-6300000", "Hx!2026", "confidential", "s3cret-core", "HIS down in all wards"):
            assert secret not in title and secret not in body


def test_the_arguments_are_picked_by_one_helper_that_reads_only_what_a_message_shows():
    picked = facts("ticket", TICKET, ESCALATED, responsible_name="Wang Fang (engineer)")
    assert set(picked) == set(inspect.signature(render).parameters)
    assert "0871-6300000" not in repr(picked) and "Hx!2026" not in repr(picked)


def test_the_deadline_is_shown_in_china_time():
    assert notices.china_time("2026-03-02T05:00:00+00:00") == "2026-03-02 13:00 (UTC+8)"
    assert notices.china_time(datetime(2026, 3, 2, 16, 30, tzinfo=timezone.utc)) == "2026-03-03 00:30 (UTC+8)"
    assert notices.china_time(datetime(2026, 3, 2, 5, 0)) == "2026-03-02 13:00 (UTC+8)"  # naive is UTC
    _, body = escalation()
    assert "2026-03-02 13:00 (UTC+8)" in body and "05:00 (UTC+8)" not in body


def test_an_escalation_says_which_case_what_was_missed_who_is_responsible_and_links_the_acknowledgement():
    title, body = escalation()
    assert "T-20260302-7" in title and "上报直接上级" in title and "Escalated to the direct superior" in title
    for text in ("故障工单 T-20260302-7", "到达现场", "已于 2026-03-02 13:00 (UTC+8) 超时", "昆明市第二人民医院",
                 "Kunming, 157 Jinbi Rd", "负责人:Wang Fang (engineer) (E001)", "级别:上报直接上级",
                 'Fault ticket T-20260302-7: "on site" was due at 2026-03-02 13:00 (UTC+8) and is missed',
                 "Responsible: Wang Fang (engineer) (E001)", "Level: escalated to the direct superior",
                 "请确认收到:http://127.0.0.1:8000/ack/tok123", "Please acknowledge: http://127.0.0.1:8000/ack/tok123"):
        assert text in body, text
    zh, en = body.split("\n\n")  # Chinese first, then English, in one message
    assert "Customer" not in zh and "客户" not in en


def test_the_level_in_words_warning_superior_leadership():
    for level, zh, en in ((0, "预警", "Warning"), (1, "上报直接上级", "Escalated to the direct superior"),
                          (2, "上报公司领导", "Escalated to company leadership")):
        title, body = escalation(level=level, event=None)
        assert f"【维保·{zh}】" in title and en in title and f"级别:{zh}" in body
    title, body = render(**{**facts("ticket", TICKET, {**ESCALATED, "level": 0}), "ack_url": None})
    assert "即将到期" in title and "due soon" in title and "将于 2026-03-02 13:00 (UTC+8) 到期" in body
    assert "acknowledge" not in body and "确认" not in body  # a warning needs no acknowledgement


def test_a_customers_own_escalation_and_an_emergency_read_as_such_without_a_goal():
    complaint = {"case_id": "c-42", "customer": "Yuxi People's Hospital", "contact": "Mr Li 139-0000-0000"}
    title, body = message_for("complaint", complaint, {"level": 2, "responsible": "E001"},
                              event="CustomerEscalated", ack_url="http://x/ack/1")
    assert "客户要求上报" in title and "客户投诉 c-42" in body and "上报公司领导" in body
    assert "139-0000-0000" not in body and "Mr Li" not in body
    title, body = message_for("complaint", complaint, {"level": 2}, event="LeadershipNotified")
    assert "紧急事件" in title and "emergency" in body and "Responsible: nobody yet" in body


def test_every_case_kind_and_goal_has_words_and_an_unknown_one_shows_as_it_is():
    from domain.complaint_rules import WINDOWS as COMPLAINT
    from domain.inspection_rules import GOAL
    from domain.policy import Goal
    from domain.return_rules import HANDOFFS

    for goal in [*(g.value for g in Goal), *COMPLAINT, *HANDOFFS, GOAL]:
        assert goal in notices.GOALS
    from domain.kinds import KINDS

    assert set(KINDS) <= set(notices.KINDS)
    _, body = escalation(goal="calibrated")
    assert "「calibrated」" in body and '"calibrated"' in body


def test_a_message_fits_a_robots_text_and_keeps_its_link_however_long_the_free_texts():
    long_case = {**TICKET, "customer": "医" * 200, "site": "路" * 200}
    link = "http://127.0.0.1:8000/ack/" + "t" * 120
    title, body = message_for("ticket", long_case, {**ESCALATED, "reason": "原因" * 2000},
                              responsible_name="名" * 100, ack_url=link)
    assert len(f"{title}\n\n{body}".encode()) <= notices.MESSAGE_BYTES
    assert body.endswith(f"Please acknowledge: {link}") and f"请确认收到:{link}" in body
    assert "2026-03-02 13:00 (UTC+8)" in body and "(E001)" in body and "医…" in body
    short_title, short_body = escalation()  # an ordinary message is not shortened
    assert "…" not in short_body and ESCALATED["reason"] in short_body
