"""Escalations reach people (issue 14), through the real worker on the time-skipping server
and a real SMTP server (aiosmtpd): delivered once per target and channel with what was
missed and no contact phone; a channel down at the breach holds nothing up and delivers
once it is back; a channel failing for good gives up on record; an escalation is
acknowledged once, and sent once more when nobody acknowledges it in time."""
from datetime import timedelta

import pytest
from temporalio.service import RPCError, RPCStatusCode

from activities.delivery import Acknowledgement
from domain.policy import CST
from projections.runner import ReadModels, Runner
from projections.scorecard import engineer_scorecard
from tests.conftest import REPORT, dispatch, report, sleep_until
from tests.notify_fixtures import events, eventually, skip_until, smtp  # noqa: F401 (smtp is a fixture)
from workflows.delivery import DeliveryWorkflow, delivery_workflow_id

H = timedelta(hours=1)
MINUTE = timedelta(minutes=1)


async def test_a_breach_delivers_one_mail_per_target_with_what_was_missed_and_no_contact_phone(env, worker, stack, smtp):
    smtp.start()
    handle, state = await report(env.client, worker, "critical", "A")
    await dispatch(handle)
    await sleep_until(env, state.reported_at + 4 * H + MINUTE)
    tid = state.ticket_id
    sent = await eventually(lambda: [e for e in events(stack, tid, "NotificationSent")
                                     if e["data"]["to"] == "S001"], "the escalation to S001 was sent")
    assert sent[0]["data"]["channel"] == "email"
    mails = smtp.mailbox.to("wu.gang@example.com")  # S001, E001's direct superior
    assert len(mails) == 1
    mail = mails[0]
    assert tid in mail
    assert "上报直接上级" in mail and "on site" in mail.lower() and "(UTC+8)" in mail
    assert "/ack/" in mail
    assert REPORT["contact_phone"] not in mail and "0871" not in mail
    warned = await eventually(lambda: smtp.mailbox.to("wang.fang@example.com"), "E001's 75 % warning mailed")
    assert len(warned) == 1 and "/ack/" not in warned[0]  # a warning needs no acknowledgement
    notice = stack.outbox.notice(sent[0]["data"]["notice"])
    assert notice["status"] == "sent" and [a["status"] for a in notice["attempts"]] == ["sent"]


async def test_smtp_down_at_the_breach_holds_nothing_up_and_the_mail_arrives_once_it_is_back(env, worker, stack, smtp):
    handle, state = await report(env.client, worker, "critical", "A")
    await dispatch(handle)
    await sleep_until(env, state.reported_at + 4 * H + MINUTE)
    tid = state.ticket_id
    breach = (await eventually(lambda: events(stack, tid, "SlaBreached"), "the breach recorded"))[0]
    assert breach["at"] - state.deadlines["on_site"] < timedelta(seconds=5)  # on time, channel or not
    notice = f"ticket-{tid}:on_site:breach:escalated"
    failed = await eventually(lambda: [a for a in stack.outbox.attempts(notice) if a["status"] == "failed"],
                              "a failed attempt on record")
    assert failed[0]["reason"]
    smtp.start()
    await skip_until(env, lambda: events(stack, tid, "NotificationSent"), "sent once the server is back")
    assert len(smtp.mailbox.to("wu.gang@example.com")) == 1
    record = stack.outbox.notice(notice)
    assert record["status"] == "sent"
    # the first attempt (in the Delivery workflow's task) failed; the retries numbered after it
    attempts = [(a["attempt"], a["status"]) for a in record["attempts"]]
    assert attempts[0] == (1, "failed") and attempts[-1] == (len(attempts), "sent")
    assert [n for n, _ in attempts] == list(range(1, len(attempts) + 1))


