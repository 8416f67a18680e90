"""The floor this design stands on: a workflow whose Update handler runs one no-op
local activity and nothing else (kept free of import-time side effects: the
workflow sandbox re-imports this module)."""
from __future__ import annotations

from datetime import timedelta

from temporalio import activity, workflow

UPDATES = 7  # a ticket lifecycle: report, triage, dispatch, arrive, resolve, sign-off, close


@activity.defn(name="noop")
def noop() -> None:
    return None


@workflow.defn(name="Bare")
class BareWorkflow:
    def __init__(self) -> None:
        self.count = 0

    @workflow.run
    async def run(self) -> int:
        await workflow.wait_condition(lambda: self.count >= UPDATES)
        await workflow.wait_condition(workflow.all_handlers_finished)
        return self.count

    @workflow.update
    async def step(self, n: int) -> int:
        await workflow.execute_local_activity(noop, start_to_close_timeout=timedelta(seconds=30))
        self.count += 1
        return self.count

    @step.validator
    def _validate(self, n: int) -> None:
        if n < 0:
            raise ValueError("n")


