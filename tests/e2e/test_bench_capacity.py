"""bench/capacity.py runs end to end on a few tickets and prints its table: the worker as
its own process, tickets opened from a client, steps timed against the bare Update, the
worker restarted with another cache. Nothing asserts on time."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_capacity_bench_prints_its_table_for_a_few_tickets(tmp_path):
    out = subprocess.run(
        [sys.executable, "bench/capacity.py", "--stages", "20", "--sample", "5", "--rounds", "1",
         "--cache", "100", "--then-cache", "10"],
        cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    assert "open  cache created/s worker MB server MB" in out.stdout
    assert "worker restarted with cache 10" in out.stdout
    assert "ratio: " in out.stdout
