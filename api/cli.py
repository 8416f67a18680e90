"""The `weibao` console script.

    weibao run        start the Temporal dev server (SQLite file, WAL), the worker and
                      the other processes, print where they are; Ctrl-C stops them all
"""
from __future__ import annotations

import argparse
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from activities import config


def _wait_port(host: str, port: int, seconds: float, proc: subprocess.Popen) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"{proc.args[0]} exited with {proc.returncode} before listening on {host}:{port}")
        try:
            with socket.create_connection((host, port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.2)
    raise SystemExit(f"nothing listens on {host}:{port} after {seconds:.0f}s")


def dev_server_command(db_file: Path, port: int = 7233, ui_port: int = 8233) -> list[str]:
    return [config.binary("temporal"), "server", "start-dev", "--db-filename", str(db_file),
            "--sqlite-pragma", "journal_mode=wal", "--port", str(port), "--ui-port", str(ui_port),
            "--log-level", "warn"]


# The weibao processes `run` starts after the dev server, as (name, argv).
def processes() -> list[tuple[str, list[str]]]:
    py = sys.executable
    root = str(config.ROOT)
    return [
        ("worker", [py, os.path.join(root, "worker.py")]),
    ]


def cmd_run(args: argparse.Namespace) -> int:
    data = config.data_dir()
    data.mkdir(parents=True, exist_ok=True)
    children: list[tuple[str, subprocess.Popen]] = []

    def interrupt(*_: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, interrupt)  # stop the children on SIGTERM as on Ctrl-C

    def stop(*_: object) -> None:
        for name, p in reversed(children):
            if p.poll() is None:
                p.send_signal(signal.SIGINT)
        for name, p in reversed(children):
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                p.kill()

    try:
        if not args.no_dev_server:
            host, _, port = config.temporal_address().partition(":")
            server = subprocess.Popen(dev_server_command(data / "temporal.db", int(port or 7233), args.ui_port))
            children.append(("temporal dev server", server))
            _wait_port(host or "localhost", int(port or 7233), 60, server)
            print(f"weibao: Temporal dev server on {config.temporal_address()}, "
                  f"UI at http://localhost:{args.ui_port}", flush=True)
        for name, argv in processes():
            children.append((name, subprocess.Popen(argv)))
            print(f"weibao: started {name} (pid {children[-1][1].pid})", flush=True)
        print(f"weibao: event store {config.store_kind()} "
              f"({config.sqlite_path() if config.store_kind() == 'sqlite' else config.postgres()['POSTGRES_HOST']}); "
              "Ctrl-C stops everything", flush=True)
        while True:
            for name, p in children:
                if p.poll() is not None:
                    print(f"weibao: {name} exited with {p.returncode}; stopping the rest", file=sys.stderr)
                    return 1
            time.sleep(0.5)
    except KeyboardInterrupt:
        print("\nweibao: stopping", flush=True)
        return 0
    finally:
        stop()


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="weibao", description="weibao (维保) service desk")
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="start dev server, worker and API; Ctrl-C stops them")
    run.add_argument("--no-dev-server", action="store_true", help="use the Temporal at TEMPORAL_ADDRESS")
    run.add_argument("--ui-port", type=int, default=int(config.env("WEIBAO_TEMPORAL_UI_PORT", "8233")))
    run.set_defaults(func=cmd_run)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
