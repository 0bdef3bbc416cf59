"""The run log writer: lines are numbered, stored in batches, then published.

One writer per run, in the process executing it. ``write`` may be called from any thread
(the runner, a sandbox's stdout and stderr readers); one flusher thread per process stores
and publishes what the open writers hold, and a full buffer flushes at once.

When: a run's first ``grace`` seconds are stored at once by ``close`` if it ends by then (a
trivial run never touches the flusher's connection). After that a line is flushed as soon
as it is written, but no sooner than ``interval`` after the writer's last flush: a steady
stream goes out in batches every ``interval`` (live viewers wait that long at most), a
quiet run costs no wake-up at all, and the first line after a pause goes out at once.

A line is numbered when it is written, and stays in the buffer until a batch holding it is
stored: a database outage delays lines (they are retried, in order), it never loses or
renumbers them.
"""

from __future__ import annotations

import logging
import os
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
    def __init__(
        self,
        run_id: int,
        *,
        interval: float = 0.005,
        grace: float = 0.05,
        batch: int = 500,
        last_seq: int | None = None,
    ):
        """``last_seq``: the run's last stored line, when the caller knows it (the runner of
        a run it just claimed knows there is none); read from the database otherwise."""
        self.run_id, self.interval, self.batch = run_id, interval, batch
        if last_seq is None:
            last_seq = LogLine.objects.filter(run_id=run_id).aggregate(last=Max("seq"))["last"]
        self._seq = last_seq or 0
        self._buffer: list[LogLine] = []
        self._lock = threading.Lock()  # guards _seq and _buffer
        self._flush_lock = threading.Lock()  # keeps batches in seq order
        # After a failed insert the batch may have been stored all the same (the connection
        # broke after the commit): the retry then skips the lines already there.
        self._maybe_stored = False
        # The flusher's schedule for this writer: the earliest next flush, the pause after a
        # failure (then the next flush is due whether or not a line is written meanwhile).
        self._due, self._pause, self._failing = time.monotonic() + grace, interval, False
        flusher.add(self)

    def write(self, message: str, *, level: str = "info", step_run_id: int | None = None) -> None:
        now = timezone.now()
        with self._lock:
            idle = not self._buffer
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
                pass  # the lines stay buffered; the flusher keeps retrying
        elif idle:
            flusher.wake()  # the flusher waits for lines only: these are due at self._due

    def flush(self, *, publish: bool = True) -> list[dict]:
        """Store the buffered lines, then publish them (unless told not to); return them as
        messages. On a database error the lines go back to the head of the buffer and the
        error is raised."""
        with self._flush_lock:
            with self._lock:
                lines, self._buffer = self._buffer, []
            if not lines:
                return []
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
            messages = [line.as_message() for line in lines]
            if publish:
                publish_log_lines(self.run_id, messages)
            return messages

    def close(self, timeout: float = CLOSE_TIMEOUT, *, publish: bool = True) -> list[dict]:
        """Store the last lines (retried through a database outage for up to ``timeout``) and
        return them. ``publish=False`` leaves publishing them to the caller: the runner's
        final run state makes every viewer read them from the database anyway."""
        flusher.discard(self)
        deadline, pause = time.monotonic() + timeout, self.interval
        while True:
            try:
                return self.flush(publish=publish)
            except DatabaseError:
                if time.monotonic() > deadline:
                    log.error(
                        "run %s: %d log line(s) could not be stored within %g s",
                        self.run_id,
                        len(self._buffer),
                        timeout,
                        exc_info=True,
                    )
                    return []
            time.sleep(pause)
            pause = min(pause * 2, RETRY_MAX_INTERVAL)

    def _tick(self, now: float) -> float | None:
        """One scheduled flush, from the flusher's thread; returns when the next is due (None:
        when a line is written)."""
        if not self._buffer and not self._failing:
            return None
        if now < self._due:
            return self._due
        try:
            self.flush()
        except DatabaseError:
            if not self._failing:
                log.warning(
                    "run %s: could not store log lines; retrying", self.run_id, exc_info=True
                )
            self._failing, self._pause = True, min(self._pause * 2, RETRY_MAX_INTERVAL)
        else:
            if self._failing:
                log.info("run %s: log lines stored again", self.run_id)
            self._failing, self._pause = False, self.interval
        self._due = time.monotonic() + self._pause
        return self._due if self._failing or self._buffer else None


class Flusher:
    """Flushes the open writers of this process from one thread (a thread per run cost a
    thread start and, for any run longer than one interval, a database connection of its
    own). The thread holds its connection only while writers are open."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)
        self._pid: int | None = None
        self._writers: set[LogWriter] = set()
        self._woken = False  # a wake since the loop last looked at the writers

    def add(self, writer: LogWriter) -> None:
        with self._lock:
            if self._pid != os.getpid():  # first use, or a forked child (Celery prefork)
                self._writers = set()
                threading.Thread(target=self._loop, name="cadenza-log-flusher", daemon=True).start()
                self._pid = os.getpid()
            self._writers.add(writer)
            self._woken = True
            self._changed.notify()

    def discard(self, writer: LogWriter) -> None:
        with self._lock:
            self._writers.discard(writer)

    def wake(self) -> None:
        """A writer got lines after a pause: look at the schedule again."""
        with self._lock:
            self._woken = True
            self._changed.notify()

    def _loop(self) -> None:
        while True:
            with self._lock:
                if not self._writers:
                    connection.close()  # idle: hold no connection (nor block a DROP DATABASE)
                    while not self._writers:
                        self._changed.wait()
                writers = list(self._writers)
            now, due = time.monotonic(), []
            for writer in writers:
                try:
                    when = writer._tick(now)
                except Exception:  # one writer's bug must not stop every run's log
                    log.exception("run %s: flushing its log failed", writer.run_id)
                    when = now + writer.interval
                if when is not None:
                    due.append(when)
            with self._lock:
                if not self._woken:  # else a line came in since the ticks: look again now
                    self._changed.wait(max(min(due) - time.monotonic(), 0) if due else None)
                self._woken = False


flusher = Flusher()
