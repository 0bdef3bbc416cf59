"""The run log writer: lines are numbered, stored in batches, then published.

One writer per run, in the process executing it. ``write`` may be called from any thread
(the runner, a sandbox's stdout and stderr readers); a background thread flushes every
``interval`` seconds, and a full buffer flushes at once.

A line is numbered when it is written, and stays in the buffer until a batch holding it is
stored: a database outage delays lines (they are retried, in order), it never loses or
renumbers them.
"""

from __future__ import annotations

import logging
import threading
import time

from django.db import DatabaseError, connection
from django.db.models import Max
from django.utils import timezone

from apps.runs.events import publish_log_lines
from apps.runs.models import LogLine

log = logging.getLogger(__name__)
MAX_LINE = 10_000  # characters kept of one line
RETRY_MAX_INTERVAL = 1.0  # seconds between flushes while the database fails
CLOSE_TIMEOUT = 60.0  # how long closing waits for the database to store the last lines


class LogWriter:
    def __init__(self, run_id: int, *, interval: float = 0.05, batch: int = 500):
        self.run_id, self.interval, self.batch = run_id, interval, batch
        last = LogLine.objects.filter(run_id=run_id).aggregate(last=Max("seq"))["last"]
        self._seq = last or 0
        self._buffer: list[LogLine] = []
        self._lock = threading.Lock()  # guards _seq and _buffer
        self._flush_lock = threading.Lock()  # keeps batches in seq order
        # After a failed insert the batch may have been stored all the same (the connection
        # broke after the commit): the retry then skips the lines already there.
        self._maybe_stored = False
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
            try:
                self.flush()
            except DatabaseError:
                pass  # the lines stay buffered; the background thread keeps retrying

    def flush(self) -> None:
        """Store the buffered lines, then publish them. On a database error the lines go
        back to the head of the buffer and the error is raised."""
        with self._flush_lock:
            with self._lock:
                lines, self._buffer = self._buffer, []
            if not lines:
                return
            try:
                LogLine.objects.bulk_create(lines, ignore_conflicts=self._maybe_stored)
            except DatabaseError:
                with self._lock:
                    self._buffer[:0] = lines
                self._maybe_stored = True
                if not connection.in_atomic_block:
                    connection.close()  # a broken connection is never reused: reconnect next time
                raise
            self._maybe_stored = False
            publish_log_lines(self.run_id, [line.as_message() for line in lines])

    def close(self, timeout: float = CLOSE_TIMEOUT) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        deadline, pause = time.monotonic() + timeout, self.interval
        while True:
            try:
                self.flush()
                return
            except DatabaseError:
                if time.monotonic() > deadline:
                    log.error(
                        "run %s: %d log line(s) could not be stored within %g s",
                        self.run_id,
                        len(self._buffer),
                        timeout,
                        exc_info=True,
                    )
                    return
            time.sleep(pause)
            pause = min(pause * 2, RETRY_MAX_INTERVAL)

    def _loop(self) -> None:
        pause, failing = self.interval, False
        try:
            while not self._stop.wait(pause):
                try:
                    self.flush()
                except DatabaseError:
                    if not failing:
                        log.warning(
                            "run %s: could not store log lines; retrying",
                            self.run_id,
                            exc_info=True,
                        )
                    failing, pause = True, min(pause * 2, RETRY_MAX_INTERVAL)
                    continue
                if failing:
                    log.info("run %s: log lines stored again", self.run_id)
                failing, pause = False, self.interval
        finally:
            connection.close()  # this thread's own connection
