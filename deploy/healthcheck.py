"""Container healthchecks of the weibao image (deploy/compose.yaml), one per service:

    python deploy/healthcheck.py worker        this container's worker polls its two task queues
    python deploy/healthcheck.py api           the API answers GET /openapi.json with 200

(the projection runner's is `weibao projections status`: its read models and the event
store answer). Exit status 0 when healthy, 1 with one line on stderr when not. The
worker's check connects as the worker does (activities.temporal.connect: the same
address, namespace, TLS and API key) and looks, on the cases' queue and on the
deliveries' (`<queue>-delivery`), for a poller whose identity is this container's: the
Temporal SDK names a worker `<pid>@<hostname>`."""
from __future__ import annotations

import asyncio
import os
import socket
import sys
import urllib.request
from datetime import datetime, timedelta, timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

RECENT = timedelta(minutes=2)  # a poller seen this recently is polling now (Temporal keeps 5 min)


async def worker() -> str | None:
    from temporalio.api.enums.v1 import TaskQueueType
    from temporalio.api.taskqueue.v1 import TaskQueue
    from temporalio.api.workflowservice.v1 import DescribeTaskQueueRequest

    from activities import config
    from activities.delivery import delivery_queue
    from activities.temporal import connect

    client = await asyncio.wait_for(connect(), timeout=10)
    me, now = f"@{socket.gethostname()}", datetime.now(timezone.utc)
    for queue in (config.task_queue(), delivery_queue(config.task_queue())):
        answer = await client.workflow_service.describe_task_queue(DescribeTaskQueueRequest(
            namespace=client.namespace, task_queue=TaskQueue(name=queue),
            task_queue_type=TaskQueueType.TASK_QUEUE_TYPE_WORKFLOW), timeout=timedelta(seconds=10))
        if not any(p.identity.endswith(me) and now - p.last_access_time.ToDatetime(timezone.utc) < RECENT
                   for p in answer.pollers):
            return f"no worker of this host ({me}) polls task queue {queue!r}"
    return None


def api() -> str | None:
    from activities import config

    port = config.settings().api_port
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/openapi.json", timeout=5) as answer:
        return None if answer.status == 200 else f"GET /openapi.json answered {answer.status}"


def main(argv: list[str]) -> int:
    if argv not in (["worker"], ["api"]):
        print("usage: healthcheck.py worker|api", file=sys.stderr)
        return 2
    try:
        problem = asyncio.run(worker()) if argv == ["worker"] else api()
    except Exception as e:  # unreachable, refused, timed out: unhealthy, said in one line
        problem = f"{type(e).__name__}: {e}".splitlines()[0]
    if problem:
        print(f"unhealthy: {problem}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    status = main(sys.argv[1:])
    sys.stderr.flush()
    # os._exit, not sys.exit: the Temporal SDK's runtime threads may still call into Python
    # while the interpreter finalises, which aborts it (SIGABRT) now and then, turning a
    # healthy answer into an unhealthy one; a probe has nothing to clean up
    os._exit(status)
