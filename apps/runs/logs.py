"""The run log writer: lines are numbered, stored in batches, then published.

One writer per run, in the process executing it. ``write`` may be called from any thread
(the runner, a sandbox's stdout and stderr readers); a background thread flushes every
``interval`` seconds, and a full buffer flushes at once.
"""

from __future__ import annotations

import threading

from django.db import connection
from django.db.models import Max
from django.utils import timezone

from apps.runs.events import publish_log_lines
from apps.runs.models import LogLine

MAX_LINE = 10_000  # characters kept of one line


class LogWriter:
    def __init__(self, run_id: int, *, interval: float = 0.05, batch: int = 500):
        self.run_id, self.interval, self.batch = run_id, interval, batch
        last = LogLine.objects.filter(run_id=run_id).aggregate(last=Max("seq"))["last"]
        self._seq = last or 0
        self._buffer: list[LogLine] = []
        self._lock = threading.Lock()  # guards _seq and _buffer
        self._flush_lock = threading.Lock()  # keeps batches in seq order
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name=f"log-{run_id}", daemon=True)
        self._thread.start()

    def write(self, message: str, *, level: str = "info", step_run_id: int | None = None) -> None:
        now = timezone.now()
        with self._lock:
            for text in str(message).splitlines() or [""]:
                self._seq += 1
                self._buffer.append(
                    LogLine(
                        run_id=self.run_id,
                        seq=self._seq,
                        ts=now,
                        level=level,
                        step_run_id=step_run_id,
                        message=text[:MAX_LINE],
                    )
                )
            full = len(self._buffer) >= self.batch
        if full:
            self.flush()

    def flush(self) -> None:
        with self._flush_lock:
            with self._lock:
                lines, self._buffer = self._buffer, []
            if not lines:
                return
            LogLine.objects.bulk_create(lines)
            publish_log_lines(self.run_id, [line.as_message() for line in lines])

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        self.flush()

    def _loop(self) -> None:
        try:
            while not self._stop.wait(self.interval):
                self.flush()
        finally:
            connection.close()  # this thread's own connection
