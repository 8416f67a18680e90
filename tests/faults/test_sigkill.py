"""SIGKILL, mid-load, of each process that keeps a fact: the worker (recording steps),
the API (answering them) and the projection runner (applying them), each restarted at
once as a supervisor would. 50 fault tickets through the real API over HTTP, each
command retried by its client with the same Idempotency-Key until answered.

Nothing acknowledged is lost, nothing is recorded twice, a retry answers the recorded
result, and every read model reaches the last event and equals a rebuild from zero."""
from __future__ import annotations

import asyncio
import time

from tests.faults.system import (COMMANDS_PER_TICKET, Load, System, assert_nothing_lost_or_doubled,
                                 assert_read_models_caught_up_by_themselves, assert_read_models_equal_a_rebuild)

TICKETS = 50


async def test_sigkill_of_the_worker_the_api_and_the_runner_mid_load_loses_and_doubles_nothing(
        system: System, tokens, store):
    app, models = store
    total = TICKETS * COMMANDS_PER_TICKET
    # each killed once the load has that many answers, with commands in flight
    plan = {total // 5: "worker", total * 2 // 5: "api", total * 3 // 5: "projections"}
    in_flight_at_kill: dict[str, int] = {}

    def kill_and_restart(name: str) -> None:
        system.kill(name)
        system.start(name)  # at once, without waiting for it to come up: the clients retry meanwhile

    async def on_progress(answered: int) -> None:
        if (name := plan.pop(answered, None)) is not None:
            in_flight_at_kill[name] = load.in_flight
            await asyncio.to_thread(kill_and_restart, name)

    load = Load(system.url, tokens, tickets=TICKETS, on_progress=on_progress)
    started = time.monotonic()
    await asyncio.wait_for(load(), timeout=100)  # a guard against a hang, not a timing
    elapsed = time.monotonic() - started

    assert not plan and dict(system.kills) == {"worker": 1, "api": 1, "projections": 1}
    assert all(n > 0 for n in in_flight_at_kill.values()), in_flight_at_kill  # each kill was mid-load
    figures = assert_nothing_lost_or_doubled(load, app)
    assert await load.replay() == []  # a retry with the same key answers the recorded result
    assert_read_models_caught_up_by_themselves(system, models, app, system.procs["projections"].pid)
    assert_read_models_equal_a_rebuild(system, models, app)
    print(f"\nfaults/sigkill: {TICKETS} tickets, {len(load.acks)} commands, {figures['events']} events in "
          f"{elapsed:.1f}s; killed {dict(system.kills)}; 5xx answers {load.answers_5xx()} and "
          f"{load.transport_errors} unanswered attempts, each retried")
