"""The floor this design stands on: a workflow whose Update handler runs one no-op
local activity and nothing else (kept free of import-time side effects: the
workflow sandbox re-imports this module). `indexed_step` also upserts one search
attribute, as each of weibao's recorded facts does (workflows/search.py): what the
visibility store's write adds to an Update, measured apart by bench/api_steps.py."""
from __future__ import annotations

from datetime import timedelta

from temporalio import activity, workflow
from temporalio.common import SearchAttributeKey

UPDATES = 7  # a ticket lifecycle: report, triage, dispatch, arrive, resolve, sign-off, close
STATUS = SearchAttributeKey.for_keyword("WeibaoStatus")  # one of weibao's, defined on the bench's dev server


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

    @workflow.update
    async def indexed_step(self, n: int) -> int:
        """`step`, then one search attribute upserted with a value it did not have."""
        count = await self.step(n)
        workflow.upsert_search_attributes([STATUS.value_set(f"step-{count}")])
        return count


