from __future__ import annotations

from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.cache import never_cache
from prometheus_client.exposition import choose_encoder

from apps.system.health import health_report
from apps.system.metrics import metrics_access, registry


def _timeout(raw: str | None) -> float:
    try:
        return min(max(float(raw), 0.1), 10.0) if raw else 3.0
    except ValueError:
        return 3.0


@never_cache
def health(request: HttpRequest) -> JsonResponse:
    """Database, broker, channel layer, a Celery worker (a real round trip) and beat's last
    tick; 503 when any part is not ok. Served at /health/ and /healthz."""
    report = health_report(timeout=_timeout(request.GET.get("timeout")))
    return JsonResponse(report, status=200 if report["status"] == "ok" else 503)


@never_cache
def metrics(request: HttpRequest) -> HttpResponse:
    """Prometheus exposition (OpenMetrics when the scraper asks for it)."""
    refused = metrics_access(request)
    if refused is not None:
        status, reason = refused
        response = HttpResponse(reason + "\n", status=status, content_type="text/plain")
        if status == 401:
            response["WWW-Authenticate"] = 'Bearer realm="metrics"'
        return response
    encoder, content_type = choose_encoder(request.headers.get("Accept", ""))
    return HttpResponse(encoder(registry), content_type=content_type)
