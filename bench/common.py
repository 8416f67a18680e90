"""Shared bench plumbing: a Temporal dev server on a temp SQLite file in WAL mode."""
from __future__ import annotations

import socket
import subprocess
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path

from activities import config


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def dev_server():
    """Yields the address of a fresh dev server (SQLite file, WAL); stops it after."""
    tmp = Path(tempfile.mkdtemp(prefix="weibao-bench-"))
    port, ui = free_port(), free_port()
    proc = subprocess.Popen(
        [config.binary("temporal"), "server", "start-dev", "--db-filename", str(tmp / "temporal.db"),
         "--sqlite-pragma", "journal_mode=wal", "--port", str(port), "--ui-port", str(ui), "--headless",
         "--log-level", "error"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
                break
            except OSError:
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise RuntimeError("dev server did not start")
                time.sleep(0.2)
        time.sleep(1.0)  # the frontend listens before the namespace is ready
        yield f"127.0.0.1:{port}", tmp
    finally:
        proc.terminate()
        proc.wait(timeout=20)
