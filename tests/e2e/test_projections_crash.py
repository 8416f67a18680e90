"""The projection runner (`python -m projections`, a real subprocess) killed with
SIGKILL mid-stream, again and again, while events keep arriving: once restarted and
caught up, every read model equals a rebuild from zero — nothing counted twice,
nothing missed. SQLite and PostgreSQL."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest

from activities import config
from activities.store import open_store
from bench.projections import append_events
from projections import escalations, faults, ticket_list
from projections.runner import ReadModels, Runner
from tests.projection_fixtures import snapshot

RUNNER = [sys.executable, "-m", "projections", "--batch-size", "20", "--workers", "2", "--poll", "0.1"]


def start_runner() -> subprocess.Popen:
    return subprocess.Popen(RUNNER, cwd=str(config.ROOT), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def wait_for(predicate, seconds: float = 60.0, proc: subprocess.Popen | None = None):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        if proc is not None and proc.poll() is not None:
            raise AssertionError(f"the runner exited with {proc.returncode}: {proc.stderr.read().decode()[-2000:]}")
        time.sleep(0.02)
    raise AssertionError("timed out")


@pytest.mark.parametrize("kind", ["sqlite", "postgres"])
def test_runner_killed_with_sigkill_mid_stream_counts_nothing_twice_and_misses_nothing(use_store, kind):
    use_store(kind)
    app = open_store()
    appended = append_events(app, 3000, active=100)
    models = ReadModels()
    head = lambda: app.recorder.max_notification_id() or 0  # noqa: E731

    killed_behind = 0
    for round_ in range(3):
        before = min(p or 0 for p in models.positions().values())
        proc = start_runner()
        # let it get well into the stream, then kill it without warning
        wait_for(lambda: min(p or 0 for p in models.positions().values()) >= before + 300, proc=proc)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
        positions = models.positions()
        killed_behind += any((p or 0) < head() for p in positions.values())
        appended += append_events(app, 400, active=40, seed=100 + round_, prefix=f"R{round_}-")  # the store moves on meanwhile

    assert killed_behind, "every kill landed after the runner had caught up: nothing was proven"
    proc = start_runner()
    wait_for(lambda: set(models.positions().values()) == {head()}, proc=proc)
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=20) == 0
    survived = snapshot(models)

    # Counted straight from the store: one row per ticket, per warning or escalation, per resolution.
    events = app.recorder.select_notifications(start=0, limit=1_000_000, inclusive_of_start=False)
    topics = [n.topic.rsplit(".", 1)[-1] for n in events]
    assert len(events) == appended
    assert len(ticket_list.list_tickets(limit=1000, view=models.view("ticket_list"))) == topics.count("Reported")
    assert len(escalations.escalation_log(models.view("escalation_log"))) == \
        topics.count("SlaWarned") + topics.count("Escalated")
    assert len(faults.search_faults(models.view("fault_register"), limit=100_000)) == topics.count("Resolved")

    for name in models.projections:  # and equal to a rebuild from zero in one go
        models.reset(name)
    rebuilt = Runner(app, models, batch_size=100_000, workers=1)
    rebuilt.catch_up()
    rebuilt.close()
    assert snapshot(models) == survived
    models.close()
