"""The `weibao` console script.

    weibao run        start the Temporal dev server (SQLite file, WAL), the worker and
                      the other processes, print where they are; Ctrl-C stops them all
    weibao token STAFF_ID [--days N] issue an API bearer token (printed once, only its hash kept;
                                     expires after N days, 30 by default)
    weibao token --list [STAFF_ID]   every token: id, staff, created, expires, last used, revoked
    weibao token --revoke-token ID   revoke one token (its id from --list)
    weibao token --revoke STAFF_ID   revoke every token of that staff member
    weibao login-link STAFF_ID       print a one-time sign-in link to the web console
    weibao projections status        each read model's position, lag and quarantined events
    weibao projections quarantine [NAME]  the events a read model set aside, with the reason
    weibao projections rebuild NAME  rebuild one read model from the first event
"""
from __future__ import annotations

import argparse
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from datetime import datetime, timezone
from pathlib import Path

from activities import config
from workflows import search


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
            "--log-level", "warn", *search.flags()]


# The weibao processes `run` starts after the dev server, as (name, argv).
def processes() -> list[tuple[str, list[str]]]:
    py = sys.executable
    root = str(config.ROOT)
    return [
        ("worker", [py, os.path.join(root, "worker.py")]),
        ("api", [py, "-m", "api"]),
        ("projections", [py, "-m", "projections"]),
    ]


def cmd_run(args: argparse.Namespace) -> int:
    settings = config.settings()
    data = settings.data_dir
    data.mkdir(parents=True, exist_ok=True)
    # each child runs in its own process group, so the terminal's Ctrl-C reaches only this
    # process, which stops them in order (see `stop`)
    children: list[tuple[str, subprocess.Popen]] = []

    def interrupt(*_: object) -> None:
        raise KeyboardInterrupt

    # Ctrl-C and SIGTERM both stop the children; installing a handler for SIGINT also
    # means the children start with its default even if this process began with it ignored
    signal.signal(signal.SIGINT, interrupt)
    signal.signal(signal.SIGTERM, interrupt)

    stopping = threading.Event()
    relays: list[threading.Thread] = []  # the dev server's log, relayed to stderr

    def stop(*_: object) -> None:
        # last started first, one at a time: the worker drains while the dev server still
        # answers, and the dev server goes last
        stopping.set()
        for name, p in reversed(children):
            if p.poll() is None:
                p.send_signal(signal.SIGINT)
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                print(f"weibao: {name} did not stop in 10 s; killing it", file=sys.stderr, flush=True)
                p.kill()
                p.wait()
        for relay in relays:
            relay.join(timeout=2)  # the dev server's last lines

    try:
        if not args.no_dev_server:
            address = config.temporal_address()
            host, _, port = address.rpartition(":")
            ui_port = settings.temporal_ui_port if args.ui_port is None else args.ui_port
            server = subprocess.Popen(dev_server_command(data / "temporal.db", int(port), ui_port), process_group=0,
                                      stderr=subprocess.PIPE)
            relay = threading.Thread(target=_relay_dev_server_log, args=(server.stderr, stopping), daemon=True)
            relay.start()
            relays.append(relay)
            children.append(("temporal dev server", server))
            _wait_port(host or "localhost", int(port), 60, server)
            print(f"weibao: Temporal dev server on {address} (pid {server.pid}), "
                  f"UI at http://localhost:{ui_port}", flush=True)
        for name, argv in processes():
            children.append((name, subprocess.Popen(argv, process_group=0)))
            print(f"weibao: started {name} (pid {children[-1][1].pid})", flush=True)
        where = settings.sqlite_path if settings.event_store == "sqlite" else settings.postgres_host
        print(f"weibao: event store {settings.event_store} ({where}); Ctrl-C stops everything", flush=True)
        print(f"weibao: API at {api_url()} (docs at {api_url()}/docs; `weibao token STAFF_ID` for a token)",
              flush=True)
        print(f"weibao: console at {api_url()}/console/ (`weibao login-link STAFF_ID` for a sign-in link)",
              flush=True)
        print(f"weibao: metrics at {metrics_urls(settings)}; /healthz and /readyz on each port", flush=True)
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


# What the dev server's own system workers (namespace temporal-system: its scanners and
# parent-close-policy processor) log while the server stops: its frontend closes before
# they stop polling it, so each poll in flight fails ("Failed to poll for task.", a dial
# "operation was canceled"). They come from the server's internal shutdown order, which no
# client changes (a bare `temporal server start-dev` prints them on Ctrl-C too), and say
# nothing about weibao: once `run` stops the server, those lines alone are dropped.
_SERVER_SHUTDOWN_NOISE = (re.compile(r'msg="Failed to poll for task\." service=worker Namespace=temporal-system '),
                          re.compile(r'msg="network dial error" service=client .*(operation was canceled|'
                                     r'connection refused)'))


def _relay_dev_server_log(stream, stopping: threading.Event) -> None:
    for raw in iter(stream.readline, b""):
        line = raw.decode("utf-8", "replace")
        if stopping.is_set() and any(p.search(line) for p in _SERVER_SHUTDOWN_NOISE):
            continue
        sys.stderr.write(line)
        sys.stderr.flush()
    stream.close()


