"""An operator finds cases by their search attributes on the dev server that `make run`
starts (its `--search-attribute` flags), with the client and with the README's
`temporal workflow list --query` command."""
from __future__ import annotations

import asyncio
import subprocess
import uuid

from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter

from activities import config
from bench.common import dev_server
from tests.conftest import dispatch, report, running_worker
from workflows import search


async def ids_matching(client: Client, query: str, expected: set[str], seconds: float = 30.0) -> set[str]:
    """The workflow ids `query` lists, once it lists `expected` (visibility trails the
    upsert by a moment) or the time is up."""
    found: set[str] = set()
    for _ in range(int(seconds / 0.2)):
        found = {w.id async for w in client.list_workflows(query)}
        if found >= expected:
            return found
        await asyncio.sleep(0.2)
    return found


async def test_breached_or_dispatched_tickets_of_one_customer_are_found_by_query(stack):
    with dev_server() as (address, _):
        client = await Client.connect(address, data_converter=pydantic_data_converter)
        assert await search.register(client) == []  # the dev server was started with them all
        queue = f"tq-{uuid.uuid4()}"
        async with running_worker(client, stack, queue):
            ours, _ = await report(client, queue, "general", "A", customer="Qujing Second Hospital")
            await dispatch(ours, "general", "A", engineer="E001")
            theirs, _ = await report(client, queue, "general", "A", customer="Yuxi People's Hospital")
            await dispatch(theirs, "general", "A", engineer="E001")
            waiting, _ = await report(client, queue, "general", "A", customer="Qujing Second Hospital")
            query = 'WeibaoCustomer="Qujing Second Hospital" AND WeibaoStatus="dispatched" AND WeibaoBreached=false'
            assert await ids_matching(client, query, {ours.id}) == {ours.id}
            by_assignee = await ids_matching(client, 'WeibaoAssignee="E001" AND WeibaoKind="ticket"',
                                             {ours.id, theirs.id})
            assert by_assignee == {ours.id, theirs.id}  # not the one still waiting for triage
            cli = subprocess.run([config.binary("temporal"), "workflow", "list", "--address", address,
                                  "--query", query, "--output", "json"], capture_output=True, text=True, timeout=60)
            assert cli.returncode == 0, cli.stderr
            assert ours.id in cli.stdout and theirs.id not in cli.stdout and waiting.id not in cli.stdout
            for handle in (ours, theirs, waiting):
                await handle.terminate("test over")
