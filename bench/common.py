"""Shared bench plumbing: a Temporal dev server on a temp SQLite file in WAL mode, and the
summary of paired rounds."""
from __future__ import annotations

import socket
import statistics
import subprocess
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path

from activities import config
from api.cli import dev_server_command
from workflows import search


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def dev_server(dynamic_config: dict[str, object] | None = None):
    """Yields the address of a fresh dev server as `make run` starts it (SQLite file, WAL,
    weibao's search attributes), headless, with the given dynamic config values (key ->
    value) if any, once its namespace answers with the search attributes; stops it after. A server that exits while starting (a port another process
    took between `free_port` and its bind) is started again on fresh ports; one that does
    not come up says why, with the end of its log."""
    tmp = Path(tempfile.mkdtemp(prefix="weibao-bench-"))
    for attempt in range(1, 4):
        port, ui = free_port(), free_port()
        log = tmp / f"dev-server-{attempt}.log"
        with open(log, "wb") as out:
            proc = subprocess.Popen(
                [*dev_server_command(tmp / f"temporal-{attempt}.db", port, ui), "--headless",
                 *(a for k, v in (dynamic_config or {}).items() for a in ("--dynamic-config-value", f"{k}={v}"))],
                stdout=out, stderr=subprocess.STDOUT)
        try:
            if _ready(proc, f"127.0.0.1:{port}", log, seconds=90):
                break
        except BaseException:
            _stop(proc)
            raise
        if attempt == 3:
            raise RuntimeError(f"dev server exited with {proc.returncode} three times while starting; "
                               f"its log ends: {_tail(log)}")
    try:
        yield f"127.0.0.1:{port}", tmp
    finally:
        _stop(proc)


def _ready(proc: subprocess.Popen, address: str, log: Path, seconds: float) -> bool:
    """Waits until the dev server at `address` lists weibao's search attributes on its default
    namespace (the frontend listens before the namespace is ready); False if it exited first."""
    deadline = time.monotonic() + seconds
    while True:
        if proc.poll() is not None:
            return False
        listed = subprocess.run([config.binary("temporal"), "operator", "search-attribute", "list",
                                 "--address", address, "--output", "json"], capture_output=True, timeout=30)
        if listed.returncode == 0 and all(key.name.encode() in listed.stdout for key in search.KEYS):
            return True
        if time.monotonic() > deadline:
            raise RuntimeError(f"dev server at {address} not ready after {seconds:.0f} s: "
                               f"{(listed.stderr or listed.stdout).decode(errors='replace')[-500:]}; "
                               f"its log ends: {_tail(log)}")
        time.sleep(0.2)


def _stop(proc: subprocess.Popen) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def _tail(log: Path, size: int = 1500) -> str:
    return log.read_bytes()[-size:].decode(errors="replace") or "(nothing)"


def use_postgres(dbname: str) -> None:
    """Points this process's event store at PostgreSQL database `dbname` (POSTGRES_HOST/PORT/
    USER/PASSWORD), creating it if missing."""
    import os

    import psycopg
    from psycopg import sql

    os.environ.update(WEIBAO_EVENT_STORE="postgres", POSTGRES_DBNAME="postgres")
    with psycopg.connect(config.postgres_conninfo(), autocommit=True) as c:
        if not c.execute("SELECT 1 FROM pg_database WHERE datname = %s", (dbname,)).fetchone():
            c.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(dbname)))
    os.environ["POSTGRES_DBNAME"] = dbname


def child_pid(needle: str) -> int:
    """The pid of this process's child whose command line contains `needle`."""
    import os

    for proc in Path("/proc").iterdir():
        try:
            if (proc.name.isdigit() and needle in (proc / "cmdline").read_text().replace("\0", " ")
                    and int((proc / "stat").read_text().rsplit(")", 1)[1].split()[1]) == os.getpid()):
                return int(proc.name)
        except OSError:
            continue
    raise RuntimeError(f"no child process runs {needle!r}")


def rss_mb(pid: int) -> float:
    """A process's resident set size in MB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmRSS for pid {pid}")


def pct(samples: list[float], p: float) -> float:
    s = sorted(samples)
    return s[min(len(s) - 1, int(round(p / 100 * (len(s) - 1))))]


async def timed(calls, in_flight: int) -> list[float]:
    """Run the zero-argument coroutine functions `calls`, `in_flight` at a time;
    returns each one's latency in ms."""
    import asyncio

    sem = asyncio.Semaphore(in_flight)
    out: list[float] = []

    async def one(call) -> None:
        async with sem:
            t0 = time.perf_counter()
            await call()
            out.append((time.perf_counter() - t0) * 1000)

    await asyncio.gather(*(one(c) for c in calls))
    return out


async def bare_handles(client, n: int, task_queue: str = "bare", concurrency: int = 8) -> list:
    """`n` fresh bare workflows (bench/bare.py), each started by its first Update; their
    handles take the timed Updates."""
    import asyncio
    import uuid

    from temporalio.client import WithStartWorkflowOperation
    from temporalio.common import WorkflowIDConflictPolicy

    from bench.bare import BareWorkflow

    sem = asyncio.Semaphore(concurrency)

    async def one():
        async with sem:
            op = WithStartWorkflowOperation(BareWorkflow.run, id=f"bare-{uuid.uuid4()}", task_queue=task_queue,
                                            id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING)
            await client.execute_update_with_start_workflow(BareWorkflow.step, 0, start_workflow_operation=op)
            return await op.workflow_handle()

    return list(await asyncio.gather(*(one() for _ in range(n))))


def paired(ratios: list[float]) -> tuple[float, float, float]:
    """(median, lower quartile, upper quartile) of the ratios of rounds run in pairs back to
    back, so each pair met the shared machine at one speed."""
    if len(ratios) < 2:
        return ratios[0], ratios[0], ratios[0]
    low, _, high = statistics.quantiles(ratios, n=4)
    return statistics.median(ratios), low, high
