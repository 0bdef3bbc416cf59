"""A webhook peer is down, then failing, then back (issue #8). The outbox retries through
the worker as in production (a `reporters.deliver` task, queued again with a countdown
after each failure); the backoff is a setting, here one second, doubled each time."""

from __future__ import annotations

import json
import threading
from collections import defaultdict
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from django.db.models import Q

from apps.reporters.models import Delivery, MessagingChannel, Reporter
from apps.reporters.services import delivery_enqueue
from devstack import free_port
from tests.faults.ticker import start
from tests.processes import wait_until

pytestmark = [
    pytest.mark.worker,
    pytest.mark.fault,
    pytest.mark.timeout(120),
    pytest.mark.django_db(transaction=True),
]
BOUND = 30
OUTBOX = {
    "CADENZA_OUTBOUND_ALLOW": "127.0.0.0/8",  # the peer listens on loopback
    "CADENZA_DELIVERY_BACKOFF": 1,  # seconds: attempts at 0, 1, 3, 7, 15… s
    "CADENZA_DELIVERY_ATTEMPTS": 8,  # so that no delivery gives up within the test
}
SCENARIOS = 3


class Peer:
    """A webhook peer on a loopback port: down until ``listen`` (connection refused), then
    answering 503 while ``failing``, else 200. It records its answers per idempotency key."""

    def __init__(self):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}/hook"
        self.failing = True
        self.answers: dict[str, list[int]] = defaultdict(list)
        self.mismatched: list[str] = []  # the header's key differs from the payload's
        self.lock = threading.Lock()
        self.server: ThreadingHTTPServer | None = None

    def listen(self) -> None:
        self.server = ThreadingHTTPServer(("127.0.0.1", self.port), self._handler())
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()

    def answered(self) -> dict[str, list[int]]:
        with self.lock:
            return {key: list(codes) for key, codes in self.answers.items()}

    def _handler(self):
        peer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                key = self.headers["Idempotency-Key"]
                code = 503 if peer.failing else 200
                with peer.lock:
                    peer.answers[key].append(code)
                    if body.get("idempotency_key") != key:
                        peer.mismatched.append(key)
                self.send_response(code)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        return Handler


@pytest.fixture
def peer():
    peer = Peer()
    try:
        yield peer
    finally:
        peer.close()


def test_every_delivery_reaches_a_peer_that_comes_back_and_none_twice(
    celery_worker_process, make_scenario, cast, peer
):
    worker = celery_worker_process(**OUTBOX)
    channel = MessagingChannel(name="peer", kind="webhook", config={})
    channel.secrets = {"url": peer.url}
    channel.save()
    noop = {"name": "noop", "type": "set_variables", "params": {"variables": {"x": 1}}}
    runs = []
    for n in range(SCENARIOS):
        scenario = make_scenario(name=f"reported {n}", steps=[noop])
        Reporter.objects.create(scenario=scenario, name="peer", channel=channel, when="both")
        runs.append(start(scenario, cast["owner"]))
    deliveries = Delivery.objects.filter(run__in=runs)

    # Down: nothing listens. Each start and end message fails twice (the start message's
    # first attempt is made by the runner itself, every retry by the worker).
    # (An attempt is counted when it is claimed, before it connects: two failed attempts
    # are two counted and no longer sending, or three counted.)
    failed_twice = deliveries.filter(Q(attempts=2, status="pending") | Q(attempts__gte=3))
    wait_until(
        lambda: failed_twice.count() == 2 * SCENARIOS,
        timeout=BOUND,
        what="every delivery failed twice while the peer was down",
    )
    # Failing: the peer answers 503 until each message was refused once more.
    peer.listen()
    keys = {str(key) for key in deliveries.values_list("key", flat=True)}
    wait_until(lambda: keys <= set(peer.answered()), timeout=BOUND, what="a 503 for every delivery")
    # Back. Each delivery's message is also sent twice more, as a redelivery or a sweep
    # racing the scheduled retry would: the claim lets one attempt through.
    peer.failing = False
    for delivery_id in deliveries.filter(status="pending").values_list("pk", flat=True):
        delivery_enqueue(delivery_id)
        delivery_enqueue(delivery_id)
    wait_until(
        lambda: deliveries.filter(status="sent").count() == 2 * SCENARIOS,
        timeout=BOUND,
        what="every delivery sent",
    )
    worker.stop()  # nothing can be sent any more: what the peer got is final

    answered = peer.answered()
    assert set(answered) == keys
    assert not peer.mismatched
    for delivery in deliveries:
        codes = answered[str(delivery.key)]
        assert codes[-1] == 200 and codes.count(200) == 1, (delivery.event, codes)
        assert set(codes[:-1]) == {503}, (delivery.event, codes)
        refused = delivery.attempts - len(codes)  # the attempts made while nothing listened
        assert refused >= 2, (delivery.event, delivery.attempts, codes)
    for run in runs:
        run.refresh_from_db()
        assert run.status == "success", run.outcome_message  # a reporter never fails a run
