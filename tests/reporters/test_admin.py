"""The reporters admin: channels for superusers with write-only secrets and a test action,
reporters (on their own and inline on the scenario) with validation and a preview, and the
deliveries on the run page."""

from __future__ import annotations

import json

import pytest
from django.contrib.auth.models import Group

from apps.accounts.models import ProfileKind
from apps.accounts.services import profile_assign
from apps.reporters.models import Delivery, MessagingChannel, Reporter
from apps.reporters.services import delivery_send
from tests.reporters.conftest import FAIL, PASS
from tests.runs.admin_forms import messages_of, scenario_form

pytestmark = pytest.mark.timeout(60)

CHANNELS = "/admin/reporters/messagingchannel/"
REPORTERS = "/admin/reporters/reporter/"
TOKEN, HMAC_KEY = "t0ken-5f3a9c", "hm4c-k3y-77d1"  # must never be on a page


@pytest.fixture
def admin_as(client, cast):
    def login(role):
        client.force_login(cast[role])
        return client

    return login


@pytest.fixture
def hook(httpserver, channel):
    url = httpserver.url_for(f"/hook/{TOKEN}")
    return channel("webhook", secrets={"url": url, "hmac_secret": HMAC_KEY}, name="hook")


def page(response) -> str:
    assert response.status_code == 200, response.status_code
    text = response.content.decode()
    assert TOKEN not in text and HMAC_KEY not in text
    return text


def form_errors(response) -> dict:
    assert response.status_code == 200, response.status_code
    errors = dict(response.context["adminform"].form.errors)
    for formset in response.context["inline_admin_formsets"]:
        prefix = formset.formset.prefix
        for form in formset.formset.forms:
            errors |= {f"{prefix}.{key}": value for key, value in form.errors.items()}
    return errors


def channel_form(**fields) -> dict:
    return {"name": "hook", "kind": "webhook", "config": "{}", "secrets": "", **fields}


# --- channels ------------------------------------------------------------------------------


@pytest.mark.parametrize("role", ["owner", "editor", "reader", "outsider"])
def test_channels_are_for_superusers_only(admin_as, hook, role):
    client = admin_as(role)
    assert client.get(CHANNELS).status_code == 403
    assert client.get(f"{CHANNELS}{hook.pk}/change/").status_code == 403
    assert client.post(f"{CHANNELS}add/", channel_form(name="mine")).status_code == 403
    assert "Messaging channels" not in client.get("/admin/").content.decode()
    assert list(MessagingChannel.objects.values_list("name", flat=True)) == ["hook"]


def test_added_secrets_are_encrypted(admin_as):
    secrets = {"url": f"https://hooks.example/{TOKEN}", "hmac_secret": HMAC_KEY}
    form = channel_form(secrets=json.dumps(secrets), config='{"test_recipients": "a, b"}')
    response = admin_as("superuser").post(f"{CHANNELS}add/", form)
    assert response.status_code == 302, form_errors(response)
    channel = MessagingChannel.objects.get()
    assert TOKEN not in channel.secrets_encrypted and HMAC_KEY not in channel.secrets_encrypted
    assert channel.secrets == secrets
    assert channel.config == {"method": "POST", "headers": {}, "test_recipients": ["a", "b"]}


def test_no_page_shows_the_secrets(admin_as, hook):
    client = admin_as("superuser")
    change = page(client.get(f"{CHANNELS}{hook.pk}/change/"))
    assert "url: set · hmac_secret: set" in change
    for url in ["", "add/", f"{hook.pk}/history/", f"{hook.pk}/delete/"]:
        page(client.get(f"{CHANNELS}{url}"))


def test_blank_secrets_keep_the_stored_ones(admin_as, hook):
    stored = hook.secrets
    form = channel_form(config='{"method": "PUT"}')
    response = admin_as("superuser").post(f"{CHANNELS}{hook.pk}/change/", form)
    assert response.status_code == 302, form_errors(response)
    hook.refresh_from_db()
    assert hook.secrets == stored and hook.config["method"] == "PUT"


def test_entered_secrets_replace_them_all(admin_as, hook):
    form = channel_form(secrets='{"url": "https://new.example/hook"}')
    response = admin_as("superuser").post(f"{CHANNELS}{hook.pk}/change/", form)
    assert response.status_code == 302, form_errors(response)
    hook.refresh_from_db()
    assert hook.secrets == {"url": "https://new.example/hook", "hmac_secret": ""}
    assert "url: set · hmac_secret: not set" in page(
        admin_as("superuser").get(f"{CHANNELS}{hook.pk}/change/")
    )


