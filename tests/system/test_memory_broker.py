"""The embedded broker (apps/system/memory_broker.py) wakes its consumer on a put or an ack
instead of polling: with the idle wait made a minute long, a waiting consumer still gets
each message as soon as it can take it."""

from __future__ import annotations

import threading

import pytest
from kombu import Connection, Consumer, Exchange, Producer, Queue

from apps.system import memory_broker
from tests.processes import wait_until

pytestmark = pytest.mark.timeout(60)
TRANSPORT = "apps.system.memory_broker:Transport"


@pytest.fixture
def broker(monkeypatch, request):
    monkeypatch.setattr(memory_broker, "IDLE_WAIT", 60.0)  # a poll would never come in time
    queue = Queue(f"test-{request.node.name}", Exchange("test", type="direct"), routing_key="k")
    slow = {"polling_interval": 60}  # what kombu's own memory transport would sleep
    with (
        Connection(transport=TRANSPORT, transport_options=slow) as consuming,
        Connection(transport=TRANSPORT, transport_options=slow) as sending,
    ):
        yield consuming, sending, queue


def test_the_settings_use_it_in_embedded_mode(settings):
    assert settings.MODE == "distributed" or settings.CELERY_BROKER_TRANSPORT == TRANSPORT
    from config.celery import app

    with app.connection_for_write(url="memory://", transport=TRANSPORT) as connection:
        assert isinstance(connection.transport, memory_broker.Transport)


def test_a_waiting_consumer_wakes_when_a_message_is_put(broker):
    consuming, sending, queue = broker
    received = []
    consumer = Consumer(consuming, [queue], callbacks=[lambda body, m: (received.append(body),
                                                                         m.ack())])  # fmt: skip
    with consumer:
        drain = threading.Thread(target=consuming.drain_events, kwargs={"timeout": 50})
        drain.start()
        Producer(sending).publish({"n": 1}, exchange=queue.exchange, routing_key="k",
                                  declare=[queue])  # fmt: skip
        drain.join(20)
        assert not drain.is_alive(), "the consumer slept through the put"
    assert received == [{"n": 1}]


def test_a_consumer_at_its_prefetch_limit_wakes_when_it_acks(broker):
    consuming, sending, queue = broker
    producer = Producer(sending)
    for n in (1, 2):
        producer.publish({"n": n}, exchange=queue.exchange, routing_key="k", declare=[queue])
    messages = []
    consumer = Consumer(consuming, [queue], callbacks=[lambda body, m: messages.append(m)])
    consumer.qos(prefetch_count=1)
    with consumer:
        consuming.drain_events(timeout=5)
        assert [m.payload for m in messages] == [{"n": 1}]
        drain = threading.Thread(target=consuming.drain_events, kwargs={"timeout": 50})
        drain.start()  # may not take n=2 yet: one unacked message is its limit
        messages[0].ack()  # from this thread, as a pool thread acks a finished task
        wait_until(lambda: len(messages) == 2, timeout=20, what="the second message")
        drain.join(20)
    assert [m.payload for m in messages] == [{"n": 1}, {"n": 2}]