async def test_a_channel_failing_for_good_gives_up_on_record_and_the_next_level_still_comes(
        env, worker, stack, smtp, monkeypatch):
    monkeypatch.setenv("WEIBAO_DELIVERY_ATTEMPTS", "2")
    handle, state = await report(env.client, worker, "critical", "A")
    await dispatch(handle)
    await sleep_until(env, state.reported_at + 4 * H + MINUTE)
    tid = state.ticket_id
    notice = f"ticket-{tid}:on_site:breach:escalated"
    # the relay starts the delivery just after the breach (in real time): its first attempt fails
    await eventually(lambda: stack.outbox.attempts(notice), "the first attempt on record")

    given_up = await skip_until(env, lambda: [e for e in events(stack, tid, "NotificationGivenUp")
                                              if e["data"]["to"] == "S001"], "delivery to S001 given up")
    assert given_up[0]["data"]["channel"] == "email" and given_up[0]["data"]["reason"]
    assert stack.outbox.notice(given_up[0]["data"]["notice"])["status"] == "given_up"
    await sleep_until(env, state.reported_at + 6 * H + MINUTE)  # leadership half a window later
    leadership = await eventually(lambda: [e for e in events(stack, tid, "Escalated") if e["data"]["level"] == 2],
                                  "the leadership escalation")
    assert leadership[0]["at"] - (state.deadlines["on_site"] + 2 * H) < timedelta(seconds=5)


async def test_an_escalation_is_acknowledged_once_and_sent_once_more_when_nobody_does(env, worker, stack, smtp):
    smtp.start()
    first, s1 = await report(env.client, worker, "critical", "A")
    await dispatch(first)
    await sleep_until(env, s1.reported_at + 4 * H + MINUTE)
    notice = f"ticket-{s1.ticket_id}:on_site:breach:escalated"
    await eventually(lambda: events(stack, s1.ticket_id, "NotificationSent"), "delivered")
    delivery = env.client.get_workflow_handle(delivery_workflow_id(notice))
    await env.sleep(30 * MINUTE)  # S001 reads it half an hour later
    ack = await delivery.execute_update(DeliveryWorkflow.acknowledge, Acknowledgement(by="S001", via="api"))
    assert ack.by == "S001" and ack.at is not None
    assert await delivery.result() == {"email": "sent"}  # acknowledged: the delivery is over
    with pytest.raises(RPCError) as e:  # so a second acknowledgement finds nothing to acknowledge
        await delivery.execute_update(DeliveryWorkflow.acknowledge, Acknowledgement(by="S001", via="link"))
    assert e.value.status == RPCStatusCode.NOT_FOUND
    acked = events(stack, s1.ticket_id, "EscalationAcknowledged")
    assert [(a["actor"], a["data"]["notice"]) for a in acked] == [("S001", notice)]
    state = stack.store.aggregate("ticket", s1.ticket_id).state
    assert state.notices[notice].acknowledged_by == "S001"
    # the time to acknowledge shows in S001's scorecard for the month
    models = ReadModels()
    try:
        Runner(stack.store, models, names=["engineer_scorecard"]).catch_up()
        month = ack.at.astimezone(CST).strftime("%Y-%m")
        row = next(r for r in engineer_scorecard(models.view("engineer_scorecard"), month) if r["engineer"] == "S001")
    finally:
        models.close()
    assert row["escalations_acknowledged"] == 1
    assert 30 <= row["minutes_to_acknowledge_median"] < 35
    assert row["acknowledgements"] == [{"ticket_id": s1.ticket_id, "versions": [acked[0]["version"]]}]

    await sleep_until(env, s1.reported_at + 6 * H + 2 * MINUTE)  # past ACK_WITHIN (2 h): no resend
    assert len(smtp.mailbox.to("wu.gang@example.com")) == 1

    # nobody acknowledges the next one: it is sent once more to the same target
    second, s2 = await report(env.client, worker, "critical", "A")
    await dispatch(second)
    await sleep_until(env, s2.reported_at + 4 * H + MINUTE)
    await eventually(lambda: events(stack, s2.ticket_id, "NotificationSent"), "delivered")
    await sleep_until(env, s2.reported_at + 6 * H + 2 * MINUTE)
    rounds = await eventually(lambda: [e["data"]["round"] for e in events(stack, s2.ticket_id, "NotificationSent")
                                       if e["data"]["to"] == "S001" and e["data"]["round"] == 2], "sent once more")
    assert rounds == [2]
    assert len([m for m in smtp.mailbox.to("wu.gang@example.com") if s2.ticket_id in m]) == 2