@pytest.mark.parametrize(
    ("fields", "field", "message"),
    [
        ({"secrets": json.dumps({"hmac_secret": HMAC_KEY})}, "secrets", "url: This field is"),
        ({"secrets": "[1]"}, "secrets", "Must be a JSON object."),
        ({"secrets": "{nope"}, "secrets", "Enter a valid JSON."),
        ({"config": '{"method": "GET"}', "secrets": '{"url": "https://x.example"}'}, "config",
         "method:"),
        ({"kind": "slack"}, "secrets", "webhook_url or a bot token"),
    ],
)  # fmt: skip
def test_channel_errors_name_the_field_and_never_echo_secrets(
    admin_as, hook, fields, field, message
):
    stored = hook.secrets
    response = admin_as("superuser").post(f"{CHANNELS}{hook.pk}/change/", channel_form(**fields))
    errors = form_errors(response)
    assert message in " ".join(errors[field])
    page(response)  # the secret typed in is not sent back either
    hook.refresh_from_db()
    assert (hook.kind, hook.secrets) == ("webhook", stored)


def test_send_a_test_message(admin_as, httpserver, hook):
    httpserver.expect_request(f"/hook/{TOKEN}").respond_with_data("ok")
    client = admin_as("superuser")
    intermediate = client.post(
        CHANNELS, {"action": "send_test_message", "_selected_action": [hook.pk]}
    )
    assert (
        'name="recipients"' in page(intermediate)
        and "hook (webhook)" in intermediate.content.decode()
    )
    response = client.post(
        CHANNELS,
        {"action": "send_test_message", "_selected_action": [hook.pk], "send": "Send",
         "recipients": "ops, oncall"},
        follow=True,
    )  # fmt: skip
    assert messages_of(response) == ["hook: sent (answer 200)."]
    page(response)
    delivery = Delivery.objects.get()
    assert (delivery.event, delivery.recipients) == ("test", ["ops", "oncall"])
    assert len(httpserver.log) == 1


def test_a_failed_test_message_says_why(admin_as, httpserver, hook):
    httpserver.expect_request(f"/hook/{TOKEN}").respond_with_data("down", status=503)
    hook.config = {"test_recipients": ["oncall"]}
    hook.save()
    response = admin_as("superuser").post(
        CHANNELS,
        {"action": "send_test_message", "_selected_action": [hook.pk], "send": "Send",
         "recipients": ""},
        follow=True,
    )  # fmt: skip
    assert messages_of(response) == ["hook: failed — The peer answered 503."]
    assert Delivery.objects.get().recipients == ["oncall"]


# --- reporters -----------------------------------------------------------------------------


def reporter_form(scenario, channel, **fields) -> dict:
    return {
        "scenario": scenario.pk, "name": "alerts", "enabled": "on", "channel": channel.pk,
        "when": "end", "condition": "", "recipients": "", "subject": "{{ outcome }}",
        "body": "{{ run_url }}", **fields,
    }  # fmt: skip


@pytest.fixture
def ops_only(channel, cast):
    ops = Group.objects.create(name="ops")
    cast["editor"].groups.add(ops)
    restricted = channel("webhook", secrets={"url": "https://ops.example/hook"}, name="ops")
    restricted.allowed_groups.add(ops)
    return restricted


def test_editor_adds_a_reporter(admin_as, make_scenario, hook, cast):
    scenario = make_scenario()
    response = admin_as("editor").post(f"{REPORTERS}add/", reporter_form(scenario, hook))
    assert response.status_code == 302, form_errors(response)
    assert Reporter.objects.get().scenario == scenario


def test_channel_choices_are_the_usable_channels(admin_as, make_scenario, hook, ops_only):
    scenario = make_scenario()
    assert f'value="{ops_only.pk}"' in page(admin_as("editor").get(f"{REPORTERS}add/"))
    owner_form = page(admin_as("owner").get(f"{REPORTERS}add/"))
    assert f'value="{ops_only.pk}"' not in owner_form and f'value="{hook.pk}"' in owner_form
    refused = admin_as("owner").post(f"{REPORTERS}add/", reporter_form(scenario, ops_only))
    assert "Select a valid choice" in form_errors(refused)["channel"][0]


def test_an_editor_outside_the_group_can_still_save_the_reporter(admin_as, make_scenario, ops_only):
    reporter = Reporter.objects.create(scenario=make_scenario(), name="ops", channel=ops_only)
    form = reporter_form(reporter.scenario, ops_only, name="ops", enabled="")
    response = admin_as("owner").post(f"{REPORTERS}{reporter.pk}/change/", form)
    assert response.status_code == 302, form_errors(response)
    reporter.refresh_from_db()
    assert not reporter.enabled


