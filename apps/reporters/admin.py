"""Admin for messaging channels (superusers), reporters (scoped by project, also inline on
the scenario) and the deliveries of a run (inline on the run).

Channel secrets are write-only here too: the form never renders them, only which are set.
"""

from __future__ import annotations

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.helpers import ACTION_CHECKBOX_NAME
from django.template.response import TemplateResponse
from django.utils.html import format_html

from apps.projects import permissions
from apps.projects.admin import ProjectScopedAdmin
from apps.reporters.models import Delivery, MessagingChannel, Reporter
from apps.reporters.selectors import (
    TEST_RECIPIENTS,
    channel_choices,
    reporter_last_run,
    secret_keys,
    test_recipients,
)
from apps.reporters.services import channel_test_send, reporter_preview
from apps.reporters.transports import get_transport, kind_choices
from apps.reporters.validation import channel_clean, reporter_errors, writes_code
from apps.scenarios.models import Scenario

CODE_REFUSED = "A reporter that runs a command needs the coder profile and the editor role."


# --- channels ------------------------------------------------------------------------------


class SecretsWidget(forms.Textarea):
    """Renders empty, always: a stored or just-typed secret never goes back to the page."""

    def format_value(self, value):
        return None


def secrets_summary(channel: MessagingChannel) -> str:
    """E.g. "url: set · hmac_secret: not set" — names only, never values."""
    stored = set(secret_keys(channel))
    try:
        declared = list(get_transport(channel.kind).Secrets().fields)
    except KeyError:
        declared = []
    names = declared + sorted(stored - set(declared))
    if not names:
        return "This kind has no secrets."
    return " · ".join(f"{name}: {'set' if name in stored else 'not set'}" for name in names)


class ChannelForm(forms.ModelForm):
    kind = forms.ChoiceField(choices=kind_choices)
    secrets = forms.JSONField(
        required=False,
        widget=SecretsWidget(attrs={"rows": 4, "cols": 60, "autocomplete": "off"}),
        help_text='A JSON object, e.g. {"url": "https://…"}. Write-only: never shown again.',
    )

    class Meta:
        model = MessagingChannel
        fields = ["name", "kind", "config", "secrets", "allowed_groups"]
        help_texts = {
            "config": f"A JSON object for the kind; add {TEST_RECIPIENTS!r} (a list) to give "
            "test messages default recipients.",
        }

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.new_secrets: dict | None = None
        if self.instance.pk:
            self.fields["secrets"].help_text = (
                f"Stored: {secrets_summary(self.instance)}. Leave blank to keep them; a JSON "
                "object replaces them all."
            )

    def clean(self):
        data = super().clean()
        if "kind" not in data or "config" not in data or "secrets" in self.errors:
            return data
        try:
            data["config"], self.new_secrets = channel_clean(
                kind=data["kind"],
                config=data["config"],
                secrets=data.get("secrets"),
                instance=self.instance,
            )
        except forms.ValidationError as error:
            self.add_error(None, error)
        return data

    def save(self, commit=True):
        if self.new_secrets is not None:
            self.instance.secrets = self.new_secrets
        return super().save(commit)


class TestMessageForm(forms.Form):
    recipients = forms.CharField(
        required=False,
        max_length=2000,
        help_text=f"Comma-separated. Blank: each channel's {TEST_RECIPIENTS} from its config.",
    )

    def clean_recipients(self) -> list[str]:
        return [item.strip() for item in self.cleaned_data["recipients"].split(",") if item.strip()]


@admin.register(MessagingChannel)
class MessagingChannelAdmin(admin.ModelAdmin):
    """Superusers only: channels carry the secrets."""

    form = ChannelForm
    list_display = ["name", "kind", "groups", "created_at"]
    list_filter = ["kind"]
    search_fields = ["name"]
    filter_horizontal = ["allowed_groups"]
    actions = ["send_test_message"]

    def _superuser(self, request, obj=None) -> bool:
        return request.user.is_active and request.user.is_superuser

    has_module_permission = has_view_permission = has_add_permission = _superuser
    has_change_permission = has_delete_permission = _superuser

    def get_queryset(self, request):
        return super().get_queryset(request).prefetch_related("allowed_groups")

    @admin.display(description="Usable by")
    def groups(self, channel) -> str:
        names = [group.name for group in channel.allowed_groups.all()]
        return ", ".join(names) if names else "everyone"

    @admin.action(description="Send a test message")
    def send_test_message(self, request, queryset):
        form = TestMessageForm(request.POST if "send" in request.POST else None)
        if not form.is_bound or not form.is_valid():
            context = {
                **self.admin_site.each_context(request),
                "title": "Send a test message",
                "opts": self.model._meta,
                "channels": [(channel, test_recipients(channel)) for channel in queryset],
                "form": form,
                "action_checkbox_name": ACTION_CHECKBOX_NAME,
            }
            template = "admin/reporters/messagingchannel/test_message.html"
            return TemplateResponse(request, template, context)
        for channel in queryset:
            recipients = form.cleaned_data["recipients"] or test_recipients(channel)
            delivery = channel_test_send(channel, recipients=recipients, user=request.user)
            self._report(request, channel, delivery)
        return None

    def _report(self, request, channel: MessagingChannel, delivery: Delivery) -> None:
        if delivery.status == Delivery.Status.SENT:
            code = f" (answer {delivery.response_code})" if delivery.response_code else ""
            self.message_user(request, f"{channel.name}: sent{code}.", messages.SUCCESS)
        else:
            message = f"{channel.name}: failed — {delivery.error or delivery.status}"
            self.message_user(request, message, messages.ERROR)


