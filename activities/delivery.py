"""The delivery activities of a warning or an escalation (workflows/delivery.py), each a
few lines: the message and the channels are decided in domain/ and activities/deliver.py.

- `plan` (local): the target's channels (their preference, only those configured), the
  message in Chinese and English with its acknowledgement link, and the retry budget.
- `deliver` (regular, retried with backoff): one channel, one round. Every attempt is
  written to `notification_attempts`; a round already sent is not sent again (a retry
  after a crash between the send and the answer).

Acknowledgement links carry a signed, expiring token (itsdangerous) naming the notice and
its target; the Delivery workflow accepts one acknowledgement, so a link works once."""
from __future__ import annotations

import functools
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from itsdangerous import BadSignature, SignatureExpired, URLSafeTimedSerializer
from pydantic import BaseModel
from temporalio import activity
from temporalio.client import Client
from temporalio.common import WorkflowIDReusePolicy
from temporalio.exceptions import ApplicationError, WorkflowAlreadyStartedError

from activities.outbox import Outbox
from domain.org import Org

if TYPE_CHECKING:
    from activities import deliver
    from activities.settings import Settings


class DeliveryRequest(BaseModel):
    notice: str  # the command id of the fact it announces
    kind: str  # the case kind
    case_id: str
    event: str  # SlaWarned | Escalated | CustomerEscalated | LeadershipNotified
    to: str  # staff id
    to_name: str = ""
    level: int = 0
    goal: str | None = None
    deadline: datetime | None = None
    responsible: str | None = None
    reason: str = ""
    customer: str | None = None
    site: str | None = None
    raised_at: datetime
    first_round: int = 1  # a manager's re-send starts after the rounds already on record
    plan: "DeliveryPlan | None" = None  # made by `start_delivery`; without it the workflow makes it
    # the first attempt in the workflow's own task (a local activity), the retries regular; False
    # in the requests of deliveries started before, which send every attempt as a regular activity
    # (a flag in the input rather than a patch: a patch marker upserts a search attribute, one
    # more write for the server in every delivery)
    first_send_in_task: bool = False

    @property
    def needs_ack(self) -> bool:
        return self.event != "SlaWarned"


class DeliveryPlan(BaseModel):
    channels: list[str]
    title: str
    body: str
    attempts: int  # per channel and round, the first included
    first_retry: timedelta
    longest_retry: timedelta
    resend_after: timedelta  # not acknowledged by then: sent once more
    ack_horizon: timedelta  # how long the link works


DeliveryRequest.model_rebuild()


class StartDelivery(BaseModel):
    task_queue: str
    request: DeliveryRequest


class ChannelDelivery(BaseModel):
    notice: str
    channel: str
    round: int
    to: str
    title: str
    body: str
    attempts: int = 0  # the budget: the attempt with this number is the last
    first_attempt: int = 1  # the number of this activity's first attempt (2: the first was sent in the task)

    @classmethod
    def of(cls, req: DeliveryRequest, plan: DeliveryPlan, channel: str, round_: int) -> "ChannelDelivery":
        """`req`'s round `round_` on `channel`, with its plan's message and budget."""
        return cls(notice=req.notice, channel=channel, round=round_, to=req.to, title=plan.title, body=plan.body,
                   attempts=plan.attempts)


class Acknowledgement(BaseModel):
    by: str
    via: str = "api"  # "link" | "api"
    at: datetime | None = None


def delivery_workflow_id(notice: str) -> str:
    return f"delivery-{notice}"


def delivery_queue(task_queue: str) -> str:
    """The task queue of the deliveries of the cases on `task_queue`: served by a worker of
    its own in each worker process (worker.build_worker), so that the sends, the slots they
    hold and their workflow tasks never take an alarm's."""
    return f"{task_queue}-delivery"


def budget(s: "Settings | None" = None) -> dict[str, Any]:
    """The retry budget and acknowledgement times (README "Notifications")."""
    from activities import config
    from activities.settings import duration

    s = s or config.settings()
    return {"attempts": s.delivery_attempts, "first_retry": duration(s.delivery_first_retry),
            "longest_retry": duration(s.delivery_longest_retry), "resend_after": duration(s.ack_within),
            "ack_horizon": duration(s.ack_link_ttl)}


# --- acknowledgement tokens --------------------------------------------------------------

def _serializer() -> URLSafeTimedSerializer:
    from activities import config
    return _serializer_for(config.secret_key())


@functools.lru_cache(maxsize=4)
def _serializer_for(key: str) -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(key, salt="weibao-escalation-ack")


def ack_token(notice: str, to: str) -> str:
    return _serializer().dumps({"n": notice, "t": to})


class BadToken(ValueError):
    """The acknowledgement link is forged, damaged or expired; the message says which."""


