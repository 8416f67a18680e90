"""`weibao projections ...`: the read models' position and lag, and rebuilds.

    weibao projections status          each read model's position and lag behind the store
    weibao projections rebuild NAME    drop one read model and rebuild it from the first event
"""
from __future__ import annotations

import argparse
import sys


def cmd_status(args: argparse.Namespace) -> int:
    from projections.runner import status

    rows = status()
    width = max(len(r["name"]) for r in rows)
    print(f"{'read model':<{width}}  {'position':>10}  {'lag':>8}  ({rows[0]['head'] if rows else 0} events stored)")
    for r in rows:
        print(f"{r['name']:<{width}}  {r['position']:>10}  {r['lag']:>8}  {r['title']}")
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
    """Register `projections status|rebuild` on the `weibao` command's subparsers
    (importing nothing heavy: every `weibao` command builds this parser)."""
    p = sub.add_parser("projections", help="read models: position and lag, rebuild one")
    actions = p.add_subparsers(dest="action", required=True)
    status = actions.add_parser("status", help="each read model's position and lag behind the event store")
    status.set_defaults(func=cmd_status)
    rebuild = actions.add_parser("rebuild", help="drop one read model and rebuild it from the first event; "
                                                 "safe while the runner runs")
    rebuild.add_argument("name", metavar="NAME", help="a read model, as `weibao projections status` lists them")
    rebuild.add_argument("--batch-size", type=int, default=None)
    rebuild.set_defaults(func=cmd_rebuild)
