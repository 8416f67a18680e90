"""What one escalation mail costs the process that sends it: N mails through weibao's own
send (`activities.deliver.send`, apprise over SMTP), on 1 and on 8 threads, to a local SMTP
server (aiosmtpd, in a process of its own), against plain `smtplib` sending the same text
the same way (a connection per mail) in the same run, and weibao's send as it was before
its SMTP URL was parsed once (`--each` rounds: the parsed URL forgotten before every mail).

    .venv/bin/python bench/mail_send.py [-n 200] [--rounds 3]

Prints, per path and thread count, mails per second and this process's CPU per mail (the
server's own work is not counted), and "ratio: X" = weibao's CPU per mail / smtplib's at 8
threads. The delivery relay sends a burst's first rounds one after another once the alarms
pause (activities/relay.py), so this cost is what a burst's last mail waits for."""
from __future__ import annotations

import argparse
import os
import smtplib
import statistics
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from email.message import EmailMessage
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.escalation_lag import MailServer  # noqa: E402

TITLE = "【维保·上报直接上级】故障工单 lag-00000000-0 「到达现场」已超时 | [weibao] Escalated to the direct superior"
BODY = ("案件 / Case: 故障工单 lag-00000000-0\n客户 / Customer: 示例医院\n目标 / Goal: 到达现场 on site\n"
        "截止 / Deadline: 2026-12-07 13:00 (UTC+8)\n确认 / Acknowledge: http://localhost:8000/ack/" + "x" * 120 + "\n") * 3


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", type=int, default=200, help="mails per path, thread count and round")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()

    server = MailServer()
    os.environ.update(WEIBAO_SMTP_HOST="127.0.0.1", WEIBAO_SMTP_PORT=str(server.port), WEIBAO_SMTP_SECURITY="none",
                      WEIBAO_SMTP_FROM="weibao@example.com", WEIBAO_SECRET_KEY="bench")
    from activities import config, deliver

    settings, staff = config.settings(), config.load_org().get("S001")

    def weibao(_: int) -> None:
        if not deliver.send("email", staff, TITLE, BODY, settings).sent:
            raise SystemExit("weibao's send failed")

    def weibao_each(i: int) -> None:
        deliver._smtp_tokens.cache_clear()  # as before: the URL parsed for every mail
        weibao(i)

    def plain(_: int) -> None:
        msg = EmailMessage()
        msg["From"], msg["To"], msg["Subject"] = settings.smtp_from, staff.email, TITLE
        msg.set_content(BODY)
        with smtplib.SMTP("127.0.0.1", server.port, timeout=10) as smtp:
            smtp.send_message(msg)

    paths = {"smtplib (baseline)": plain, "weibao": weibao, "weibao, URL parsed each time": weibao_each}
    results: dict[tuple[str, int], list[tuple[float, float]]] = {}
    try:
        for fn in paths.values():
            fn(0)  # warm: imports, the TLS context, the first connection
        for r in range(args.rounds):
            for threads in (1, 8):
                for name, fn in paths.items():
                    cpu, wall = time.process_time(), time.perf_counter()
                    with ThreadPoolExecutor(threads) as pool:
                        list(pool.map(fn, range(args.n)))
                    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
                    results.setdefault((name, threads), []).append((args.n / wall, cpu / args.n * 1000))
            print(f"  round {r + 1} of {args.rounds} done", flush=True)
    finally:
        server.stop()
    print(f"N={args.n} mails per path and thread count, {args.rounds} rounds (medians)")
    for (name, threads), values in results.items():
        rate = statistics.median(v[0] for v in values)
        cpu = statistics.median(v[1] for v in values)
        print(f"  {name:<30} {threads} thread(s): {rate:7.1f} mails/s  CPU {cpu:5.2f} ms per mail")
    cpu = {k: statistics.median(v[1] for v in vals) for k, vals in results.items()}
    print(f"  ratio: {cpu[('weibao', 8)] / cpu[('smtplib (baseline)', 8)]:.2f}  (weibao's CPU per mail / smtplib's, "
          f"8 threads; parsed each time: {cpu[('weibao, URL parsed each time', 8)] / cpu[('smtplib (baseline)', 8)]:.2f})")


if __name__ == "__main__":
    main()
