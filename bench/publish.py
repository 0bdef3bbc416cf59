"""`python -m bench.publish GROUP`: the live-log floor's publisher. Sends lines to the group
``bench.GROUP`` through the project's channel layer, the way apps.runs.events publishes a log
batch (async_to_sync(group_send) from a plain thread), at the rate and batch size the run log
has (1,000 lines/s, flushed every 50 ms). Each line's ``ts`` is the moment of its group_send.
"""

from __future__ import annotations

import argparse
import os
import time
from datetime import UTC, datetime

import django
from asgiref.sync import async_to_sync


def publish(group: str, *, lines: int, rate: int, interval: float) -> None:
    from channels.layers import get_channel_layer

    send = async_to_sync(get_channel_layer().group_send)
    per_batch = max(1, round(rate * interval))
    start = time.monotonic()
    for first in range(0, lines, per_batch):
        delay = start + first / rate - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        ts = datetime.now(UTC).isoformat()
        batch = [
            {"seq": i + 1, "ts": ts, "level": "info", "step_run": None, "message": f"line {i}"}
            for i in range(first, min(first + per_batch, lines))
        ]
        send(f"bench.{group}", {"type": "log.lines", "lines": batch})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("group")
    parser.add_argument("--lines", type=int, default=10_000)
    parser.add_argument("--rate", type=int, default=1000, help="lines per second")
    parser.add_argument("--interval", type=float, default=0.05, help="seconds between batches")
    options = parser.parse_args()
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    django.setup()
    publish(options.group, lines=options.lines, rate=options.rate, interval=options.interval)


if __name__ == "__main__":
    main()