# --- reporters -----------------------------------------------------------------------------


class ReporterForm(forms.ModelForm):
    user = None  # set per request by the admin's get_form / get_formset

    class Meta:
        model = Reporter
        fields = ["scenario", "name", "enabled", "channel", "when", "condition", "recipients",
                  "subject", "body"]  # fmt: skip

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if "channel" in self.fields:
            current = self.instance.channel if self.instance.channel_id else None
            self.fields["channel"].queryset = channel_choices(self.user, current)

    def clean(self):
        data = super().clean()
        recipients = data.get("recipients") or ""
        errors = reporter_errors(
            channel=data.get("channel"),
            condition=data.get("condition") or "",
            recipients=[item for item in recipients.split(",") if item.strip()],
            templates={name: data[name] for name in ("subject", "body") if name in data},
        )
        for field, message in errors.items():
            self.add_error(field, message)
        if self.has_changed() and not self._may_write_code(data):
            self.add_error("channel", CODE_REFUSED)
        return data

    def _may_write_code(self, data) -> bool:
        before = self.instance if self.instance.pk else None
        if not writes_code(before, data.get("channel")):
            return True
        scenario = data.get("scenario") or getattr(before, "scenario", None)
        if scenario is None or scenario.project_id is None:
            return True  # the scenario form itself fails: no project to ask about yet
        return permissions.can(self.user, "code", Reporter(scenario=scenario))


def preview_html(reporter: Reporter) -> str:
    if reporter.pk is None:
        return "Save the reporter to preview it."
    run = reporter_last_run(reporter)
    if run is None:
        return "No run yet."
    try:
        preview = reporter_preview(reporter, run)
    except Exception as error:  # a broken template must not break the change page
        return f"Preview failed: {error}"
    verdict = {True: "would send", False: "would not send"}.get(preview["would_send"])
    return format_html(
        '<p>Against run #{} ({}): {}.</p><p><b>{}</b></p><pre style="{}">{}</pre>',
        run.number,
        run.status,
        verdict or preview["would_send"],
        preview["subject"],
        "max-height: 30em; overflow: auto; white-space: pre-wrap",
        preview["body"],
    )


class ReporterPreview:
    @admin.display(description="Preview (against the last run)")
    def preview(self, reporter) -> str:
        return preview_html(reporter)


class ReporterInline(ReporterPreview, admin.StackedInline):
    model = Reporter
    form = ReporterForm
    extra = 0
    fields = [("name", "enabled", "when"), "channel", "condition", "recipients", "subject",
              "body", "preview"]  # fmt: skip
    readonly_fields = ["preview"]

    def get_formset(self, request, obj=None, **kwargs):
        formset = super().get_formset(request, obj, **kwargs)  # a new form class on every call
        formset.form.user = request.user
        return formset

    def has_view_permission(self, request, obj=None):
        if obj is None:
            return permissions.projects_for(request.user, "view", Reporter).exists()
        return permissions.can(request.user, "view", obj)

    def has_add_permission(self, request, obj=None):
        if obj is None:
            return permissions.projects_for(request.user, "change", Reporter).exists()
        return permissions.can(request.user, "change", obj)

    def has_change_permission(self, request, obj=None):
        return self.has_add_permission(request, obj)

    def has_delete_permission(self, request, obj=None):
        return self.has_add_permission(request, obj)


@admin.register(Reporter)
class ReporterAdmin(ReporterPreview, ProjectScopedAdmin):
    form = ReporterForm
    list_display = ["name", "scenario", "channel", "when", "enabled"]
    list_filter = ["when", "enabled"]
    list_select_related = ["scenario__project", "channel"]
    search_fields = ["name", "scenario__name"]
    readonly_fields = ["preview"]
    fieldsets = [
        (None, {"fields": ["scenario", ("name", "enabled", "when"), "channel", "condition"]}),
        ("Message", {"fields": ["recipients", "subject", "body"]}),
        ("Preview", {"fields": ["preview"]}),
    ]

    def formfield_for_foreignkey(self, db_field, request, **kwargs):
        if db_field.name == "scenario":
            scenarios = Scenario.objects.select_related("project")
            kwargs["queryset"] = permissions.for_user(scenarios, request.user, "change")
        return super().formfield_for_foreignkey(db_field, request, **kwargs)

    def get_form(self, request, obj=None, change=False, **kwargs):
        form = super().get_form(request, obj, change, **kwargs)  # a new class on every call
        form.user = request.user
        return form


# --- deliveries ----------------------------------------------------------------------------


class DeliveryInline(admin.TabularInline):
    """What a run's reporters sent, read-only (on the run's change page)."""

    model = Delivery
    verbose_name_plural = "deliveries"
    extra = 0
    can_delete = False
    fields = ["event", "channel", "status", "attempts", "response_code", "error", "sent_at"]
    readonly_fields = fields

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("channel")

    def has_view_permission(self, request, obj=None):
        return obj is None or permissions.can(request.user, "view", obj)

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False
