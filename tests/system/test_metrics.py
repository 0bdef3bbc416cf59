"""/metrics: figures computed from the rows in the database, parsed as Prometheus reads them."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from prometheus_client.parser import text_string_to_metric_families

from apps.reporters.models import Delivery, MessagingChannel
from apps.runs.models import Run, StepRun
from apps.triggers.models import Trigger, TriggerEvaluation

pytestmark = pytest.mark.django_db

TOKEN = "a-metrics-token-of-some-length"


def _scrape(client, **headers) -> dict[tuple[str, tuple], float]:
    response = client.get("/metrics", **headers)
    assert response.status_code == 200, response.content
    assert response["Content-Type"].startswith("text/plain; version=0.0.4")
    samples = {}
    for family in text_string_to_metric_families(response.content.decode()):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def _run(scenario, number: int, status: str) -> Run:
    return Run.objects.create(
        scenario=scenario, project=scenario.project, number=number, status=status
    )


def _step(run: Run, position: int, seconds: float, *, type_: str, ago: timedelta) -> StepRun:
    finished = timezone.now() - ago
    return StepRun.objects.create(
        run=run,
        position=position,
        name=f"s{position}",
        type=type_,
        status=StepRun.Status.SUCCESS,
        started_at=finished - timedelta(seconds=seconds),
        finished_at=finished,
    )


@pytest.fixture
def rows(make_scenario):
    """3 success, 1 failed, 2 queued (one queued 2 minutes ago), 1 running; evaluations and
    deliveries in and out of the 15-minute window; five step durations."""
    scenario = make_scenario()
    statuses = ["success"] * 3 + ["failed", "queued", "queued", "running"]
    runs = [_run(scenario, n + 1, status) for n, status in enumerate(statuses)]
    Run.objects.filter(pk=runs[4].pk).update(queued_at=timezone.now() - timedelta(minutes=2))

    trigger = Trigger.objects.create(scenario=scenario, name="watch", kind="dataset_change")
    for result in ["fired", "unchanged", "unchanged", "error", "fired"]:
        TriggerEvaluation.objects.create(trigger=trigger, result=result)
    old = TriggerEvaluation.objects.order_by("id").last()  # one "fired" outside the window
    TriggerEvaluation.objects.filter(pk=old.pk).update(at=timezone.now() - timedelta(hours=1))

    channel = MessagingChannel.objects.create(name="ops", kind="webhook")
    for status in ["sent", "sent", "failed", "pending"]:
        Delivery.objects.create(channel=channel, run=runs[0], event="end", status=status)

    minute = timedelta(minutes=1)
    _step(runs[0], 0, 0.05, type_="set_variables", ago=minute)
    _step(runs[0], 1, 3.0, type_="build", ago=minute)
    _step(runs[1], 0, 20.0, type_="build", ago=minute)
    _step(runs[1], 1, 7200.0, type_="build", ago=minute)
    _step(runs[2], 0, 1.0, type_="build", ago=timedelta(hours=2))  # outside the window
    return runs


def test_metrics_equal_the_rows(client, rows):
    samples = _scrape(client)

    def value(name, **labels):
        return samples[(name, tuple(sorted(labels.items())))]

    assert value("cadenza_runs", status="success") == 3
    assert value("cadenza_runs", status="failed") == 1
    assert value("cadenza_runs", status="queued") == 2
    assert value("cadenza_runs", status="running") == 1
    assert value("cadenza_runs", status="aborted") == 0  # present, so the series never vanish
    assert value("cadenza_run_queue_depth") == 2
    assert 115 <= value("cadenza_run_oldest_queued_age_seconds") < 180

    assert value("cadenza_trigger_evaluations", result="fired") == 1
    assert value("cadenza_trigger_evaluations", result="unchanged") == 2
    assert value("cadenza_trigger_evaluations", result="error") == 1
    assert value("cadenza_trigger_evaluations", result="waiting") == 0
    assert value("cadenza_metrics_window_seconds") == 900

    assert value("cadenza_deliveries", status="sent") == 2
    assert value("cadenza_deliveries", status="failed") == 1
    assert value("cadenza_deliveries", status="pending") == 1
    assert value("cadenza_deliveries", status="sending") == 0

    build = {
        le: value("cadenza_step_duration_seconds_bucket", type="build", le=le)
        for le in ("1.0", "5.0", "60.0", "3600.0", "+Inf")
    }
    assert build == {"1.0": 0, "5.0": 1, "60.0": 2, "3600.0": 2, "+Inf": 3}
    assert value("cadenza_step_duration_seconds_gcount", type="build") == 3
    assert value("cadenza_step_duration_seconds_gsum", type="build") == pytest.approx(7223.0)
    assert value("cadenza_step_duration_seconds_bucket", type="set_variables", le="0.1") == 1


def _queries_per_scrape(client) -> int:
    with CaptureQueriesContext(connection) as queries:
        assert client.get("/metrics").status_code == 200
    return len(queries)


def test_a_scrape_costs_the_same_few_queries_whatever_the_rows(client, make_scenario):
    empty = _queries_per_scrape(client)
    scenario = make_scenario()
    runs = [_run(scenario, n, "success") for n in range(1, 41)]
    for position, run in enumerate(runs):
        _step(run, position, position, type_=f"type{position % 7}", ago=timedelta(minutes=1))
    assert _queries_per_scrape(client) == empty == 5


def test_the_windowed_families_filter_on_indexed_columns(db):
    """Step durations and trigger evaluations select their window by an index, not a scan
    of every row ever recorded."""
    indexed = {
        (table, tuple(index["columns"]))
        for table in ("runs_steprun", "triggers_triggerevaluation")
        for index in connection.introspection.get_constraints(connection.cursor(), table).values()
        if index["index"]
    }
    assert ("runs_steprun", ("finished_at",)) in indexed
    assert ("triggers_triggerevaluation", ("at",)) in indexed


def test_openmetrics_when_the_scraper_asks(client, rows):
    response = client.get("/metrics", HTTP_ACCEPT="application/openmetrics-text; version=1.0.0")
    assert response.status_code == 200
    assert response["Content-Type"].startswith("application/openmetrics-text")
    assert response.content.decode().rstrip().endswith("# EOF")


def test_remote_addresses_are_refused_without_a_token(client):
    response = client.get("/metrics", REMOTE_ADDR="203.0.113.9")
    assert response.status_code == 403
    assert b"CADENZA_METRICS_TOKEN" in response.content


def test_a_loopback_request_through_a_proxy_is_refused(client):
    """nginx on the same host makes every client look like 127.0.0.1."""
    response = client.get("/metrics", HTTP_X_FORWARDED_FOR="203.0.113.9")
    assert response.status_code == 403


@pytest.mark.parametrize("header", [None, "Bearer wrong-token", f"Token {TOKEN}"])
def test_with_a_token_set_every_scrape_must_bear_it(client, settings, header):
    settings.CADENZA_METRICS_TOKEN = TOKEN
    extra = {"HTTP_AUTHORIZATION": header} if header else {}
    response = client.get("/metrics", **extra)  # from loopback, yet refused
    assert response.status_code == 401
    assert response["WWW-Authenticate"].startswith("Bearer")


def test_the_token_opens_metrics_from_anywhere(client, settings, rows):
    settings.CADENZA_METRICS_TOKEN = TOKEN
    samples = _scrape(client, REMOTE_ADDR="203.0.113.9", HTTP_AUTHORIZATION=f"Bearer {TOKEN}")
    assert samples[("cadenza_run_queue_depth", ())] == 2


def test_the_token_can_come_from_a_file(tmp_path, monkeypatch):
    from config.env import env_secret

    secret = tmp_path / "metrics-token"
    secret.write_text(TOKEN + "\n")
    monkeypatch.setenv("CADENZA_METRICS_TOKEN_FILE", str(secret))
    assert env_secret("CADENZA_METRICS_TOKEN") == TOKEN
