"""The reporters API: channels (superusers write them, secrets write-only), reporters with
their permission matrix and preview, test sends to a local webhook, a run's deliveries."""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group

from apps.accounts.models import ProfileKind
from apps.accounts.services import profile_assign
from apps.reporters.models import Delivery, MessagingChannel, Reporter
from apps.reporters.services import delivery_send
from apps.runs.services import run_start
from tests.reporters.conftest import FAIL, PASS

pytestmark = pytest.mark.timeout(60)

ROLES = ["superuser", "owner", "editor", "operator", "reader", "outsider"]
API = "/api/v1/projects/SALES"
CHANNELS = "/api/v1/channels/"
TOKEN, HMAC_KEY = "t0ken-5f3a9c", "hm4c-k3y-77d1"  # must never come back


def expect(superuser, owner, editor, operator, reader, outsider=404) -> dict[str, int]:
    return dict(zip(ROLES, [superuser, owner, editor, operator, reader, outsider], strict=True))


READ = expect(200, 200, 200, 200, 200)
EDIT = expect(200, 200, 200, 403, 403)
CREATED = expect(201, 201, 201, 403, 403)
DELETED = expect(204, 204, 204, 403, 403)


def no_secret(response) -> None:
    text = response.content.decode()
    assert TOKEN not in text and HMAC_KEY not in text


@pytest.fixture
def hook(httpserver, channel):
    """A webhook channel to the local server; its URL carries a token (a secret)."""
    url = httpserver.url_for(f"/hook/{TOKEN}")
    return channel("webhook", secrets={"url": url, "hmac_secret": HMAC_KEY}, name="hook")


@pytest.fixture
def ops_only(channel, cast):
    """A channel only the "ops" group may use; the editor is in it."""
    ops = Group.objects.create(name="ops")
    cast["editor"].groups.add(ops)
    restricted = channel("webhook", secrets={"url": "https://ops.example/hook"}, name="ops")
    restricted.allowed_groups.add(ops)
    return restricted


@pytest.fixture
def existing(reporter, hook):
    return reporter(hook)


# --- channels ------------------------------------------------------------------------------


def test_everyone_lists_the_channels_they_may_use(api, cast, hook, ops_only):
    seen = {}
    for role in ROLES:
        response = api(cast[role]).get(CHANNELS)
        assert response.status_code == 200
        no_secret(response)
        seen[role] = {row["name"]: row for row in response.json()["results"]}
    assert set(seen["superuser"]) == set(seen["editor"]) == {"hook", "ops"}
    assert set(seen["reader"]) == set(seen["outsider"]) == {"hook"}
    assert seen["reader"]["hook"] == {"id": hook.pk, "name": "hook", "kind": "webhook",
                                      "usable": True}  # fmt: skip
    admin_view = seen["superuser"]["hook"]
    assert admin_view["secrets_set"] == ["hmac_secret", "url"] and "secrets" not in admin_view
    assert admin_view["config"] == {}


def test_a_restricted_channel_is_invisible_and_unusable_to_others(api, cast, ops_only):
    reader = api(cast["reader"])
    assert reader.get(f"{CHANNELS}{ops_only.pk}/").status_code == 404
    assert reader.post(f"{CHANNELS}{ops_only.pk}/test/").status_code == 404
    assert not Delivery.objects.exists()
    assert api(cast["editor"]).get(f"{CHANNELS}{ops_only.pk}/").status_code == 200


@pytest.mark.parametrize("role", ["owner", "editor", "reader", "outsider"])
def test_only_superusers_write_channels(api, cast, hook, role):
    client = api(cast[role])
    created = client.post(CHANNELS, {"name": "new", "kind": "webhook",
                                     "secrets": {"url": "https://x.example/"}})  # fmt: skip
    changed = client.patch(f"{CHANNELS}{hook.pk}/", {"config": {"method": "PUT"}})
    deleted = client.delete(f"{CHANNELS}{hook.pk}/")
    assert (created.status_code, changed.status_code, deleted.status_code) == (403, 403, 403)
    assert list(MessagingChannel.objects.values_list("name", "config")) == [("hook", {})]


