"""The outbox: retries with backoff, permanent errors, conditions over run history, safety."""

from __future__ import annotations

import time

import pytest

from apps.reporters.models import Delivery
from apps.reporters.services import delivery_send
from apps.runs.models import Run
from apps.runs.services import run_start, runs_sweep
from tests.reporters.conftest import FAIL, PASS

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.timeout(60)]


def drain(queued):
    """Send every queued delivery, including the retries that sending queues."""
    while queued:
        delivery_send(queued.pop(0))


@pytest.fixture
def webhook(httpserver, channel):
    return channel("webhook", secrets={"url": httpserver.url_for("/hook")})


def test_temporary_errors_are_retried_until_the_peer_accepts(
    httpserver, webhook, reporter, finished_run, queued_deliveries
):
    for status in (500, 500, 200):
        httpserver.expect_ordered_request("/hook").respond_with_data("", status=status)
    run = finished_run(reporter(webhook, steps=PASS).scenario)
    drain(queued_deliveries)
    delivery = Delivery.objects.get(run=run)
    assert (delivery.status, delivery.attempts, delivery.response_code) == ("sent", 3, 200)
    keys = {request.headers["Idempotency-Key"] for request, _ in httpserver.log}
    assert keys == {str(delivery.key)}  # every attempt carries the same key
    run.refresh_from_db()
    assert run.status == "success"


def test_retries_back_off_exponentially(
    httpserver, settings, webhook, reporter, finished_run, queued_deliveries
):
    settings.CADENZA_DELIVERY_BACKOFF = 30
    httpserver.expect_request("/hook").respond_with_data("", status=503)
    run = finished_run(reporter(webhook, steps=PASS).scenario)
    delivery_send(queued_deliveries.pop(0))
    delivery = Delivery.objects.get(run=run)
    assert delivery.status == "pending" and delivery.attempts == 1
    wait = (delivery.next_attempt_at - delivery.created_at).total_seconds()
    assert 29 < wait < 40
    assert delivery_send(delivery.pk) is None  # not due yet: nothing is sent
    assert len(httpserver.log) == 1


@pytest.mark.parametrize("status", [400, 401])
def test_client_errors_are_permanent_and_not_retried(
    httpserver, webhook, reporter, finished_run, queued_deliveries, status
):
    httpserver.expect_request("/hook").respond_with_data("no", status=status)
    run = finished_run(reporter(webhook, steps=FAIL).scenario)
    drain(queued_deliveries)
    delivery = Delivery.objects.get(run=run)
    assert delivery.status == "failed" and delivery.permanent_error
    assert delivery.attempts == 1 and delivery.response_code == status
    assert len(httpserver.log) == 1
    run.refresh_from_db()
    assert run.status == "failed"  # the run's own outcome, untouched by the reporter


def _sequence(make_scenario, finished_run, reporter_for, outcomes):
    scenario = make_scenario(
        steps=[
            {
                "name": "maybe",
                "type": "set_variables",
                "run_condition": "expression",
                "condition_expression": "triggerParam_ok or no_such_name",
                "params": {"variables": {}},
            }
        ]
    )
    reporter_for(scenario)
    runs = []
    for outcome in outcomes:
        from apps.runs.runner import run_execute

        started = run_start(scenario=scenario, trigger_params={"ok": outcome == "success"}).run
        run_execute(started.pk)
        runs.append(Run.objects.get(pk=started.pk))
    assert [run.status for run in runs] == outcomes
    return runs


def test_only_when_the_outcome_changed(
    webhook, reporter, make_scenario, finished_run, queued_deliveries
):
    runs = _sequence(
        make_scenario,
        finished_run,
        lambda s: reporter(webhook, scenario=s, condition="outcome != previousOutcome"),
        ["success", "success", "failed", "failed", "success"],
    )
    reported = [run.number for run in runs if run.deliveries.exists()]
    assert reported == [1, 3, 5]


def test_after_three_consecutive_failures(
    webhook, reporter, make_scenario, finished_run, queued_deliveries
):
    runs = _sequence(
        make_scenario,
        finished_run,
        lambda s: reporter(webhook, scenario=s, condition="consecutiveFailures >= 3"),
        ["failed", "failed", "failed", "failed", "success", "failed"],
    )
    reported = [run.number for run in runs if run.deliveries.exists()]
    assert reported == [3, 4]


@pytest.mark.parametrize("address", ["10.0.0.1", "169.254.169.254", "127.0.0.1", "[::1]"])
def test_private_addresses_are_refused_by_default(
    settings, channel, reporter, finished_run, queued_deliveries, address
):
    settings.CADENZA_OUTBOUND_ALLOW = []
    hook = channel("webhook", secrets={"url": f"http://{address}:9/hook"})
    run = finished_run(reporter(hook, steps=PASS).scenario)
    started = time.monotonic()
    drain(queued_deliveries)
    delivery = Delivery.objects.get(run=run)
    assert time.monotonic() - started < 1  # refused before any connection attempt
    assert delivery.status == "failed" and delivery.permanent_error
    assert "private, loopback or link-local" in delivery.error


