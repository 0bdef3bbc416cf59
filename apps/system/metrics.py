"""Prometheus metrics, computed from the database at scrape time.

The database is the source of truth and is shared by every web process, so any process
answers a scrape with the same figures: no multiprocess bookkeeping, no counter that resets
when a worker restarts. Each family is one grouped query on an index; windowed families
(trigger evaluations, step durations) count rows of the last CADENZA_METRICS_WINDOW_SECONDS
and are gauges, because rows age out of the window (and retention deletes them).
"""

from __future__ import annotations

import hmac
import ipaddress
from collections.abc import Iterator
from datetime import datetime, timedelta

from django.conf import settings
from django.db.models import Count, DurationField, ExpressionWrapper, F, Min, Q, Sum
from django.http import HttpRequest
from django.utils import timezone
from prometheus_client.core import CollectorRegistry, GaugeHistogramMetricFamily, Metric
from prometheus_client.metrics_core import GaugeMetricFamily

from apps.reporters.models import Delivery
from apps.runs.models import Run, RunStatus, StepRun
from apps.triggers.models import TriggerEvaluation

# Upper bounds in seconds: from a set-variables step to an hour-long model training.
STEP_BUCKETS = (0.1, 0.5, 1.0, 5.0, 15.0, 60.0, 300.0, 900.0, 3600.0)


def _window_start(now: datetime) -> datetime:
    return now - timedelta(seconds=settings.CADENZA_METRICS_WINDOW_SECONDS)


def _runs(now: datetime) -> Iterator[Metric]:
    counts = dict(Run.objects.order_by().values_list("status").annotate(n=Count("id")))
    runs = GaugeMetricFamily(
        "cadenza_runs", "Runs by status: queued, running, and each outcome.", labels=["status"]
    )
    for status in RunStatus.values:  # every status, zeros included: series do not vanish
        runs.add_metric([status], counts.get(status, 0))
    yield runs
    yield GaugeMetricFamily(
        "cadenza_run_queue_depth",
        "Runs waiting for a worker (status queued).",
        value=counts.get(RunStatus.QUEUED, 0),
    )
    oldest = Run.objects.filter(status=RunStatus.QUEUED).aggregate(at=Min("queued_at"))["at"]
    yield GaugeMetricFamily(
        "cadenza_run_oldest_queued_age_seconds",
        "Age of the oldest queued run (0 when none): alert on a queue that does not drain.",
        value=(now - oldest).total_seconds() if oldest else 0.0,
    )


def _trigger_evaluations(now: datetime) -> Iterator[Metric]:
    counts = dict(
        TriggerEvaluation.objects.filter(at__gte=_window_start(now))
        .order_by()
        .values_list("result")
        .annotate(n=Count("id"))
    )
    family = GaugeMetricFamily(
        "cadenza_trigger_evaluations",
        "Trigger evaluations in the metrics window, by result.",
        labels=["result"],
    )
    for result in TriggerEvaluation.Result.values:
        family.add_metric([result], counts.get(result, 0))
    yield family


def _deliveries() -> Iterator[Metric]:
    counts = dict(Delivery.objects.order_by().values_list("status").annotate(n=Count("id")))
    family = GaugeMetricFamily(
        "cadenza_deliveries", "Reporter deliveries (the outbox) by status.", labels=["status"]
    )
    for status in Delivery.Status.values:
        family.add_metric([status], counts.get(status, 0))
    yield family


def _step_durations(now: datetime) -> Iterator[Metric]:
    """One row per step type, with a conditional count per bucket: the histogram is built
    by the database, whatever the number of steps."""
    buckets = {
        f"le_{index}": Count("id", filter=Q(duration__lte=timedelta(seconds=bound)))
        for index, bound in enumerate(STEP_BUCKETS)
    }
    rows = (
        StepRun.objects.filter(finished_at__gte=_window_start(now), started_at__isnull=False)
        .alias(duration=ExpressionWrapper(F("finished_at") - F("started_at"), DurationField()))
        .order_by()
        .values("type")
        .annotate(count=Count("id"), total=Sum("duration"), **buckets)
    )
    family = GaugeHistogramMetricFamily(
        "cadenza_step_duration_seconds",
        "Durations of the steps that finished in the metrics window, by step type.",
        labels=["type"],
    )
    for row in rows:
        counts = [(str(bound), row[f"le_{i}"]) for i, bound in enumerate(STEP_BUCKETS)]
        total = row["total"].total_seconds() if row["total"] else 0.0
        family.add_metric([row["type"]], [*counts, ("+Inf", row["count"])], gsum_value=total)
    yield family


class DatabaseCollector:
    """Registered in its own registry: process and platform collectors would describe only
    whichever web process answered, which is noise behind a load balancer."""

    def collect(self) -> Iterator[Metric]:
        now = timezone.now()
        yield GaugeMetricFamily(
            "cadenza_metrics_window_seconds",
            "The window of the windowed families (trigger evaluations, step durations).",
            value=settings.CADENZA_METRICS_WINDOW_SECONDS,
        )
        yield from _runs(now)
        yield from _trigger_evaluations(now)
        yield from _deliveries()
        yield from _step_durations(now)


registry = CollectorRegistry(auto_describe=False)
registry.register(DatabaseCollector())


_FORWARDED = ("HTTP_X_FORWARDED_FOR", "HTTP_FORWARDED", "HTTP_X_REAL_IP")


def metrics_access(request: HttpRequest) -> tuple[int, str] | None:
    """None when the request may read /metrics, else (status, reason).

    With CADENZA_METRICS_TOKEN set, every scrape must bear it (a local reverse proxy makes
    every client look like loopback). Without it, only direct loopback requests are served;
    one carrying forwarding headers came through a proxy, from anywhere.
    """
    token = settings.CADENZA_METRICS_TOKEN
    if token:
        scheme, _, given = request.headers.get("Authorization", "").partition(" ")
        given_bytes, token_bytes = given.strip().encode(), token.encode()
        if scheme.lower() == "bearer" and hmac.compare_digest(given_bytes, token_bytes):
            return None
        return 401, "Send Authorization: Bearer <CADENZA_METRICS_TOKEN>."
    try:
        loopback = ipaddress.ip_address(request.META.get("REMOTE_ADDR", "")).is_loopback
    except ValueError:
        loopback = False
    if loopback and not any(header in request.META for header in _FORWARDED):
        return None
    return 403, "Metrics are served to loopback only; set CADENZA_METRICS_TOKEN to scrape remotely."