def test_secrets_are_write_only_and_encrypted(api, cast):
    secrets = {"url": f"https://hooks.example/{TOKEN}", "hmac_secret": HMAC_KEY}
    client = api(cast["superuser"])
    created = client.post(CHANNELS, {"name": "ci", "kind": "webhook", "secrets": secrets})
    assert created.status_code == 201, created.json()
    no_secret(created)
    assert created.json()["secrets_set"] == ["hmac_secret", "url"]
    channel = MessagingChannel.objects.get(name="ci")
    assert TOKEN not in channel.secrets_encrypted and HMAC_KEY not in channel.secrets_encrypted
    assert channel.secrets == secrets
    no_secret(client.get(f"{CHANNELS}{channel.pk}/"))
    no_secret(client.get(CHANNELS))


def test_a_patch_without_secrets_keeps_them(api, cast, hook):
    client = api(cast["superuser"])
    stored = hook.secrets
    response = client.patch(f"{CHANNELS}{hook.pk}/", {"config": {"method": "PUT"}})
    assert response.status_code == 200, response.json()
    no_secret(response)
    hook.refresh_from_db()
    assert hook.secrets == stored and hook.config == {"method": "PUT", "headers": {}}
    replaced = client.patch(f"{CHANNELS}{hook.pk}/", {"secrets": {"url": "https://new.example/"}})
    assert replaced.json()["secrets_set"] == ["url"]
    hook.refresh_from_db()
    assert hook.secrets == {"url": "https://new.example/", "hmac_secret": ""}


@pytest.mark.parametrize(
    ("body", "field", "message"),
    [
        ({"kind": "webhook", "secrets": {}}, "secrets", "url: This field is required."),
        ({"kind": "webhook", "secrets": []}, "secrets", "Must be a JSON object."),
        ({"kind": "webhook", "config": {"method": "GET"}, "secrets": {"url": "https://x.example"}},
         "config", "method:"),
        ({"kind": "webhook", "config": {"test_recipients": 3}, "secrets": {"url": "https://x.y"}},
         "config", "test_recipients: a list of strings."),
        ({"kind": "pigeon"}, "kind", "is not a valid choice"),
    ],
)  # fmt: skip
def test_channel_errors_name_the_field(api, cast, body, field, message):
    response = api(cast["superuser"]).post(CHANNELS, {"name": "bad", **body})
    assert response.status_code == 400
    assert message in " ".join(response.json()[field])
    assert not MessagingChannel.objects.exists()


def test_changing_the_kind_checks_the_stored_secrets(api, cast, hook):
    response = api(cast["superuser"]).patch(f"{CHANNELS}{hook.pk}/", {"kind": "slack"})
    assert response.status_code == 400
    assert "webhook_url or a bot token" in " ".join(response.json()["secrets"])
    no_secret(response)


def test_a_channel_in_use_cannot_be_deleted(api, cast, existing, hook):
    response = api(cast["superuser"]).delete(f"{CHANNELS}{hook.pk}/")
    assert response.status_code == 409
    assert MessagingChannel.objects.filter(pk=hook.pk).exists()


def test_test_send_reaches_the_webhook(api, cast, httpserver, hook):
    httpserver.expect_request(f"/hook/{TOKEN}", method="POST").respond_with_data("ok")
    chosen = {"recipients": ["ops"]}
    refused = api(cast["reader"]).post(f"{CHANNELS}{hook.pk}/test/", chosen)
    assert refused.status_code == 403 and "Only superusers choose" in refused.json()["detail"]
    assert not httpserver.log
    response = api(cast["superuser"]).post(f"{CHANNELS}{hook.pk}/test/", chosen)
    assert response.status_code == 200
    no_secret(response)
    delivery = response.json()
    assert (delivery["status"], delivery["response_code"], delivery["error"]) == ("sent", 200, "")
    assert (delivery["event"], delivery["recipients"]) == ("test", ["ops"])
    [(request, _)] = httpserver.log
    assert request.json["subject"] == "Cadenza test message through hook"
    assert request.headers["X-Cadenza-Signature"].startswith("sha256=")


def test_a_failed_test_send_says_why(api, cast, httpserver, hook):
    httpserver.expect_request(f"/hook/{TOKEN}").respond_with_data("down", status=503)
    hook.config = {"test_recipients": ["oncall"]}
    hook.save()
    response = api(cast["editor"]).post(f"{CHANNELS}{hook.pk}/test/")
    assert response.status_code == 200
    no_secret(response)
    delivery = response.json()
    assert (delivery["status"], delivery["response_code"]) == ("failed", 503)
    assert delivery["error"] == "The peer answered 503." and delivery["recipients"] == ["oncall"]


