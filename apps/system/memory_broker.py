"""The embedded mode's broker: kombu's in-memory transport, woken by what happens instead of
polling (``CELERY_BROKER_TRANSPORT``).

kombu's virtual transports look for a message and, finding none, sleep ``polling_interval``
before looking again. At 0.01 s that woke the idle embedded process a hundred times a second
(~0.5 % of a core, docs/performance.md); at kombu's default 1 s it would add up to a second
to every dispatch. Here a consumer finding nothing waits until a message is put, acked or
rejected (an ack can let a consumer at its prefetch limit take the next message), and at
most ``IDLE_WAIT`` seconds. The queues stay kombu's: in-process and shared by every thread.
"""

from __future__ import annotations

import threading
from queue import Empty
from time import monotonic

from kombu.transport import memory

IDLE_WAIT = 1.0  # seconds a consumer sleeps at most when nothing happens

_changed = threading.Condition()
_changes = 0  # puts, acks and rejects so far, in this process: a waiter waits for it to move


def _announce() -> None:
    global _changes
    with _changed:
        _changes += 1
        _changed.notify_all()


class Channel(memory.Channel):
    def _put(self, queue, message, **kwargs):
        super()._put(queue, message, **kwargs)
        _announce()

    def _put_fanout(self, exchange, message, routing_key=None, **kwargs):
        super()._put_fanout(exchange, message, routing_key, **kwargs)
        _announce()

    def basic_ack(self, delivery_tag, multiple=False):
        super().basic_ack(delivery_tag, multiple)
        _announce()

    def basic_reject(self, delivery_tag, requeue=False):
        super().basic_reject(delivery_tag, requeue)
        _announce()


class Transport(memory.Transport):
    Channel = Channel

    def drain_events(self, connection, timeout=None):
        """Deliver one message, as kombu's own, but waiting on ``_changed`` instead of
        sleeping between looks. The count is read before looking, so a message put after
        the look and before the wait ends the wait at once."""
        deadline = None if timeout is None else monotonic() + timeout
        while True:
            with _changed:
                seen = _changes
            try:
                return self.cycle.get(self._deliver, timeout=timeout)
            except Empty:
                pass
            wait = IDLE_WAIT if deadline is None else min(IDLE_WAIT, deadline - monotonic())
            if wait <= 0:
                raise TimeoutError  # socket.timeout, as kombu's transports raise
            with _changed:
                _changed.wait_for(lambda seen=seen: _changes != seen, timeout=wait)
