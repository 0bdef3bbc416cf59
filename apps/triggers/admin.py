"""Admin for triggers: inline on the scenario, and on their own with the Test now / Enable /
Disable actions and the latest evaluations ("why did or didn't it run").

Every save goes through trigger_save, so beat's schedule rows and the next fire time follow
each edit. Kinds the license or the user's profile rule out stay visible, disabled, with why.
"""

from __future__ import annotations

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.utils import timezone

from apps.projects import permissions
from apps.projects.admin import ProjectScopedAdmin
from apps.scenarios.models import Scenario
from apps.triggers.kinds import TRIGGER_KINDS, kind_gate
from apps.triggers.models import Trigger, TriggerEvaluation
from apps.triggers.selectors import (
    kind_choices,
    params_summary,
    trigger_schedule,
    writes_code,
)
from apps.triggers.services import (
    trigger_check_use,
    trigger_evaluate,
    trigger_save,
    trigger_validate,
)

CODE_REFUSED = "A custom Python trigger needs the coder profile and the editor role."
LATEST_EVALUATIONS = 20
INLINE_FIELDS = [
    ("name", "kind", "enabled"), "params", ("check_interval_seconds", "grace_seconds", "catch_up"),
    ("next_fire_at", "last_fired_at"), "suspended_reason",
]  # fmt: skip
STATUS_FIELDS = ["next_fire_at", "next_check_at", "last_fired_at", "suspended_reason"]


def kind_options(user) -> tuple[list[tuple[str, str]], dict[str, str]]:
    """The kind choices for ``user``, labelled with why a kind is unavailable, and those
    reasons by key."""
    unavailable = {}
    for key in TRIGGER_KINDS:
        gate = kind_gate(key, user)
        if not gate.allowed:
            unavailable[key] = gate.reason
    choices = [
        (key, f"{label} — unavailable: {unavailable[key]}" if key in unavailable else label)
        for key, label in kind_choices()
    ]
    return choices, unavailable


class KindSelect(forms.Select):
    """Unavailable kinds are shown but cannot be picked (except the current one, which a
    browser would otherwise leave out of the post)."""

    unavailable: dict[str, str] = {}

    def create_option(self, name, value, label, selected, index, subindex=None, attrs=None):
        option = super().create_option(name, value, label, selected, index, subindex, attrs)
        if value in self.unavailable and not selected:
            option["attrs"]["disabled"] = True
        return option


