"""DeliveryWorkflow: one warning or escalation delivered to its target and, for an
escalation, acknowledged (§九.A.2, §九.C.2: every report and complaint is followed up).

Started once the fact is recorded, by the delivery relay (activities/relay.py) from what the
alarm left in the outbox, after the relay has sent its first round itself (the first
attempt here then finds it on record as sent and sends nothing) (or, in case runs from before the relay, by the case's workflow
through the `start_delivery` local activity), on the deliveries' own task queue, so
delivery holds nothing up: a channel down for an hour delays no alarm, no step and no
other case, and a case that closes while a delivery retries still delivers it.

- The plan (the target's channels from the org file and configuration, the message in
  Chinese and English with its acknowledgement link, the retry budget): made by
  `start_delivery` and carried in the request, else by a local activity here.
- Each channel is sent by the `deliver` activity with exponential backoff up to the
  budget; each attempt is on record (`notification_attempts`), and the outcome is a fact
  on the case: `NotificationSent`, or `NotificationGivenUp` with the last reason.
- An escalation waits for its acknowledgement (the `acknowledge` Update, from the link or
  `POST /escalations/{id}/ack`), which records `EscalationAcknowledged` on the case. Not
  acknowledged within the configured time, it is sent once more to the same target; the
  case's next level is never held back by it (its own timer runs in the case's workflow)."""
from __future__ import annotations

import asyncio
from datetime import datetime, timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError, ApplicationError

with workflow.unsafe.imports_passed_through():
    # delivery_workflow_id is defined beside the starter and imported from here by the API too
    from activities.delivery import (Acknowledgement, ChannelDelivery, Deliveries, DeliveryPlan, DeliveryRequest,
                                     delivery_workflow_id)
    from activities.record import Recorded, RecordFact, Recorder
    from workflows.casework import LOCAL, SYSTEM, CaseRecord, RecordedVersion


SEND = timedelta(seconds=30)  # one attempt on one channel (the channel's own timeout is WEIBAO_NOTIFY_TIMEOUT)


def reason_of(e: ActivityError | ApplicationError) -> tuple[str, bool]:
    """Why a send failed, and whether for good (`Undeliverable`)."""
    cause = e.cause if isinstance(e, ActivityError) else e
    if isinstance(cause, ApplicationError):
        return cause.message, cause.type == "Undeliverable"
    return str(cause or e), False