def metrics_urls(settings: config.Settings) -> str:
    host = settings.metrics_host if settings.metrics_host not in ("0.0.0.0", "::") else "localhost"
    urls = [f"{api_url()}/metrics (API)"]
    if settings.worker_metrics_port:
        urls.append(f"http://{host}:{settings.worker_metrics_port}/metrics (worker)")
    if settings.projection_metrics_port:
        urls.append(f"http://{host}:{settings.projection_metrics_port}/metrics (read models)")
    return ", ".join(urls)


def api_url() -> str:
    settings = config.settings()
    return f"http://{settings.api_host}:{settings.api_port}"


def cmd_token(args: argparse.Namespace) -> int:
    from api.auth import DEFAULT_DAYS, Tokens, UnknownToken, token_id
    from api.db import Database

    def fail(message: str) -> int:
        print(f"weibao: {message}", file=sys.stderr)
        return 2

    issuing = not (args.list or args.revoke or args.revoke_token is not None)
    if args.list + args.revoke + (args.revoke_token is not None) > 1:
        return fail("give one of --list, --revoke STAFF_ID, --revoke-token ID")
    if args.revoke_token is not None and args.staff_id is not None:
        return fail("--revoke-token ID takes no STAFF_ID")
    if (issuing or args.revoke) and args.staff_id is None:
        return fail("give a STAFF_ID (or --list, or --revoke-token ID)")
    if args.days is not None and not issuing:
        return fail("--days is for issuing a token")
    days = DEFAULT_DAYS if args.days is None else args.days
    if days < 1:
        return fail(f"--days must be 1 or more, not {days}")
    staff = config.load_org().get(args.staff_id)
    if issuing and staff is None:
        return fail(f"{args.staff_id} is not on the staff of {config.org_file()}")
    db = Database()
    try:
        tokens = Tokens(db)
        if args.list:
            _print_tokens(tokens.list(args.staff_id))
            return 0
        if args.revoke_token is not None:
            try:
                info = tokens.revoke_token(args.revoke_token)
            except UnknownToken as e:
                return fail(str(e))
            print(f"weibao: token {info.id} of {info.staff_id} revoked (at {_when(info.revoked)})", file=sys.stderr)
            return 0
        if args.revoke:
            n = tokens.revoke(args.staff_id)
            print(f"weibao: revoked {n} token(s) of {args.staff_id}", file=sys.stderr)
            return 0
        token = tokens.issue(staff.id, days)
    finally:
        db.close()
    print(f"weibao: token {token_id(token)} for {staff.id} ({staff.name}, {staff.role}), valid {days} days; "
          "it is shown only this once", file=sys.stderr)
    print(token)
    return 0


def _when(t: datetime | None) -> str:
    return t.strftime("%Y-%m-%d %H:%M UTC") if t is not None else "-"


def _print_tokens(rows: list) -> None:
    now = datetime.now(timezone.utc)
    table = [("id", "staff", "created", "expires", "last used", "revoked", "status")]
    table += [(t.id, t.staff_id, _when(t.created), _when(t.expires), _when(t.last_used), _when(t.revoked),
               t.status(now)) for t in rows]
    widths = [max(len(r[i]) for r in table) for i in range(len(table[0]))]
    for r in table:
        print("  ".join(v.ljust(w) for v, w in zip(r, widths)).rstrip())


def cmd_login_link(args: argparse.Namespace) -> int:
    from api.console.auth import login_link, login_link_ttl

    staff = config.load_org().get(args.staff_id)
    if staff is None:
        print(f"weibao: {args.staff_id} is not on the staff of {config.org_file()}", file=sys.stderr)
        return 2
    minutes = int(login_link_ttl().total_seconds() // 60)
    print(f"weibao: console sign-in link for {staff.id} ({staff.name}, {staff.role}); it works once, "
          f"within {minutes} min", file=sys.stderr)
    print(login_link(staff.id))
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="weibao", description="weibao (维保) service desk")
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="start dev server, worker and API; Ctrl-C stops them")
    run.add_argument("--no-dev-server", action="store_true", help="use the Temporal at TEMPORAL_ADDRESS")
    run.add_argument("--ui-port", type=int, help="the dev server's web UI port (default WEIBAO_TEMPORAL_UI_PORT)")
    run.set_defaults(func=cmd_run)
    token = sub.add_parser("token", help="issue, list or revoke API bearer tokens")
    token.add_argument("staff_id", metavar="STAFF_ID", nargs="?",
                       help="a staff id of the org file (WEIBAO_ORG_FILE); with --list, whose tokens")
    token.add_argument("--days", type=int, metavar="N", help="the new token expires after N days (default 30)")
    token.add_argument("--list", action="store_true", help="list tokens: id, staff, created, expires, last used, "
                                                           "revoked")
    token.add_argument("--revoke", action="store_true", help="revoke every token of STAFF_ID")
    token.add_argument("--revoke-token", metavar="ID", help="revoke the one token with this id (from --list)")
    token.set_defaults(func=cmd_token)
    link = sub.add_parser("login-link", help="print a one-time console sign-in link for a staff member")
    link.add_argument("staff_id", metavar="STAFF_ID", help="a staff id of the org file (WEIBAO_ORG_FILE)")
    link.set_defaults(func=cmd_login_link)
    from projections.cli import add_parser as add_projections_parser
    add_projections_parser(sub)  # weibao projections status | quarantine [NAME] | rebuild NAME
    from api.notifications_cli import add_parser as add_notifications_parser
    add_notifications_parser(sub)  # weibao notifications [--failed]
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    config.startup()  # before anything starts: a bad setting or org file is one line on stderr, exit 2
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