class TriggerForm(forms.ModelForm):
    user = None  # set per request by TriggerAdmin.get_form / TriggerInline.get_formset
    kind_options: tuple | None = None  # computed once per request there too

    kind = forms.ChoiceField(choices=kind_choices, widget=KindSelect)
    check_interval_seconds = forms.IntegerField(
        min_value=1, initial=60, help_text="Polled kinds: seconds between checks."
    )

    class Meta:
        model = Trigger
        fields = ["scenario", "name", "kind", "enabled", "params", "check_interval_seconds",
                  "grace_seconds", "catch_up"]  # fmt: skip
        help_texts = {"params": f"A JSON object for the kind ({params_summary()})."}

    def __init__(self, *args, scenario: Scenario | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        self.scenario = scenario
        if "kind" in self.fields:
            choices, unavailable = self.kind_options or kind_options(self.user)
            self.fields["kind"].choices = choices
            self.fields["kind"].widget.unavailable = unavailable

    def clean(self):
        data = super().clean()
        if "kind" in data and "params" not in self.errors:
            params = {} if data.get("params") is None else data["params"]
            try:
                data["params"] = trigger_validate(data["kind"], params)
                if data.get("enabled") and {"kind", "params", "enabled"} & set(self.changed_data):
                    trigger_check_use(
                        data["kind"], data["params"], self.user, self._project_id(data)
                    )
            except ValidationError as error:
                self.add_error(None, error)
        if "kind" in data and self.has_changed():
            refusal = self._refusal(data)
            if refusal:
                self.add_error("kind", refusal)
        return data

    def _project_id(self, data) -> int | None:
        scenario = data.get("scenario") or self.scenario
        if scenario is None and self.instance.scenario_id:
            scenario = self.instance.scenario
        return scenario and scenario.project_id

    def _refusal(self, data) -> str:
        """Why the user may not save a trigger of this kind (license, profile, code), if so."""
        gate = kind_gate(data["kind"], self.user)
        if not gate.allowed:
            return gate.reason
        before = self.instance.kind if self.instance.pk else None
        scenario = data.get("scenario") or self.scenario
        if scenario is None and self.instance.scenario_id:
            scenario = self.instance.scenario
        if not writes_code(data["kind"], before) or scenario is None:
            return ""
        if scenario.project_id is None:
            return ""  # the scenario form itself fails: no project to ask about yet
        may_code = permissions.can(self.user, "code", Trigger(scenario=scenario))
        return "" if may_code else CODE_REFUSED

    def save(self, commit=True):
        trigger = super().save(commit=False)
        if commit:
            trigger_save(trigger, user=self.user)
        return trigger


class TriggerFormSet(forms.BaseInlineFormSet):
    def get_form_kwargs(self, index):
        return {**super().get_form_kwargs(index), "scenario": self.instance}


class ScopedInlinePermissions:
    """An inline of a scenario's children: view with the scenario, write as its editor."""

    def has_view_permission(self, request, obj=None):
        if obj is None:
            return permissions.projects_for(request.user, "view", self.model).exists()
        return permissions.can(request.user, "view", obj)

    def has_add_permission(self, request, obj=None):
        if obj is None:
            return permissions.projects_for(request.user, "change", self.model).exists()
        return permissions.can(request.user, "change", obj)

    def has_change_permission(self, request, obj=None):
        return self.has_add_permission(request, obj)

    def has_delete_permission(self, request, obj=None):
        return self.has_add_permission(request, obj)


class TriggerInline(ScopedInlinePermissions, admin.StackedInline):
    """The scenario's triggers, on the scenario's change page."""

    model = Trigger
    form = TriggerForm
    formset = TriggerFormSet
    extra = 0
    fields = INLINE_FIELDS
    readonly_fields = ["next_fire_at", "last_fired_at", "suspended_reason"]

    def get_formset(self, request, obj=None, **kwargs):
        formset = super().get_formset(request, obj, **kwargs)  # a new form class on every call
        formset.form.user = request.user
        formset.form.kind_options = kind_options(request.user)
        return formset


class LatestEvaluationsFormSet(forms.BaseInlineFormSet):
    def get_queryset(self):
        if not hasattr(self, "_latest"):
            self._latest = list(super().get_queryset()[:LATEST_EVALUATIONS])
        return self._latest


class TriggerEvaluationInline(admin.TabularInline):
    """The latest evaluations, read-only: why the trigger did or did not start a run."""

    model = TriggerEvaluation
    formset = LatestEvaluationsFormSet
    verbose_name_plural = f"evaluations (latest {LATEST_EVALUATIONS})"
    extra = 0
    can_delete = False
    fields = ["at", "result", "message", "run"]
    readonly_fields = fields

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("run__scenario")

    def has_view_permission(self, request, obj=None):
        return obj is None or permissions.can(request.user, "view", obj)

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


class KindFilter(admin.SimpleListFilter):
    title = "kind"
    parameter_name = "kind"

    def lookups(self, request, model_admin):
        return kind_choices()

    def queryset(self, request, queryset):
        return queryset.filter(kind=self.value()) if self.value() else queryset


@admin.register(Trigger)
class TriggerAdmin(ProjectScopedAdmin):
    form = TriggerForm
    inlines = [TriggerEvaluationInline]
    list_display = ["name", "scenario", "kind", "enabled", "next_fire_at", "last_fired_at",
                    "suspended_reason"]  # fmt: skip
    list_filter = [KindFilter, "enabled"]
    list_select_related = ["scenario__project"]
    search_fields = ["name", "scenario__name"]
    actions = ["test_now", "enable", "disable"]
    readonly_fields = ["schedule", *STATUS_FIELDS, "updated_at"]
    fieldsets = [
        (None, {"fields": ["scenario", ("name", "kind", "enabled"), "params"]}),
        ("Checks", {"fields": [("check_interval_seconds", "grace_seconds", "catch_up")]}),
        ("Status", {"fields": ["schedule", *STATUS_FIELDS, "updated_at"]}),
    ]

    @admin.display(description="Beat schedule")
    def schedule(self, trigger) -> str:
        row = trigger_schedule(trigger) if trigger.pk else None
        if row is None:
            return "—"
        if row["crontab"]:
            return f"crontab {row['crontab']} ({row['timezone']})"
        return f"every {row['every_minutes']} minute(s)"

    def formfield_for_foreignkey(self, db_field, request, **kwargs):
        if db_field.name == "scenario":
            scenarios = Scenario.objects.select_related("project")
            kwargs["queryset"] = permissions.for_user(scenarios, request.user, "change")
        return super().formfield_for_foreignkey(db_field, request, **kwargs)

    def get_form(self, request, obj=None, change=False, **kwargs):
        form = super().get_form(request, obj, change, **kwargs)  # a new class on every call
        form.user = request.user
        form.kind_options = kind_options(request.user)
        return form

    def save_model(self, request, obj, form, change):
        # Inside the admin's transaction: re-check after the write, as ProjectScopedAdmin does.
        trigger_save(obj, user=request.user)
        if not permissions.can(request.user, "change", obj):
            raise PermissionDenied

    def has_run_permission(self, request) -> bool:
        return permissions.projects_for(request.user, "run", Trigger).exists()

    @admin.action(description="Test now (evaluate without firing)", permissions=["run"])
    def test_now(self, request, queryset):
        for trigger in queryset.select_related("scenario"):
            if not permissions.can(request.user, "run", trigger):
                self.message_user(request, f"{trigger.name}: you may not test it.", messages.ERROR)
                continue
            evaluation = trigger_evaluate(trigger, timezone.now(), fire=False)
            text = f"{trigger.name}: {evaluation.get_result_display()}"
            text += f" — {evaluation.message}" if evaluation.message else "."
            failed = evaluation.result in ("error", "suspended")
            self.message_user(request, text, messages.ERROR if failed else messages.SUCCESS)

    def _set_enabled(self, request, queryset, enabled: bool) -> None:
        done = 0
        for trigger in queryset.select_related("scenario__project"):
            refusal = self._refusal(request.user, trigger)
            if refusal is None:
                trigger.enabled = enabled
                try:
                    trigger_save(trigger, user=request.user)
                    done += 1
                    continue
                except (PermissionDenied, ValidationError) as error:
                    refusal = "; ".join(getattr(error, "messages", None) or [str(error)])
            self.message_user(request, f"{trigger.name}: {refusal}", messages.ERROR)
        word = "enabled" if enabled else "disabled"
        self.message_user(request, f"{done} trigger(s) {word}.")

    @staticmethod
    def _refusal(user, trigger: Trigger) -> str | None:
        if not permissions.can(user, "change", trigger):
            return "you may not edit it."
        if writes_code(trigger.kind) and not permissions.can(user, "code", trigger):
            return CODE_REFUSED
        return None

    @admin.action(description="Enable", permissions=["change"])
    def enable(self, request, queryset):
        self._set_enabled(request, queryset, True)

    @admin.action(description="Disable", permissions=["change"])
    def disable(self, request, queryset):
        self._set_enabled(request, queryset, False)
