"""`weibao notifications [--failed] [--target STAFF_ID]`: warnings and escalations as
delivered — newest first, each with its status (pending, sent, failed, given up), the
channels tried and the last reason a channel gave."""
from __future__ import annotations

import argparse


def cmd_notifications(args: argparse.Namespace) -> int:
    from activities.outbox import Outbox

    outbox = Outbox()
    try:
        rows = outbox.list(target=args.target, limit=args.limit)
    finally:
        outbox.close()
    if args.failed:
        rows = [r for r in rows if r["status"] in ("failed", "given_up")]
    if not rows:
        print("no notifications" + (" that failed" if args.failed else ""))
        return 0
    for r in rows:
        last: dict[str, dict] = {}
        for a in r["attempts"]:
            last[a["channel"]] = a
        channels = ", ".join(f"{c} {a['status']}" + (f" ({a['reason']})" if a["reason"] else "")
                             + (f" after {a['attempt']} attempts" if a["attempt"] > 1 else "")
                             for c, a in last.items()) or "no attempt yet"
        print(f"{r['created_at'][:19]}Z  {r['status']:<8}  {r['kind']:<18}  to {r['target']:<6}  {r['id']}")
        print(f"    {r['reason']}")
        print(f"    {channels}")
    return 0


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("notifications", help="warnings and escalations as delivered (--failed: only failures)")
    p.add_argument("--failed", action="store_true", help="only those whose delivery failed or gave up")
    p.add_argument("--target", metavar="STAFF_ID", help="only those sent to this staff member")
    p.add_argument("--limit", type=int, default=100, help="at most this many (default 100)")
    p.set_defaults(func=cmd_notifications)
