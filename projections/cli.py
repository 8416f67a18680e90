"""`weibao projections ...`: the read models' position, lag and quarantine, and rebuilds.

    weibao projections status              each read model's position, lag behind the store, quarantined events
    weibao projections quarantine [NAME]   the events set aside because a read model cannot apply them
    weibao projections rebuild NAME        drop one read model and rebuild it from the first event
"""
from __future__ import annotations

import argparse
import sys


def cmd_status(args: argparse.Namespace) -> int:
    from projections.runner import status

    rows = status()
    width = max(len(r["name"]) for r in rows)
    print(f"{'read model':<{width}}  {'position':>10}  {'lag':>8}  {'quarantined':>11}  "
          f"({rows[0]['head'] if rows else 0} events stored)")
    for r in rows:
        print(f"{r['name']:<{width}}  {r['position']:>10}  {r['lag']:>8}  {r['quarantined']:>11}  {r['title']}")
    held = sum(r["quarantined"] for r in rows)
    if held:
        print(f"weibao: {held} event(s) quarantined: `weibao projections quarantine` lists them", file=sys.stderr)
    return 0


def cmd_quarantine(args: argparse.Namespace) -> int:
    from projections.quarantine import quarantined
    from projections.runner import BY_NAME, read_models

    if args.name is not None and args.name not in BY_NAME:
        print(f"weibao: no read model {args.name!r}; read models are {', '.join(BY_NAME)}", file=sys.stderr)
        return 2
    models = read_models()
    try:
        rows = quarantined(models, args.name, limit=args.limit)
    finally:
        models.close()
    if not rows:
        print("weibao: no quarantined events" + (f" in {args.name}" if args.name else ""), file=sys.stderr)
        return 0
    for r in rows:
        print(f"{r['read_model']}  position {r['position']}  {r['topic'].rsplit('.', 1)[-1]} v{r['originator_version']} "
              f"of {r['originator_id']}  at {r['quarantined_at']}: {r['reason']}")
    return 0


def cmd_rebuild(args: argparse.Namespace) -> int:
    from projections.runner import BY_NAME, rebuild

    if args.name not in BY_NAME:
        print(f"weibao: no read model {args.name!r}; read models are {', '.join(BY_NAME)}", file=sys.stderr)
        return 2
    n = rebuild(args.name, batch_size=args.batch_size)
    print(f"weibao: rebuilt {args.name} from the first event ({n} events applied)")
    return 0


def add_parser(sub: argparse._SubParsersAction) -> None:
    """Register `projections status|quarantine|rebuild` on the `weibao` command's subparsers
    (importing nothing heavy: every `weibao` command builds this parser)."""
    p = sub.add_parser("projections", help="read models: position, lag and quarantine, rebuild one")
    actions = p.add_subparsers(dest="action", required=True)
    status = actions.add_parser("status", help="each read model's position, lag behind the event store and "
                                               "number of quarantined events")
    status.set_defaults(func=cmd_status)
    held = actions.add_parser("quarantine", help="the events a read model could not apply and set aside: "
                                                 "position, event, reason")
    held.add_argument("name", metavar="NAME", nargs="?", help="only this read model's")
    held.add_argument("--limit", type=int, default=None, help="list at most this many")
    held.set_defaults(func=cmd_quarantine)
    rebuild = actions.add_parser("rebuild", help="drop one read model and rebuild it from the first event; "
                                                 "safe while the runner runs")
    rebuild.add_argument("name", metavar="NAME", help="a read model, as `weibao projections status` lists them")
    rebuild.add_argument("--batch-size", type=int, default=None)
    rebuild.set_defaults(func=cmd_rebuild)