def test_start_reporters_go_out_before_the_first_step(
    httpserver, webhook, reporter, finished_run, queued_deliveries
):
    httpserver.expect_request("/hook").respond_with_data("ok")
    run = finished_run(reporter(webhook, steps=PASS, when="start").scenario)
    delivery = Delivery.objects.get(run=run)
    assert delivery.event == "start" and delivery.status == "sent"
    assert delivery.sent_at < run.step_runs.get().started_at
    assert '"outcome": "running"' in httpserver.log[0][0].get_data(as_text=True)


def test_end_reporters_fire_for_runs_ended_by_the_reaper(
    settings, webhook, reporter, make_scenario, no_dispatch, queued_deliveries, cast
):
    from django.utils import timezone

    settings.CADENZA_REAPER_TIMEOUT = 5
    scenario = make_scenario()
    reporter(webhook, scenario=scenario, condition="outcome == 'failed'")
    run = run_start(scenario=scenario, user=cast["owner"]).run
    long_ago = timezone.now() - timezone.timedelta(minutes=5)
    Run.objects.filter(pk=run.pk).update(
        status="running", started_at=long_ago, heartbeat_at=long_ago
    )
    assert runs_sweep()["reaped"] == 1
    delivery = Delivery.objects.get(run=run)
    assert delivery.event == "end" and delivery.facts["outcome"] == "failed"


def test_a_broken_template_is_recorded_not_raised(
    webhook, reporter, finished_run, queued_deliveries
):
    run = finished_run(reporter(webhook, steps=PASS, body="{% if %}").scenario)
    delivery = Delivery.objects.get(run=run)
    assert delivery.status == "failed" and "Reporter error" in delivery.error
    assert run.status == "success"


def test_send_message_step_sends_mid_run(
    httpserver, webhook, make_scenario, finished_run, queued_deliveries
):
    httpserver.expect_request("/hook").respond_with_data("ok")
    scenario = make_scenario(
        steps=[
            {"name": "prepare", "type": "set_variables", "params": {"variables": {"rows": 42}}},
            {
                "name": "notify",
                "type": "send_message",
                "params": {
                    "channel": webhook.name,
                    "subject": "{{ variables.rows }} rows so far",
                    "body": "{% for s in steps %}{{ s.name }}={{ s.status }} {% endfor %}",
                },
            },
        ]
    )
    run = finished_run(scenario)
    assert run.status == "success"
    delivery = Delivery.objects.get(run=run)
    assert delivery.event == "step" and delivery.status == "sent"
    payload = httpserver.log[0][0].get_json()
    assert payload["subject"] == "42 rows so far"
    assert payload["body"].startswith("prepare=success")
    assert run.step_runs.get(name="notify").output["status"] == "sent"


def test_send_message_step_fails_on_a_permanent_error(
    httpserver, webhook, make_scenario, finished_run, queued_deliveries
):
    httpserver.expect_request("/hook").respond_with_data("no", status=403)
    run = finished_run(
        make_scenario(
            steps=[{"name": "notify", "type": "send_message", "params": {"channel": webhook.name}}]
        )
    )
    step = run.step_runs.get()
    assert step.status == "failed" and "403" in step.message


def test_channel_restricted_to_groups_is_refused_to_others(
    httpserver, webhook, make_scenario, finished_run, queued_deliveries
):
    from django.contrib.auth.models import Group

    webhook.allowed_groups.add(Group.objects.create(name="ops"))
    run = finished_run(
        make_scenario(
            steps=[{"name": "notify", "type": "send_message", "params": {"channel": webhook.name}}]
        )
    )
    assert "usable by the run-as user" in run.step_runs.get().message
    assert not httpserver.log


def test_channel_test_send_and_reporter_preview(
    httpserver, webhook, reporter, finished_run, queued_deliveries, cast
):
    from apps.reporters.services import channel_test_send, reporter_preview

    httpserver.expect_request("/hook").respond_with_data("ok")
    delivery = channel_test_send(webhook, recipients=[], user=cast["superuser"])
    assert delivery.status == "sent" and delivery.event == "test"
    rep = reporter(
        webhook,
        steps=FAIL,
        condition="outcome == 'failed'",
        subject="{{ scenario.name }} → {{ outcome }}",
    )
    run = finished_run(rep.scenario)
    preview = reporter_preview(rep, run)
    assert preview == {
        "subject": f"{rep.scenario.name} → failed",
        "body": preview["body"],
        "would_send": True,
        "recipients": [],
    }
    assert "boom: failed" in preview["body"]
