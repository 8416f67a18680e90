"""The floor for escalation lag: a workflow that sleeps until a given instant and then
runs one local activity stamping the wall clock (kept free of import-time side effects:
the workflow sandbox re-imports this module)."""
from __future__ import annotations

import time
from datetime import datetime, timedelta

from temporalio import activity, workflow


@activity.defn(name="stamp")
def stamp() -> float:
    return time.time()


@workflow.defn(name="BareTimer")
class BareTimerWorkflow:
    @workflow.run
    async def run(self, at: datetime) -> float:
        delay = at - workflow.now()
        if delay > timedelta(0):
            await workflow.sleep(delay)
        return await workflow.execute_local_activity(stamp, start_to_close_timeout=timedelta(seconds=30))
