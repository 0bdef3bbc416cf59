"""The probes behind /health/ and /healthz: each answers {"ok": bool, ...} and never raises,
because the point of a health check is to report a broken part, not to become one."""

from __future__ import annotations

import asyncio
import secrets
import time

from asgiref.sync import async_to_sync
from celery.exceptions import TimeoutError as CeleryTimeout
from channels.layers import get_channel_layer
from django.conf import settings
from django.db import connection
from django.utils import timezone

from apps.system.models import Heartbeat
from apps.system.tasks import ping

PROBE_GROUP = "cadenza.healthz"


def _elapsed_ms(started: float) -> float:
    return round((time.perf_counter() - started) * 1000, 1)


def database() -> dict:
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
        return {"ok": True, "vendor": connection.vendor}
    except Exception as error:
        return {"ok": False, "error": type(error).__name__}


def broker(timeout: float) -> dict:
    """Distributed: a Redis PING on the broker URL. Embedded: the in-memory transport lives in
    this process, so it is up when the process is (the worker probe proves it is consumed)."""
    url = settings.CELERY_BROKER_URL
    if url.startswith("memory://"):
        return {"ok": True, "transport": "memory"}
    import redis

    started = time.perf_counter()
    client = redis.Redis.from_url(url, socket_connect_timeout=timeout, socket_timeout=timeout)
    try:
        client.ping()
    except Exception as error:  # the URL may hold a password: name the error, not the message
        return {"ok": False, "transport": "redis", "error": type(error).__name__}
    finally:
        client.close()
    return {"ok": True, "transport": "redis", "latency_ms": _elapsed_ms(started)}


def worker(timeout: float) -> dict:
    started = time.perf_counter()
    try:
        # Embedded mode: the worker's thread pool sets Celery's process-wide "never join a
        # result inside a task" guard, and this web request shares its process. It is no task.
        # The in-memory result backend is polled, by default every 0.5 s: every probe took
        # half a second. (Redis answers by pub/sub: the interval does not apply there.)
        answer = ping.apply_async().get(
            timeout=timeout, interval=0.005, disable_sync_subtasks=False
        )
    except CeleryTimeout:
        return {"ok": False, "error": f"no worker answered within {timeout:g} s"}
    except Exception as error:
        return {"ok": False, "error": type(error).__name__}
    return {"ok": True, "latency_ms": _elapsed_ms(started), **answer}


async def _group_round_trip(layer, timeout: float) -> bool:
    # A group, not a bare channel: live logs and the monitoring page publish to groups.
    channel = await layer.new_channel("healthz.")
    nonce = secrets.token_hex(8)
    await layer.group_add(PROBE_GROUP, channel)
    try:
        await layer.group_send(PROBE_GROUP, {"type": "healthz.ping", "nonce": nonce})
        message = await asyncio.wait_for(layer.receive(channel), timeout)
    finally:
        await layer.group_discard(PROBE_GROUP, channel)
    return message.get("nonce") == nonce


def channel_layer(timeout: float) -> dict:
    """A message through the layer and back: group_add, group_send, receive."""
    started = time.perf_counter()
    try:
        layer = get_channel_layer()
        backend = type(layer).__name__
        ok = async_to_sync(_group_round_trip)(layer, timeout)
    except TimeoutError:
        return {"ok": False, "error": f"no message back within {timeout:g} s"}
    except Exception as error:
        return {"ok": False, "error": type(error).__name__}
    if not ok:
        return {"ok": False, "backend": backend, "error": "a different message came back"}
    return {"ok": True, "backend": backend, "latency_ms": _elapsed_ms(started)}


def beat() -> dict:
    row = Heartbeat.objects.filter(name="beat").first()
    if row is None:
        return {"ok": False, "error": "beat has not ticked yet"}
    age = (timezone.now() - row.at).total_seconds()
    # Allow two missed ticks and a little slack before calling beat dead.
    ok = age <= settings.CADENZA_HEARTBEAT_SECONDS * 2 + 5
    return {"ok": ok, "last_tick": row.at.isoformat(), "age_s": round(age, 1)}


PARTS = ("database", "broker", "channel_layer", "worker", "beat")


def health_report(timeout: float) -> dict:
    """Every part, each with "ok"; parts that depend on a failed one are not tried (a dead
    broker would otherwise make the worker probe wait its whole timeout)."""
    report: dict = {"mode": settings.MODE, "database": database()}
    report["broker"] = broker(timeout)
    report["channel_layer"] = channel_layer(timeout)
    if report["broker"]["ok"]:
        report["worker"] = worker(timeout)
    else:
        report["worker"] = {"ok": False, "error": "not tried: the broker is down"}
    if report["database"]["ok"]:
        report["beat"] = beat()
    else:
        report["beat"] = {"ok": False, "error": "not tried: the database is down"}
    healthy = all(report[part]["ok"] for part in PARTS)
    report["status"] = "ok" if healthy else "degraded"
    return report