# --- reporters: the permission matrix -----------------------------------------------------


@pytest.mark.parametrize("role", ROLES)
def test_reporter_list(api, cast, existing, hook, role):
    response = api(cast[role]).get(f"{API}/reporters/")
    assert response.status_code == READ[role]
    if response.status_code == 200:
        [row] = response.json()["results"]
        assert (row["name"], row["channel"], row["recipients"]) == ("to hook", hook.pk, [])
        no_secret(response)


@pytest.mark.parametrize("role", ROLES)
def test_reporter_create(api, cast, existing, hook, role):
    body = {
        "scenario": existing.scenario_id,
        "name": "second",
        "channel": hook.pk,
        "condition": "outcome == 'failed'",
        "recipients": ["a@x.example", "b@x.example"],
    }
    response = api(cast[role]).post(f"{API}/reporters/", body)
    assert response.status_code == CREATED[role]
    created = Reporter.objects.filter(name="second").first()
    assert (created is not None) == (CREATED[role] == 201)
    if created:
        assert created.recipients == "a@x.example, b@x.example"
        assert response.json()["recipients"] == ["a@x.example", "b@x.example"]


@pytest.mark.parametrize("role", ROLES)
def test_reporter_update(api, cast, existing, role):
    response = api(cast[role]).patch(f"{API}/reporters/{existing.pk}/", {"enabled": False})
    assert response.status_code == EDIT[role]
    existing.refresh_from_db()
    assert existing.enabled == (EDIT[role] != 200)


@pytest.mark.parametrize("role", ROLES)
def test_reporter_delete(api, cast, existing, role):
    response = api(cast[role]).delete(f"{API}/reporters/{existing.pk}/")
    assert response.status_code == DELETED[role]
    assert Reporter.objects.filter(pk=existing.pk).exists() == (DELETED[role] != 204)


@pytest.mark.parametrize("role", ROLES)
def test_reporter_preview(api, cast, existing, no_dispatch, role):
    """A preview sends nothing, so readers may see one too."""
    run = run_start(scenario=existing.scenario).run
    response = api(cast[role]).post(f"{API}/reporters/{existing.pk}/preview/", {"run": run.pk})
    assert response.status_code == READ[role]
    if response.status_code == 200:
        assert response.json()["subject"] == "Nightly run #1: running"
    assert not Delivery.objects.exists()


# --- reporters: validation, channels, code ------------------------------------------------


@pytest.fixture
def post_reporter(api, cast, existing):
    def post(role="editor", **fields):
        body = {"scenario": existing.scenario_id, "name": "new", "channel": existing.channel_id}
        return api(cast[role]).post(f"{API}/reporters/", {**body, **fields})

    return post


@pytest.mark.parametrize(
    ("fields", "field", "message"),
    [
        ({"condition": "outcome =="}, "condition", "Syntax error"),
        ({"subject": "{% if %}"}, "subject", "Template error"),
        ({"body": "{{ run.number|nosuchfilter }}"}, "body", "Template error"),
        ({"name": "to hook"}, "name", "already has a reporter named"),
        ({"recipients": ["a, b"]}, "recipients", "without commas"),
        ({"when": "sometimes"}, "when", "not a valid choice"),
    ],
)
def test_reporter_errors_name_the_field(post_reporter, fields, field, message):
    response = post_reporter(**fields)
    assert response.status_code == 400
    assert message in str(response.json()[field])
    assert not Reporter.objects.filter(name="new").exists()


def test_mail_reporters_need_recipients(post_reporter, channel):
    mail = channel("mail", config={"from_email": "cadenza@x.example"})
    response = post_reporter(channel=mail.pk)
    assert response.json() == {"recipients": ["A E-mail channel needs recipients."]}
    assert post_reporter(channel=mail.pk, recipients=["ops@x.example"]).status_code == 201


def test_the_channel_must_be_usable_by_the_writer(post_reporter, ops_only):
    refused = post_reporter(role="owner", channel=ops_only.pk)
    assert refused.status_code == 400
    assert refused.json()["channel"] == [f"No channel you may use has id {ops_only.pk}."]
    assert post_reporter(role="editor", channel=ops_only.pk).status_code == 201


