"""/healthz (and /health/): database, broker, channel layer, worker and beat, on the test
PostgreSQL and Redis; 503 as soon as one part is not ok."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from apps.system.models import Heartbeat
from devstack import free_port

pytestmark = pytest.mark.timeout(90)


def _beat_ticked(at=None) -> None:
    Heartbeat.objects.update_or_create(name="beat", defaults={"at": at or timezone.now()})


@pytest.mark.worker
@pytest.mark.django_db(transaction=True)
def test_every_part_ok_answers_200(client, celery_worker_process):
    worker = celery_worker_process()
    _beat_ticked()  # beat does not run here: its tick, by hand
    for path in ("/healthz", "/health/"):
        response = client.get(path)
        report = response.json()
        assert response.status_code == 200, (path, report)
        assert report["status"] == "ok"
        assert report["database"] == {"ok": True, "vendor": "postgresql"}
        assert report["broker"]["ok"] is True and report["broker"]["transport"] == "redis"
        assert report["channel_layer"]["ok"] is True
        assert report["channel_layer"]["backend"] == "RedisChannelLayer"
        assert report["worker"]["ok"] is True and report["worker"]["pid"] == worker.pid
        assert report["beat"]["ok"] is True


@pytest.mark.django_db
def test_no_worker_is_503_and_says_so(client):
    _beat_ticked()
    response = client.get("/healthz?timeout=0.5")
    report = response.json()
    assert response.status_code == 503
    assert report["status"] == "degraded"
    assert report["worker"] == {"ok": False, "error": "no worker answered within 0.5 s"}
    # The rest is reported as it is: the broker and the layer answer.
    assert report["broker"]["ok"] is True and report["channel_layer"]["ok"] is True


@pytest.mark.django_db
def test_a_stale_beat_is_503(client, settings):
    _beat_ticked(timezone.now() - timedelta(seconds=settings.CADENZA_HEARTBEAT_SECONDS * 3 + 10))
    report = client.get("/healthz?timeout=0.2").json()
    assert report["beat"]["ok"] is False
    assert report["beat"]["age_s"] > settings.CADENZA_HEARTBEAT_SECONDS * 2


@pytest.mark.django_db
def test_a_broker_that_refuses_connections_is_503(client, settings):
    """A real refused connection (nothing listens on the port); the worker is not tried."""
    settings.CELERY_BROKER_URL = f"redis://:secret-pw@127.0.0.1:{free_port()}/0"
    response = client.get("/healthz?timeout=1")
    report = response.json()
    assert response.status_code == 503
    assert report["broker"] == {"ok": False, "transport": "redis", "error": "ConnectionError"}
    assert report["worker"]["error"] == "not tried: the broker is down"
    assert "secret-pw" not in response.content.decode()


@pytest.mark.django_db
def test_a_channel_layer_that_cannot_connect_is_503(client, settings):
    settings.CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "channels_redis.core.RedisChannelLayer",
            "CONFIG": {"hosts": [f"redis://127.0.0.1:{free_port()}/0"]},
        }
    }
    response = client.get("/healthz?timeout=1")
    assert response.status_code == 503
    assert response.json()["channel_layer"]["ok"] is False


@pytest.mark.django_db
def test_the_in_memory_parts_of_the_embedded_mode(client, settings):
    """Embedded mode: the broker is the in-process memory transport; the channel layer is
    the in-process one, and the round trip goes through it."""
    settings.CELERY_BROKER_URL = "memory://"
    settings.CHANNEL_LAYERS = {
        "default": {"BACKEND": "apps.runs.layers.ThreadSafeInMemoryChannelLayer"}
    }
    report = client.get("/healthz?timeout=0.2").json()
    assert report["broker"] == {"ok": True, "transport": "memory"}
    assert report["channel_layer"]["ok"] is True
    assert report["channel_layer"]["backend"] == "ThreadSafeInMemoryChannelLayer"


def test_the_probe_does_not_leave_the_test_group_behind(settings):
    """group_discard runs even after a timeout, so probes do not grow the group in Redis."""
    from asgiref.sync import async_to_sync
    from channels.layers import get_channel_layer

    from apps.system.health import PROBE_GROUP, channel_layer

    assert channel_layer(1.0)["ok"] is True
    layer = get_channel_layer()

    async def members() -> int:
        async with layer.connection(layer.consistent_hash(PROBE_GROUP)) as connection:
            return await connection.zcard(layer._group_key(PROBE_GROUP))

    assert async_to_sync(members)() == 0
