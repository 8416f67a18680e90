"""Warnings and escalations through the HTTP API (issue 14): the acknowledgement link in
the mail works once and refuses a second use, an expired token and a forged one; the
bearer acknowledgement is the target's alone; GET /notifications lists every attempt by
role; a manager re-sends a notification."""
import re
import time
from datetime import datetime, timedelta

import itsdangerous
import pytest

from activities.delivery import ack_token
from activities.outbox import Outbox
from tests.api_fixtures import api  # noqa: F401 (fixture)
from tests.conftest import sleep_until
from tests.notify_fixtures import eventually, smtp  # noqa: F401 (fixture)

H = timedelta(hours=1)
MINUTE = timedelta(minutes=1)


async def escalated_ticket(env, api, smtp) -> tuple[str, str]:
    """A critical ticket dispatched to E001 and breached: (ticket id, escalation notice id)."""
    tid = await api.report()
    await api.ok(tid, "triage", "S001", severity="critical", zone="A")
    state = await api.ok(tid, "dispatch", "S001", engineer="E001", travel_mode="taxi")
    await sleep_until(env, datetime.fromisoformat(state["reported_at"]) + 4 * H + MINUTE)
    notice = f"ticket-{tid}:on_site:breach:escalated"
    await eventually(lambda: [e for e in api.history(tid) if e["type"] == "NotificationSent"
                              and e["data"]["notice"] == notice], "the escalation delivered")
    return tid, notice


async def test_the_link_in_the_mail_acknowledges_once(env, api, smtp):
    smtp.start()
    tid, notice = await escalated_ticket(env, api, smtp)
    mail = [m for m in smtp.mailbox.to("wu.gang@example.com") if tid in m][0]
    path = re.search(r"/ack/[A-Za-z0-9_.\-]+", mail).group(0)
    page = await api.http.get(path)
    assert page.status_code == 200 and "Acknowledge" in page.text  # opening shows a button, records nothing
    assert not [e for e in api.history(tid) if e["type"] == "EscalationAcknowledged"]
    done = await api.http.post(path)
    assert done.status_code == 200 and "S001" in done.text
    acked = [e for e in api.history(tid) if e["type"] == "EscalationAcknowledged"]
    assert [(e["actor"], e["data"]["notice"], e["data"]["via"]) for e in acked] == [("S001", notice, "link")]
    again = await api.http.post(path)
    assert again.status_code == 409 and "already acknowledged by S001" in again.text
    listed = (await api.get("/notifications", "M001", target="S001")).json()
    mine = next(n for n in listed if n["id"] == notice)
    assert mine["status"] == "sent" and mine["acknowledged_by"] == "S001"
    assert [a["status"] for a in mine["attempts"]] == ["sent"]


async def test_a_forged_or_expired_link_is_refused(env, api, smtp):
    smtp.start()
    tid, notice = await escalated_ticket(env, api, smtp)
    forged = ack_token(notice, "S001")[:-3] + "abc"
    assert (await api.http.post(f"/ack/{forged}")).status_code == 403
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(itsdangerous.timed.TimestampSigner, "get_timestamp", lambda self: int(time.time()) - 8 * 86400)
        expired = ack_token(notice, "S001")  # signed eight days ago: past the 7-day link
    answer = await api.http.post(f"/ack/{expired}")
    assert answer.status_code == 410 and "expired" in answer.text
    assert not [e for e in api.history(tid) if e["type"] == "EscalationAcknowledged"]


async def test_only_the_target_acknowledges_with_a_token_and_roles_see_their_notifications(env, api, smtp):
    smtp.start()
    tid, notice = await escalated_ticket(env, api, smtp)
    refused = await api.post(f"/escalations/{notice}/ack", "M001")
    assert refused.status_code == 403 and "only its target" in refused.json()["detail"]
    ok = await api.post(f"/escalations/{notice}/ack", "S001")
    assert ok.status_code == 200 and ok.json()["acknowledged_by"] == "S001" and ok.json()["via"] == "api"
    assert (await api.post(f"/escalations/{notice}/ack", "S001")).status_code == 409
    assert (await api.post("/escalations/ticket-nope:x/ack", "S001")).status_code == 404
    own = (await api.get("/notifications", "E001")).json()
    assert own and {n["target"] for n in own} == {"E001"}  # an engineer sees the warnings sent to them
    assert (await api.get("/notifications", "E001", target="S001")).status_code == 403
    assert {n["target"] for n in (await api.get("/notifications", "A001")).json()} >= {"E001", "S001"}


async def test_a_manager_resends_a_notification_and_an_engineer_may_not(env, api, smtp):
    smtp.start()
    tid, _ = await escalated_ticket(env, api, smtp)
    warning = f"ticket-{tid}:on_site:warning"
    before = len([m for m in smtp.mailbox.to("wang.fang@example.com") if tid in m])
    assert (await api.post(f"/notifications/{warning}/resend", "E001")).status_code == 403
    answer = await api.post(f"/notifications/{warning}/resend", "M001")
    assert answer.status_code == 202 and answer.json()["round"] == 2
    await eventually(lambda: len([m for m in smtp.mailbox.to("wang.fang@example.com") if tid in m]) == before + 1,
                     "the warning sent once more")
    rounds = sorted(a["round"] for a in (await api.get("/notifications", "M001", target="E001")).json()[0]["attempts"])
    assert rounds == [1, 2]


async def test_weibao_notifications_lists_failures_with_their_reason(env, api, smtp, capsys):
    from api.cli import main

    tid, _ = await escalated_ticket_without_mail(env, api)
    assert main(["notifications", "--failed"]) == 0
    out = capsys.readouterr().out
    assert f"ticket-{tid}:on_site:breach:escalated" in out and "failed" in out and "email failed (" in out


async def escalated_ticket_without_mail(env, api) -> tuple[str, str]:
    """A breached ticket while the mail server is down: its escalation failed once."""
    tid = await api.report()
    await api.ok(tid, "triage", "S001", severity="critical", zone="A")
    state = await api.ok(tid, "dispatch", "S001", engineer="E001", travel_mode="taxi")
    await sleep_until(env, datetime.fromisoformat(state["reported_at"]) + 4 * H + MINUTE)
    notice = f"ticket-{tid}:on_site:breach:escalated"
    outbox = Outbox()
    try:
        await eventually(lambda: [a for a in outbox.attempts(notice) if a["status"] == "failed"],
                         "a failed attempt on record")
    finally:
        outbox.close()
    return tid, notice