def test_a_writer_outside_the_group_keeps_the_current_channel(api, cast, reporter, ops_only):
    current = reporter(ops_only)
    body = {"scenario": current.scenario_id, "name": current.name, "channel": ops_only.pk}
    response = api(cast["owner"]).put(f"{API}/reporters/{current.pk}/", body)
    assert response.status_code == 200, response.json()


def test_the_scenario_must_be_in_the_project(post_reporter, other_project):
    foreign = other_project.scenarios.create(name="Elsewhere")
    response = post_reporter(role="superuser", scenario=foreign.pk)
    assert response.status_code == 400 and "scenario" in response.json()


def test_a_shell_reporter_needs_the_coder_profile(post_reporter, cast, channel):
    shell = channel("shell", config={"command": "true"})
    refused = post_reporter(channel=shell.pk)
    assert refused.status_code == 403 and "coder profile" in refused.json()["detail"]
    profile_assign(user=cast["editor"], kind=ProfileKind.CODER)
    cast["editor"] = get_user_model().objects.get(pk=cast["editor"].pk)  # not the cached profile
    assert post_reporter(channel=shell.pk).status_code == 201


# --- preview and deliveries ---------------------------------------------------------------


def test_preview_renders_against_a_past_run(api, cast, hook, reporter, finished_run):
    body = "{% for s in steps %}{{ s.name }}={{ s.status }}{% endfor %}"
    failing = reporter(hook, steps=FAIL, condition="outcome == 'failed'", body=body)
    run = finished_run(failing.scenario)
    url = f"{API}/reporters/{failing.pk}/preview/"
    response = api(cast["editor"]).post(url, {"run": run.pk})
    assert response.json() == {
        "run": run.pk, "subject": "Nightly run #1: failed", "body": "boom=failed",
        "recipients": [], "would_send": True, "condition_error": None,
    }  # fmt: skip
    failing.condition = "nosuchname > 1"
    failing.save()
    broken = api(cast["editor"]).post(url, {"run": run.pk}).json()
    assert broken["would_send"] is False and "nosuchname" in broken["condition_error"]


def test_preview_needs_a_run_of_the_reporters_scenario(api, cast, hook, reporter, finished_run):
    mine = reporter(hook, steps=PASS)
    other = reporter(hook, scenario=mine.scenario.project.scenarios.create(name="Other"))
    run = finished_run(other.scenario)
    response = api(cast["editor"]).post(f"{API}/reporters/{mine.pk}/preview/", {"run": run.pk})
    assert response.status_code == 400
    assert response.json() == {"run": [f"No run of this scenario has id {run.pk}."]}


@pytest.mark.parametrize("role", ROLES)
def test_a_runs_deliveries(api, cast, httpserver, existing, finished_run, queued_deliveries, role):
    httpserver.expect_request(f"/hook/{TOKEN}").respond_with_data("", status=500)
    run = finished_run(existing.scenario)
    [delivery] = Delivery.objects.filter(run=run)
    delivery_send(delivery.pk)
    response = api(cast[role]).get(f"{API}/runs/{run.pk}/deliveries/")
    assert response.status_code == READ[role]
    if response.status_code == 200:
        no_secret(response)
        [row] = response.json()["results"]
        assert (row["event"], row["channel_name"], row["reporter"]) == ("end", "hook", existing.pk)
        assert (row["status"], row["attempts"], row["response_code"]) == ("pending", 1, 500)
        assert row["error"] == "The peer answered 500."


def test_deliveries_of_a_run_elsewhere_are_not_found(api, cast, other_project, no_dispatch):
    foreign = other_project.scenarios.create(name="Elsewhere")
    run = run_start(scenario=foreign).run
    assert api(cast["owner"]).get(f"{API}/runs/{run.pk}/deliveries/").status_code == 404
    assert api(cast["outsider"]).get(f"{API}/runs/{run.pk}/deliveries/").status_code == 404
    assert api(cast["outsider"]).get(f"/api/v1/projects/HR/runs/{run.pk}/deliveries/").json() == {
        "count": 0, "next": None, "previous": None, "results": []
    }  # fmt: skip