def test_scenarios_of_other_projects_are_refused(admin_as, other_project, hook):
    foreign = other_project.scenarios.create(name="Elsewhere")
    response = admin_as("editor").post(f"{REPORTERS}add/", reporter_form(foreign, hook))
    assert "Select a valid choice" in form_errors(response)["scenario"][0]


@pytest.mark.parametrize(
    ("fields", "field", "message"),
    [
        ({"condition": "outcome =="}, "condition", "Syntax error"),
        ({"subject": "{% if %}"}, "subject", "Template error"),
        ({"body": "{{ x|nosuchfilter }}"}, "body", "Template error"),
    ],
)
def test_reporter_errors_name_the_field(admin_as, make_scenario, hook, fields, field, message):
    form = reporter_form(make_scenario(), hook, **fields)
    errors = form_errors(admin_as("editor").post(f"{REPORTERS}add/", form))
    assert message in errors[field][0]
    assert not Reporter.objects.exists()


def test_mail_reporters_need_recipients(admin_as, make_scenario, channel):
    mail = channel("mail", config={"from_email": "cadenza@x.example"})
    form = reporter_form(make_scenario(), mail)
    errors = form_errors(admin_as("editor").post(f"{REPORTERS}add/", form))
    assert errors["recipients"] == ["A E-mail channel needs recipients."]


def test_a_shell_reporter_needs_the_coder_profile(admin_as, make_scenario, channel, cast):
    form = reporter_form(make_scenario(), channel("shell", config={"command": "true"}))
    refused = admin_as("editor").post(f"{REPORTERS}add/", form)
    assert "coder profile" in form_errors(refused)["channel"][0]
    profile_assign(user=cast["editor"], kind=ProfileKind.CODER)
    response = admin_as("editor").post(f"{REPORTERS}add/", form)
    assert response.status_code == 302, form_errors(response)


def test_the_preview_renders_the_last_run(admin_as, reporter, hook, finished_run):
    failing = reporter(hook, steps=FAIL, condition="outcome == 'success'")
    url = f"{REPORTERS}{failing.pk}/change/"
    assert "No run yet." in page(admin_as("reader").get(url))
    finished_run(failing.scenario)
    preview = page(admin_as("reader").get(url))
    assert "Against run #1 (failed): would not send." in preview
    assert "Nightly run #1: failed" in preview


@pytest.mark.parametrize(
    ("role", "status", "editable"),
    [("superuser", 200, True), ("editor", 200, True), ("reader", 200, False),
     ("outsider", 404, False)],
)  # fmt: skip
def test_reporter_change_page_by_role(admin_as, reporter, hook, role, status, editable):
    url = f"{REPORTERS}{reporter(hook).pk}/change/"
    response = admin_as(role).get(url)
    assert response.status_code == status
    if status == 200:
        assert ('name="_save"' in page(response)) == editable


# --- inline on the scenario; deliveries on the run -----------------------------------------


def test_reporters_inline_on_the_scenario(admin_as, project, hook):
    form = scenario_form(project, reporters=[{"channel": hook.pk, "condition": "outcome =="}])
    errors = form_errors(admin_as("editor").post("/admin/scenarios/scenario/add/", form))
    assert "Syntax error" in errors["reporters.condition"][0]
    form = scenario_form(project, reporters=[{"channel": hook.pk, "name": "to ops"}])
    response = admin_as("editor").post("/admin/scenarios/scenario/add/", form)
    assert response.status_code == 302, form_errors(response)
    reporter = Reporter.objects.get()
    assert (reporter.name, reporter.channel, reporter.scenario.name) == ("to ops", hook, "Nightly")
    change = page(
        admin_as("reader").get(f"/admin/scenarios/scenario/{reporter.scenario_id}/change/")
    )
    assert "to ops" in change and "No run yet." in change


def test_the_run_page_lists_its_deliveries(
    admin_as, httpserver, reporter, hook, finished_run, queued_deliveries
):
    httpserver.expect_request(f"/hook/{TOKEN}").respond_with_data("", status=500)
    run = finished_run(reporter(hook, steps=PASS).scenario)
    delivery_send(Delivery.objects.get(run=run).pk)
    text = page(admin_as("reader").get(f"/admin/runs/run/{run.pk}/change/"))
    assert "Deliveries" in text and "The peer answered 500." in text and "hook (webhook)" in text
    assert 'name="deliveries-0-status"' not in text  # read-only
