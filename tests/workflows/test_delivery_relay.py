"""The delivery relay (activities/relay.py), on the time-skipping server with a real SMTP
server (aiosmtpd): an alarm leaves its delivery on record and starts nothing itself; a
relay that was not running then (a worker killed between the alarm and the start) starts
it when one runs, and it is delivered once; the relay holds deliveries back while alarms
are being raised, for a bounded time; the outbox keeps a delivery to start once, in the
notification's transaction, per task queue, and numbers attempts in the order made, on
SQLite and PostgreSQL."""
import uuid
from datetime import timedelta

import pytest
from temporalio.service import RPCError, RPCStatusCode

from activities import relay
from activities.outbox import Outbox
from tests.conftest import dispatch, end_started_workflows, report, sleep_until
from tests.notify_fixtures import events, eventually, smtp  # noqa: F401 (smtp is a fixture)
from workflows import search
from workflows.delivery import delivery_workflow_id
from worker import build_worker

H = timedelta(hours=1)


async def test_an_alarm_leaves_its_delivery_to_the_relay_which_starts_it_once_even_after_a_crash(env, stack, smtp):
    smtp.start()
    tq = f"tq-{uuid.uuid4()}"
    await search.register(env.client)
    workers = build_worker(env.client, stack, task_queue=tq)
    cases, deliveries = workers.workers
    try:
        async with cases, deliveries:  # a worker process whose relay never ran: killed after the alarm
            handle, state = await report(env.client, tq, "critical", "A")
            await dispatch(handle)
            await sleep_until(env, state.reported_at + 4 * H + timedelta(minutes=1))
            tid = state.ticket_id
            notice = f"ticket-{tid}:on_site:breach:escalated"
            await eventually(lambda: [e for e in events(stack, tid, "Escalated") if e["data"]["level"] == 1],
                             "the level-1 escalation recorded")
            pending = dict(stack.outbox.unstarted(tq))
            assert notice in pending and f"ticket-{tid}:on_site:warning" in pending
            assert '"to":"S001"' in pending[notice]  # the target raise_alarm resolved, filled in
            with pytest.raises(RPCError) as e:  # the alarm itself started nothing
                await env.client.get_workflow_handle(delivery_workflow_id(notice)).describe()
            assert e.value.status == RPCStatusCode.NOT_FOUND
            assert smtp.mailbox.to("wu.gang@example.com") == []

            async with workers.relay:  # a worker with its relay is back: it finds what was left
                # the escalation's own delivery (the engineer's warning goes out beside it)
                await eventually(lambda: [e for e in events(stack, tid, "NotificationSent")
                                          if e["data"]["notice"] == notice], "the escalation delivered by the relay")
                await eventually(lambda: smtp.mailbox.to("wu.gang@example.com"), "the escalation's mail received")
                await eventually(lambda: not stack.outbox.unstarted(tq), "every delivery marked started")
                assert await workers.relay.relay() is False  # looking again starts nothing twice
            assert len(smtp.mailbox.to("wu.gang@example.com")) == 1
            sent = [e for e in events(stack, tid, "NotificationSent") if e["data"]["notice"] == notice]
            assert len(sent) == 1
    finally:
        await end_started_workflows()


def test_the_relay_waits_for_a_pause_in_the_alarms_but_not_for_ever():
    woken = 100.0
    assert relay.ready(now=woken, last_alarm=woken - relay.QUIET, woken=woken)  # no alarm lately: at once
    assert not relay.ready(now=woken + 0.1, last_alarm=woken + 0.05, woken=woken)  # alarms still coming
    assert relay.ready(now=woken + relay.MAX_DEFER, last_alarm=woken + relay.MAX_DEFER - 0.01, woken=woken)


@pytest.mark.parametrize("kind", ["sqlite", "postgres"])
def test_a_delivery_to_start_is_kept_once_with_its_notification_and_read_per_task_queue(use_store, kind):
    use_store(kind)
    outbox = Outbox()
    try:
        outbox.add("n1", "ticket:t1", "S001", "Escalated", "late", start=("q1", '{"a": 1}'))
        outbox.add("n1", "ticket:t1", "S001", "Escalated", "late", start=("q1", '{"a": 2}'))  # raise_alarm again
        outbox.add("n2", "ticket:t2", "S001", "Escalated", "late", start=("q2", '{"b": 1}'))
        outbox.add("n3", "ticket:t3", "S001", "Escalated", "late")  # started by its case's workflow: not here
        assert outbox.unstarted("q1") == [("n1", '{"a": 1}')]
        assert outbox.notice("n1")["status"] == "pending"  # the notification is there with it
        outbox.started(["n1"])
        assert outbox.unstarted("q1") == [] and outbox.unstarted("q2") == [("n2", '{"b": 1}')]
        # attempts are numbered in the order made, whatever number the activity thought it was
        outbox.attempt("n1", "email", 1, "failed", "down")
        outbox.attempt("n1", "email", 1, "sent")
        outbox.attempt("n1", "email", 2, "sent")
        assert [(a["round"], a["attempt"], a["status"]) for a in outbox.attempts("n1")] == [
            (1, 1, "failed"), (1, 2, "sent"), (2, 1, "sent")]
    finally:
        outbox.close()