def read_ack_token(token: str, max_age: timedelta) -> tuple[str, str]:
    """(notice, target) of a valid token; BadToken otherwise."""
    try:
        payload = _serializer().loads(token, max_age=int(max_age.total_seconds()))
    except SignatureExpired:
        raise BadToken("the acknowledgement link has expired") from None
    except BadSignature:
        raise BadToken("the acknowledgement link is not valid") from None
    return payload["n"], payload["t"]


def make_plan(org: Org, req: DeliveryRequest) -> DeliveryPlan:
    """The target's channels (their preference, only those configured), the message in
    Chinese and English with its acknowledgement link, and the retry budget."""
    from activities import config, deliver
    from domain import notices

    s = config.settings()  # once: each call reads the environment
    staff = org.get(req.to)
    responsible = org.get(req.responsible)
    channels = deliver.channels_for(staff, s) if staff else []
    link = f"{config.public_url(s)}/ack/{ack_token(req.notice, req.to)}" if req.needs_ack else None
    title, body = notices.render(
        kind=req.kind, case_id=req.case_id, customer=req.customer, site=req.site, goal=req.goal,
        deadline=req.deadline, responsible=req.responsible, responsible_name=responsible.name if responsible else None,
        level=req.level, event=req.event, reason=req.reason, ack_url=link)
    return DeliveryPlan(channels=channels, title=title, body=body, **budget(s))


def attempt_round(org: Org, outbox: Outbox, job: ChannelDelivery, settings: "Settings", *,
                  last: bool) -> "deliver.Outcome | None":
    """One attempt to send `job`'s round on its channel, on record in `notification_attempts`
    (given up when it failed for good or was the `last` of the budget); None, and nothing
    sent, when the round is on record as sent already: by the relay (activities/relay.py),
    or by an attempt that crashed before it could answer."""
    from activities import deliver

    if outbox.sent(job.notice, job.channel, job.round):
        return None
    outcome = deliver.send(job.channel, org.get(job.to), job.title, job.body, settings,
                           data={"notice": job.notice, "round": job.round})
    status = "sent" if outcome.sent else "given_up" if (outcome.permanent or last) else "failed"
    outbox.attempt(job.notice, job.channel, job.round, status, "" if outcome.sent else outcome.reason)
    return outcome


# --- activities -----------------------------------------------------------------------------

class Deliveries:
    def __init__(self, org: Org, outbox: Outbox):
        self.org, self.outbox = org, outbox

    @activity.defn(name="delivery_plan")
    def plan(self, req: DeliveryRequest) -> DeliveryPlan:
        return make_plan(self.org, req)

    @activity.defn(name="deliver")
    def deliver(self, job: ChannelDelivery) -> str:
        from activities import config

        attempt = activity.info().attempt + job.first_attempt - 1
        outcome = attempt_round(self.org, self.outbox, job, config.settings(), last=0 < job.attempts <= attempt)
        if outcome is None or outcome.sent:  # None: sent before (by the relay, or an attempt that crashed after)
            return "sent"
        raise ApplicationError(f"{job.channel}: {outcome.reason}", type="Undeliverable" if outcome.permanent
                               else "DeliveryFailed", non_retryable=outcome.permanent)

    def all(self) -> list:
        return [self.plan, self.deliver]


async def start_delivery(client: Client, org: Org, request: DeliveryRequest, task_queue: str) -> str:
    """Start the delivery of `request` (its plan made here if it has none) for the cases on
    `task_queue`, once: a second start of the same notice is a no-op. Its workflow id."""
    workflow_id = delivery_workflow_id(request.notice)
    request = request.model_copy(update={"plan": request.plan or make_plan(org, request), "first_send_in_task": True})
    try:
        await client.start_workflow("Delivery", request, id=workflow_id, task_queue=delivery_queue(task_queue),
                                    request_eager_start=True, id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE)
    except WorkflowAlreadyStartedError:
        pass  # started before (an earlier attempt, another worker's relay)
    return workflow_id


class DeliveryStarter:
    """Starts a notification's Delivery workflow on its own (not as a child: it outlives
    the case, and nothing in the case waits for it); once, however often it is retried.

    The plan goes with the request, and the start is eager (`request_eager_start`): the
    server hands the workflow's first task back with the start to this process's delivery
    worker (worker.build_worker), which sends the first mail in it, so a delivery costs
    the server a start and one completed task instead of a start, three tasks and their
    dispatch (bench/escalation_lag.py: mail p99 11.2 -> 8.3 s). It takes none of the
    cases' workflow-task slots: the delivery worker has its own (an eager start when they
    are all busy waits in the server's queue as before). Before the deliveries had a queue
    of their own, an eager start ran their first tasks ahead of the alarms still due in
    the same burst (breach p99 9.4 s with it, 5.5 s without)."""

    def __init__(self, client: Client, org: Org):
        self.client, self.org = client, org

    @activity.defn(name="start_delivery")
    async def start_delivery(self, start: StartDelivery) -> str:
        return await start_delivery(self.client, self.org, start.request, start.task_queue)

    def all(self) -> list:
        return [self.start_delivery]