# Not in the sandbox: every notification starts a Delivery workflow, and a sandboxed one
# re-imports its modules into a fresh sandbox for each (about 9 ms of the worker's CPU in
# bench/escalation_lag.py's burst of 600, with the mails waiting behind it: mail p99 15.5 s
# -> 10.9 s). What the sandbox would catch cannot happen here: the code reads time only as
# `workflow.now()`, makes no ids or random numbers, does no I/O outside activities, and
# imports only what passes through anyway; the replay tests (tests/workflows/
# test_delivery_replay.py) hold its recorded histories.
@workflow.defn(name="Delivery", sandboxed=False)
class DeliveryWorkflow:
    @workflow.init
    def __init__(self, req: DeliveryRequest) -> None:
        self.req = req
        self.acknowledged: Acknowledgement | None = None
        self.lock = asyncio.Lock()
        self.plan: DeliveryPlan | None = None
        self.record_log = CaseRecord()  # what this delivery recorded on its case (the `recorded` query)
        self.rounds = req.first_round + 1  # the last round a re-send may have used

    @workflow.run
    async def run(self, req: DeliveryRequest) -> dict[str, str]:
        # the plan comes with the request (`start_delivery` makes it); a request without one
        # (a manager's re-send, a delivery started before it came along) makes it here
        plan: DeliveryPlan = req.plan or await workflow.execute_local_activity_method(Deliveries.plan, req, **LOCAL)
        self.plan = plan
        outcome = await self._send_all(plan, req.first_round)
        if req.needs_ack and plan.channels:
            try:
                await workflow.wait_condition(lambda: self.acknowledged is not None, timeout=plan.resend_after)
            except asyncio.TimeoutError:  # not acknowledged in time: once more, to the same target
                outcome = await self._send_all(plan, req.first_round + 1)
                try:
                    await workflow.wait_condition(lambda: self.acknowledged is not None,
                                                  timeout=max(plan.ack_horizon - plan.resend_after, timedelta(0)))
                except asyncio.TimeoutError:
                    pass  # the link has expired: nothing more to wait for
        await workflow.wait_condition(workflow.all_handlers_finished)
        return outcome

    async def _send_all(self, plan: DeliveryPlan, round_: int) -> dict[str, str]:
        results = await asyncio.gather(*(self._send(plan, channel, round_) for channel in plan.channels))
        return dict(zip(plan.channels, results))

    async def _send(self, plan: DeliveryPlan, channel: str, round_: int) -> str:
        job = ChannelDelivery.of(self.req, plan, channel, round_)
        try:
            if self.req.first_send_in_task:
                await self._send_first_in_task(plan, job)
            else:
                await workflow.execute_activity_method(Deliveries.deliver, job, start_to_close_timeout=SEND,
                                                       retry_policy=self._retry(plan, plan.first_retry, plan.attempts))
        except (ActivityError, ApplicationError) as e:
            reason = reason_of(e)[0]
            await self._record("NotificationGivenUp", {"channel": channel, "round": round_, "reason": reason[:500]},
                               SYSTEM, f"given-up:{channel}:{round_}")
            return "given_up"
        await self._record("NotificationSent", {"channel": channel, "round": round_}, SYSTEM, f"sent:{channel}:{round_}")
        return "sent"

    @staticmethod
    def _retry(plan: DeliveryPlan, first: timedelta, attempts: int) -> RetryPolicy:
        return RetryPolicy(initial_interval=first, backoff_coefficient=2.0,
                           maximum_interval=max(plan.longest_retry, first), maximum_attempts=attempts,
                           non_retryable_error_types=["Undeliverable"])

    async def _send_first_in_task(self, plan: DeliveryPlan, job: ChannelDelivery) -> None:
        """The first attempt as a local activity in the workflow's task; the rest of the
        budget, if it fails, as the regular activity, on the same backoff: first_retry after
        it, then twice as long each time up to longest_retry. (The first send used to be a
        regular activity too: a workflow task, an activity task and another workflow task on
        the server for every mail, the same work an alarm costs it several times over.)"""
        try:
            await workflow.execute_local_activity_method(Deliveries.deliver, job, start_to_close_timeout=SEND,
                                                         retry_policy=RetryPolicy(maximum_attempts=1))
            return
        except (ActivityError, ApplicationError) as e:  # a local activity's own error may come unwrapped
            if reason_of(e)[1] or plan.attempts <= 1:
                raise
        await workflow.sleep(plan.first_retry)
        await workflow.execute_activity_method(
            Deliveries.deliver, job.model_copy(update={"first_attempt": 2}), start_to_close_timeout=SEND,
            retry_policy=self._retry(plan, min(plan.first_retry * 2, plan.longest_retry), plan.attempts - 1))

    @workflow.update
    async def acknowledge(self, ack: Acknowledgement) -> Acknowledgement:
        async with self.lock:
            self._reject_if_acknowledged(ack)
            await self._record("EscalationAcknowledged", {"by": ack.by, "via": ack.via, "level": self.req.level,
                                                          "raised_at": self.req.raised_at.isoformat()},
                               ack.by, "acknowledged")
            self.acknowledged = ack.model_copy(update={"at": workflow.now()})
        return self.acknowledged

    @acknowledge.validator
    def _validate_acknowledge(self, ack: Acknowledgement) -> None:
        self._reject_if_acknowledged(ack)
        if not self.req.needs_ack:
            raise ApplicationError("a warning needs no acknowledgement", type="NotAcknowledgeable")

    def _reject_if_acknowledged(self, ack: Acknowledgement) -> None:
        if self.acknowledged is not None:
            raise ApplicationError(f"already acknowledged by {self.acknowledged.by} at "
                                   f"{self.acknowledged.at.isoformat() if self.acknowledged.at else ''}",
                                   type="AlreadyAcknowledged")

    @workflow.update
    async def resend(self, by: str) -> dict[str, str]:
        """A manager's re-send while the delivery still runs: one more round on every channel."""
        await workflow.wait_condition(lambda: self.plan is not None)
        self.rounds += 1
        return await self._send_all(self.plan, self.rounds)

    @workflow.query
    def status(self) -> Acknowledgement | None:
        return self.acknowledged

    async def _record(self, event_type: str, data: dict, actor: str, key: str) -> None:
        r = self.req
        fact = RecordFact(kind=r.kind, case_id=r.case_id, command_id=f"{r.notice}:{key}", event_type=event_type,
                          at=workflow.now(), actor=actor, data={"notice": r.notice, "to": r.to, **data})
        recorded = await workflow.execute_local_activity_method(Recorder.record_case, fact, **LOCAL)
        if isinstance(recorded, Recorded):
            self.record_log.facts.append(RecordedVersion(version=recorded.version, hash=recorded.hash))

    @workflow.query
    def recorded(self) -> CaseRecord:
        """The versions (and hashes) this delivery recorded on its case: its notification
        facts, for the case's evidence check beside the case workflow's own record."""
        return self.record_log
