from __future__ import annotations

import time

from celery.exceptions import TimeoutError as CeleryTimeout
from django.conf import settings
from django.db import connection
from django.http import JsonResponse
from django.utils import timezone
from django.views.decorators.cache import never_cache

from apps.system.models import Heartbeat
from apps.system.tasks import ping


def _database() -> dict:
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
        return {"ok": True, "vendor": connection.vendor}
    except Exception as error:  # the point of a health check is to report, not raise
        return {"ok": False, "error": type(error).__name__}


def _worker(timeout: float) -> dict:
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
    return {"ok": True, "latency_ms": round((time.perf_counter() - started) * 1000, 1), **answer}


def _beat() -> dict:
    beat = Heartbeat.objects.filter(name="beat").first()
    if beat is None:
        return {"ok": False, "error": "beat has not ticked yet"}
    age = (timezone.now() - beat.at).total_seconds()
    # Allow two missed ticks and a little slack before calling beat dead.
    ok = age <= settings.CADENZA_HEARTBEAT_SECONDS * 2 + 5
    return {"ok": ok, "last_tick": beat.at.isoformat(), "age_s": round(age, 1)}


def _timeout(raw: str | None) -> float:
    try:
        return min(max(float(raw), 0.1), 10.0) if raw else 3.0
    except ValueError:
        return 3.0


@never_cache
def health(request):
    """Liveness of the database, a Celery worker (a real round trip) and beat."""
    report = {"mode": settings.MODE, "database": _database()}
    report["worker"] = _worker(timeout=_timeout(request.GET.get("timeout")))
    report["beat"] = _beat() if report["database"]["ok"] else {"ok": False}
    healthy = all(part["ok"] for part in (report["database"], report["worker"], report["beat"]))
    report["status"] = "ok" if healthy else "degraded"
    return JsonResponse(report, status=200 if healthy else 503)
