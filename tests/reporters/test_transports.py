"""Each transport delivers what its peer expects, to a real local server."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import shutil
import tempfile
from pathlib import Path
from urllib.parse import parse_qs

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.handlers import Message as SmtpMessage

from apps.reporters.models import Delivery
from apps.reporters.services import delivery_send
from devstack import free_port
from tests.flow.conftest import files_connection, pg_connection  # noqa: F401
from tests.reporters.conftest import FAIL, PASS

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.timeout(60)]
SID = "AC" + "0123456789abcdef" * 2


def send_all(run, queued) -> list[Delivery]:
    for delivery_id in queued:
        delivery_send(delivery_id)
    return list(Delivery.objects.filter(run=run).order_by("id"))


def requests_to(httpserver, path):
    return [request for request, _ in httpserver.log if request.path == path]


@pytest.mark.parametrize("steps,outcome", [(FAIL, "failed"), (PASS, "success")])
def test_webhook_is_signed_and_carries_the_facts(
    httpserver, channel, reporter, finished_run, queued_deliveries, steps, outcome
):
    httpserver.expect_request("/hook", method="POST").respond_with_data("ok")
    hook = channel("webhook", secrets={"url": httpserver.url_for("/hook"), "hmac_secret": "s3"})
    scenario = reporter(hook, steps=steps).scenario
    run = finished_run(scenario)
    [delivery] = send_all(run, queued_deliveries)
    assert delivery.status == "sent" and delivery.response_code == 200
    [request] = requests_to(httpserver, "/hook")
    body = request.get_data()
    expected = "sha256=" + hmac.new(b"s3", body, hashlib.sha256).hexdigest()
    assert hmac.compare_digest(request.headers["X-Cadenza-Signature"], expected)
    payload = json.loads(body)
    assert payload["outcome"] == outcome and payload["scenario"] == scenario.name
    assert payload["idempotency_key"] == request.headers["Idempotency-Key"] == str(delivery.key)
    assert payload["project"] == "SALES" and payload["run_id"] == run.pk


@pytest.mark.parametrize("steps,colour", [(FAIL, "#c62828"), (PASS, "#2e7d32")])
def test_slack_webhook_colours_the_outcome(
    httpserver, channel, reporter, finished_run, queued_deliveries, steps, colour
):
    httpserver.expect_request("/slack").respond_with_data("ok")
    slack = channel("slack", secrets={"webhook_url": httpserver.url_for("/slack")})
    run = finished_run(reporter(slack, steps=steps).scenario)
    [delivery] = send_all(run, queued_deliveries)
    assert delivery.status == "sent"
    payload = json.loads(requests_to(httpserver, "/slack")[0].get_data())
    assert payload["attachments"][0]["color"] == colour
    assert payload["text"] == delivery.subject
    assert payload["attachments"][0]["blocks"][1]["text"]["text"] == delivery.body


def test_slack_bot_token_and_its_permanent_errors(
    httpserver, channel, reporter, finished_run, queued_deliveries
):
    httpserver.expect_ordered_request("/api/chat.postMessage").respond_with_json({"ok": True})
    httpserver.expect_ordered_request("/api/chat.postMessage").respond_with_json(
        {"ok": False, "error": "invalid_auth"}
    )
    bot = channel(
        "slack",
        config={"channel": "#alerts", "api_url": httpserver.url_for("/api")},
        secrets={"token": "xoxb-secret"},
    )
    scenario = reporter(bot, steps=PASS).scenario
    first = send_all(finished_run(scenario), queued_deliveries)[0]
    queued_deliveries.clear()
    second = send_all(finished_run(scenario), queued_deliveries)[0]
    request = requests_to(httpserver, "/api/chat.postMessage")[0]
    assert request.headers["Authorization"] == "Bearer xoxb-secret"
    assert json.loads(request.get_data())["channel"] == "#alerts"
    assert first.status == "sent"
    assert second.status == "failed" and second.permanent_error and second.attempts == 1
    assert "invalid_auth" in second.error and "xoxb" not in second.error


@pytest.mark.parametrize("steps,outcome", [(FAIL, "failed"), (PASS, "success")])
def test_teams_gets_an_adaptive_card(
    httpserver, channel, reporter, finished_run, queued_deliveries, steps, outcome
):
    httpserver.expect_request("/teams").respond_with_data("1", status=202)
    teams = channel("teams", secrets={"webhook_url": httpserver.url_for("/teams")})
    run = finished_run(reporter(teams, steps=steps).scenario)
    [delivery] = send_all(run, queued_deliveries)
    assert delivery.status == "sent" and delivery.response_code == 202
    payload = json.loads(requests_to(httpserver, "/teams")[0].get_data())
    attachment = payload["attachments"][0]
    assert attachment["contentType"] == "application/vnd.microsoft.card.adaptive"
    card = attachment["content"]
    assert card["type"] == "AdaptiveCard"
    facts = {fact["title"]: fact["value"] for fact in card["body"][1]["facts"]}
    assert facts["Outcome"] == outcome and facts["Project"] == "SALES"
    assert card["actions"][0]["url"].endswith(f"/runs/run/{run.pk}/change/")


@pytest.mark.parametrize("steps", [FAIL, PASS])
def test_twilio_posts_the_form_with_basic_auth(
    httpserver, channel, reporter, finished_run, queued_deliveries, steps
):
    path = f"/2010-04-01/Accounts/{SID}/Messages.json"
    httpserver.expect_request(path, method="POST").respond_with_json({"sid": "SM1"}, status=201)
    sms = channel(
        "twilio",
        config={
            "account_sid": SID,
            "from_number": "+15550001111",
            "api_base": httpserver.url_for("/"),
        },
        secrets={"auth_token": "tw-token"},
    )
    run = finished_run(reporter(sms, steps=steps, recipients="+15552223333, +15554445555").scenario)
    [delivery] = send_all(run, queued_deliveries)
    assert delivery.status == "sent" and delivery.response_code == 201
    sent = requests_to(httpserver, path)
    assert len(sent) == 2
    auth = base64.b64decode(sent[0].headers["Authorization"].split()[1]).decode()
    assert auth == f"{SID}:tw-token"
    form = parse_qs(sent[0].get_data(as_text=True))
    assert form["To"] == ["+15552223333"] and form["From"] == ["+15550001111"]
    assert delivery.subject in form["Body"][0]
    assert parse_qs(sent[1].get_data(as_text=True))["To"] == ["+15554445555"]


@pytest.fixture
def smtp_server():
    received = []

    class Collect(SmtpMessage):
        def handle_message(self, message):
            received.append(message)

    controller = Controller(Collect(), hostname="127.0.0.1", port=free_port())
    controller.start()
    yield controller, received
    controller.stop()


@pytest.mark.parametrize("steps,outcome", [(FAIL, "failed"), (PASS, "success")])
def test_mail_reaches_the_smtp_server(
    smtp_server, channel, reporter, finished_run, queued_deliveries, steps, outcome
):
    controller, received = smtp_server
    mail = channel(
        "mail",
        config={"from_email": "cadenza@example.com", "host": "127.0.0.1", "port": controller.port},
    )
    run = finished_run(reporter(mail, steps=steps, recipients="ops@example.com").scenario)
    [delivery] = send_all(run, queued_deliveries)
    assert delivery.status == "sent", delivery.error
    [message] = received
    assert message["To"] == "ops@example.com" and message["From"] == "cadenza@example.com"
    assert message["Subject"] == delivery.subject and outcome in message["Subject"]
    assert message["X-Cadenza-Delivery"] == str(delivery.key)


@pytest.fixture
def shared_dir():
    """A folder the sandbox account can write to (pytest's tmp_path is private to root)."""
    path = Path(tempfile.mkdtemp(prefix="cadenza-shell-"))
    path.chmod(0o777)
    yield path
    shutil.rmtree(path, ignore_errors=True)


def test_shell_gets_facts_in_its_environment_and_names_cannot_inject(
    shared_dir, settings, channel, reporter, make_scenario, finished_run, queued_deliveries
):
    settings.CADENZA_ALLOW_SHELL = True
    out, pwned = shared_dir / "out.txt", shared_dir / "pwned"
    shell = channel(
        "shell",
        config={
            "command": f'printf "%s|%s|%s" "$CADENZA_SCENARIO" "$CADENZA_OUTCOME" '
            f'"$CADENZA_PROJECT" > {out}'
        },
    )
    evil = make_scenario(name=f'x"; touch {pwned}; echo "$(touch {pwned})', steps=FAIL)
    run = finished_run(reporter(shell, scenario=evil).scenario)
    [delivery] = send_all(run, queued_deliveries)
    assert delivery.status == "sent", delivery.error
    assert out.read_text() == f"{evil.name}|failed|SALES"
    assert not pwned.exists()


def test_shell_reporter_is_refused_unless_shell_is_allowed(
    settings, channel, reporter, finished_run, queued_deliveries
):
    settings.CADENZA_ALLOW_SHELL = False
    shell = channel("shell", config={"command": "true"})
    [delivery] = send_all(finished_run(reporter(shell, steps=PASS).scenario), queued_deliveries)
    assert delivery.status == "failed" and delivery.permanent_error


def test_secrets_are_encrypted_at_rest(channel):
    hook = channel("webhook", secrets={"url": "https://example.com/t0ken", "hmac_secret": "k"})
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SELECT secrets_encrypted FROM reporters_messagingchannel")
        stored = cursor.fetchone()[0]
    assert "t0ken" not in stored and stored.startswith("gAAAA")
    hook.refresh_from_db()
    assert hook.secrets["url"] == "https://example.com/t0ken"
    assert os.environ.get("SECRET_KEY", "") not in stored


@pytest.mark.parametrize("where", ["files", "postgresql"])
def test_dataset_gets_one_row_per_run(
    channel,
    reporter,
    finished_run,
    queued_deliveries,
    project,
    files_connection,
    pg_connection,
    where,
):
    from apps.flow import storage
    from apps.flow.models import Dataset

    connection = files_connection if where == "files" else pg_connection
    history = Dataset.objects.create(
        project=project,
        name="run_history",
        connection=connection,
        format="csv" if where == "files" else "table",
        path="history.csv",
    )
    storage.clear(history)
    sink = channel("dataset", config={"project": "SALES", "dataset": "run_history"})
    scenario = reporter(sink, steps=FAIL).scenario
    for _ in range(2):
        queued_deliveries.clear()
        run = finished_run(scenario)
        [delivery] = send_all(run, queued_deliveries)
        assert delivery.status == "sent", delivery.error
    _, frames = storage.read_frames(history)
    rows = __import__("pandas").concat(list(frames))
    assert len(rows) == 2
    assert list(rows["outcome"]) == ["failed", "failed"]
    assert list(rows["run_number"].astype(int)) == [1, 2]
    assert set(rows["scenario"]) == {scenario.name}
