"""The delivery relay (activities/relay.py), on the time-skipping server with a real SMTP
server (aiosmtpd): an alarm leaves its delivery on record and starts nothing itself; a
relay that was not running then (a worker killed between the alarm and the start) starts
it when one runs, and it is delivered once; the relay holds deliveries back while alarms
are being raised, for a bounded time; it sends the first round itself before the workflow
starts, and of two relays looking at once only one sends it; a delivery claimed by a relay
that died is delivered once by its workflow after the claim lapses; the outbox keeps a
delivery to start once, in the notification's transaction, per task queue, claimed by one
relay at a time, and numbers attempts in the order made, on SQLite and PostgreSQL."""
import asyncio
import sqlite3
import uuid
from contextlib import asynccontextmanager
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


@asynccontextmanager
async def an_escalation_waiting(env, stack, smtp):
    """A worker process whose relay is not running, and a critical ticket on its queue past
    its on-site deadline: yields (the workers, the task queue, the ticket id, the level-1
    escalation's notice), its delivery left to start."""
    smtp.start()
    tq = f"tq-{uuid.uuid4()}"
    await search.register(env.client)
    workers = build_worker(env.client, stack, task_queue=tq)
    cases, deliveries = workers.workers
    try:
        async with cases, deliveries:
            handle, state = await report(env.client, tq, "critical", "A")
            await dispatch(handle)
            await sleep_until(env, state.reported_at + 4 * H + timedelta(minutes=1))
            notice = f"ticket-{state.ticket_id}:on_site:breach:escalated"
            await eventually(lambda: notice in dict(stack.outbox.unstarted(tq)),
                             "the escalation's delivery left to start")
            yield workers, tq, state.ticket_id, notice
    finally:
        await end_started_workflows()


async def test_an_alarm_leaves_its_delivery_to_the_relay_which_starts_it_once_even_after_a_crash(env, stack, smtp):
    # a worker process whose relay never ran: killed after the alarm
    async with an_escalation_waiting(env, stack, smtp) as (workers, tq, tid, notice):
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


async def test_the_relay_sends_the_first_round_itself_and_of_two_relays_only_one_sends_it(env, stack, smtp,
                                                                                          monkeypatch):
    """Two worker processes' relays on one queue look at once, and neither can start a
    workflow: each delivery is claimed by one of them and its first round mailed once, by
    the relay; the deliveries stay to start. Once starts work, the workflow finds the round
    sent and records `NotificationSent` without sending it again."""
    async with an_escalation_waiting(env, stack, smtp) as (workers, tq, tid, notice):
        waiting = sorted(n for n, _ in stack.outbox.unstarted(tq))
        assert len(waiting) >= 2  # the engineer's warning too

        async def cannot_start(*args, **kwargs):
            raise RuntimeError("the Temporal server is unreachable")

        start_delivery = relay.start_delivery
        monkeypatch.setattr(relay, "start_delivery", cannot_start)
        one, other = relay.DeliveryRelay(env.client, stack, tq), relay.DeliveryRelay(env.client, stack, tq)
        await asyncio.gather(one.relay(), other.relay())
        await asyncio.gather(one.settle(), other.settle())
        assert len(smtp.mailbox.to("wu.gang@example.com")) == 1  # sent by a relay, once
        for n in waiting:
            assert [a["status"] for a in stack.outbox.attempts(n)] == ["sent"]
        assert sorted(n for n, _ in stack.outbox.unstarted(tq)) == waiting  # none started
        with pytest.raises(RPCError):
            await env.client.get_workflow_handle(delivery_workflow_id(notice)).describe()

        monkeypatch.setattr(relay, "start_delivery", start_delivery)  # back; the failed starts gave their claims back
        await one.relay()
        await one.settle()
        assert stack.outbox.unstarted(tq) == []
        await eventually(lambda: [e for e in events(stack, tid, "NotificationSent") if e["data"]["notice"] == notice],
                         "the workflow records the relay's send")
        assert len(smtp.mailbox.to("wu.gang@example.com")) == 1  # and did not send it again
        assert [a["status"] for a in stack.outbox.attempts(notice)] == ["sent"]


async def test_a_delivery_claimed_by_a_relay_that_died_is_delivered_once_by_its_workflow(env, stack, smtp,
                                                                                           monkeypatch):
    """A relay that claimed a delivery and died before starting it: once the claim lapses
    the next relay starts it without sending it itself (it is no longer fresh), and the
    Delivery workflow sends it, once."""
    async with an_escalation_waiting(env, stack, smtp) as (_, tq, tid, notice):
        claimed = [row[0] for row in stack.outbox.claim(tq, lease=3600)]  # a relay that then died
        assert notice in claimed
        later = relay.DeliveryRelay(env.client, stack, tq)
        await later.relay()
        await later.settle()
        assert notice in dict(stack.outbox.unstarted(tq))  # the claim holds: not taken from under it
        monkeypatch.setattr(relay, "lease", lambda timeout: 0.0)  # ... until it lapses
        monkeypatch.setattr(relay, "FRESH", 0.0)  # by then the delivery is no longer fresh
        await later.relay()
        await later.settle()
        assert stack.outbox.unstarted(tq) == []
        await eventually(lambda: [e for e in events(stack, tid, "NotificationSent") if e["data"]["notice"] == notice],
                         "delivered by its workflow")
        assert len(smtp.mailbox.to("wu.gang@example.com")) == 1
        assert [a["status"] for a in stack.outbox.attempts(notice)] == ["sent"]


@pytest.mark.parametrize("kind", ["sqlite", "postgres"])
def test_a_delivery_is_claimed_by_one_relay_until_the_claim_lapses_or_is_released(use_store, kind):
    use_store(kind)
    outbox = Outbox()
    try:
        q = f"q-{uuid.uuid4()}"
        outbox.add("c1", "ticket:t1", "S001", "Escalated", "late", start=(q, '{"a": 1}'))
        outbox.add("c2", "ticket:t2", "S001", "Escalated", "late", start=(q, '{"b": 1}'))
        first = outbox.claim(q, lease=60)
        assert [(n, r) for n, r, _ in first] == [("c1", '{"a": 1}'), ("c2", '{"b": 1}')]
        assert outbox.claim(q, lease=60) == []  # claimed: not twice within the lease
        assert [n for n, _ in outbox.unstarted(q)] == ["c1", "c2"]  # still to start
        outbox.release(["c2"])
        assert [n for n, _, _ in outbox.claim(q, lease=60)] == ["c2"]  # given back: at once
        outbox.started(["c1"])
        assert [n for n, _, _ in outbox.claim(q, lease=0)] == ["c2"]  # lapsed; a started one never again
    finally:
        outbox.close()


def test_a_delivery_table_made_before_claims_gets_its_column(use_store):
    use_store("sqlite")
    from activities import config
    with sqlite3.connect(config.sqlite_file()) as conn:  # the table as the relay's first version made it
        conn.execute("CREATE TABLE delivery_starts (notice TEXT PRIMARY KEY, task_queue TEXT, request TEXT, "
                     "created_at TEXT, started_at TEXT)")
        conn.execute("INSERT INTO delivery_starts VALUES ('old', 'q', '{}', '2026-12-01T00:00:00+00:00', NULL)")
    outbox = Outbox()
    try:
        assert [n for n, _, _ in outbox.claim("q")] == ["old"]
        outbox.add("new", "ticket:t1", "S001", "Escalated", "late", start=("q", "{}"))
        assert [n for n, _ in outbox.unstarted("q")] == ["old", "new"]
    finally:
        outbox.close()
