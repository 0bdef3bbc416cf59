"""Admin for scenarios, with their steps, triggers and reporters inline and the Run now /
Abort / Activate actions."""

from __future__ import annotations

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import ValidationError
from django.db.models import OuterRef, Subquery

from apps.projects import permissions
from apps.projects.admin import ProjectScopedAdmin
from apps.reporters.admin import ReporterInline
from apps.runs.models import ACTIVE_STATUSES, Run
from apps.runs.services import run_abort, run_start
from apps.scenarios.models import Scenario, Step
from apps.scenarios.services import scenario_run_as
from apps.scenarios.steps import get_step_type, step_type_choices, validate_params
from apps.scenarios.validation import step_condition_errors, writes_script
from apps.triggers.admin import TriggerInline

STEP_FIELDS = [
    "position", "name", "type", "params", "enabled", "run_condition", "condition_outcomes",
    "condition_expression", "retries", "retry_delay_seconds", "retry_backoff", "timeout_seconds",
    "warnings_as", "proceed_on_failure", "reset_failure_state",
]  # fmt: skip
CODE_REFUSED = "Writing code needs the coder profile and the editor role on the project."


class StepForm(forms.ModelForm):
    type = forms.ChoiceField(choices=step_type_choices)

    class Meta:
        model = Step
        fields = STEP_FIELDS

    def __init__(self, *args, user=None, scenario: Scenario | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        self.user, self.scenario = user, scenario

    def clean(self):
        data = super().clean()
        if "type" in data and "params" not in self.errors:
            params = {} if data.get("params") is None else data["params"]
            try:
                data["params"] = validate_params(data["type"], params)
            except ValidationError as error:
                self.add_error(None, error)
        condition_errors = step_condition_errors(
            data.get("run_condition"),
            data.get("condition_expression"),
            data.get("condition_outcomes"),
        )
        for field, message in condition_errors.items():
            self.add_error(field, message)
        if self.has_changed() and self._writes_code(data) and not self._may_code():
            self.add_error("type", CODE_REFUSED)
        return data

    def _writes_code(self, data) -> bool:
        types = {data.get("type"), self.instance.type if self.instance.pk else None}
        return any(get_step_type(key).needs_code for key in types if key)

    def _may_code(self) -> bool:
        if self.scenario is None or self.scenario.project_id is None:
            return True  # the scenario form itself fails: no project to ask about yet
        return permissions.can(self.user, "code", Step(scenario=self.scenario))


class StepFormSet(forms.BaseInlineFormSet):
    user = None  # set per request by StepInline.get_formset

    def get_form_kwargs(self, index):
        return {**super().get_form_kwargs(index), "user": self.user, "scenario": self.instance}


class StepInline(admin.StackedInline):
    model = Step
    form = StepForm
    formset = StepFormSet
    extra = 0
    fieldsets = [
        (None, {"fields": [("position", "name", "type", "enabled"), "params"]}),
        (
            "Flow control",
            {
                "classes": ["collapse"],
                "fields": [
                    "run_condition",
                    "condition_outcomes",
                    "condition_expression",
                    ("retries", "retry_delay_seconds", "retry_backoff"),
                    ("timeout_seconds", "warnings_as"),
                    ("proceed_on_failure", "reset_failure_state"),
                ],
            },
        ),
    ]

    def get_formset(self, request, obj=None, **kwargs):
        formset = super().get_formset(request, obj, **kwargs)  # a new class on every call
        formset.user = request.user
        return formset

    def has_view_permission(self, request, obj=None):
        if obj is None:
            return permissions.projects_for(request.user, "view", Step).exists()
        return permissions.can(request.user, "view", obj)

    def has_add_permission(self, request, obj=None):
        if obj is None:
            return permissions.projects_for(request.user, "change", Step).exists()
        return permissions.can(request.user, "change", obj)

    def has_change_permission(self, request, obj=None):
        return self.has_add_permission(request, obj)

    def has_delete_permission(self, request, obj=None):
        return self.has_add_permission(request, obj)


class ScenarioForm(forms.ModelForm):
    user = None  # set per request by ScenarioAdmin.get_form

    class Meta:
        model = Scenario
        fields = [
            "project", "name", "description", "tags", "kind", "script", "active", "run_as",
            "queue_policy", "max_parallel", "variables", "run_timeout_seconds",
        ]  # fmt: skip

    def clean_variables(self):
        value = self.cleaned_data.get("variables")
        if not isinstance(value, dict):
            raise ValidationError("Scenario variables must be a JSON object.")
        return value

    def clean_tags(self):
        value = self.cleaned_data.get("tags")
        if not isinstance(value, list) or not all(isinstance(tag, str) for tag in value):
            raise ValidationError('Tags are a JSON list of strings, e.g. ["nightly"].')
        return value

    def clean(self):
        data = super().clean()
        before = self.instance if self.instance.pk else None
        project = data.get("project") or getattr(before, "project", None)
        if project is not None and writes_script(before, data):
            if not permissions.can(self.user, "code", Scenario(project=project)):
                self.add_error("script" if "script" in self.fields else None, CODE_REFUSED)
        return data


@admin.register(Scenario)
class ScenarioAdmin(ProjectScopedAdmin):
    form = ScenarioForm
    inlines = [StepInline, TriggerInline, ReporterInline]
    list_display = ["name", "project", "kind", "active", "queue_policy", "last_run", "updated_at"]
    list_filter = ["kind", "active", "queue_policy"]
    list_select_related = ["project"]
    search_fields = ["name", "description"]
    actions = ["run_now", "abort_active_runs", "activate", "deactivate"]

    def get_queryset(self, request):
        latest = Run.objects.filter(scenario=OuterRef("pk")).order_by("-id")
        return (
            super()
            .get_queryset(request)
            .annotate(
                last_run_number=Subquery(latest.values("number")[:1]),
                last_run_status=Subquery(latest.values("status")[:1]),
            )
        )

    @admin.display(description="Last run", ordering="last_run_status")
    def last_run(self, scenario) -> str:
        if getattr(scenario, "last_run_number", None) is None:
            return "—"
        return f"#{scenario.last_run_number} {scenario.last_run_status}"

    @admin.display(description="Runs as")
    def effective_run_as(self, scenario) -> str:
        return str(scenario.effective_run_as() or "—")

    def get_readonly_fields(self, request, obj=None):
        readonly = ["effective_run_as", "updated_by", "created_at", "updated_at"]
        if not request.user.is_superuser:
            readonly.append("run_as")  # only a superuser picks someone else
        if obj is not None:
            readonly.append("project")  # its runs stay in the project they ran in
            if not permissions.can(request.user, "code", obj):
                readonly.append("script")
        return readonly

    def get_form(self, request, obj=None, change=False, **kwargs):
        form = super().get_form(request, obj, change, **kwargs)  # a new class on every call
        form.user = request.user
        return form

    def save_model(self, request, obj, form, change):
        obj.updated_by = request.user
        obj.run_as = scenario_run_as(user=request.user, current=obj.run_as)
        super().save_model(request, obj, form, change)

    def has_delete_permission(self, request, obj=None):
        # Never with active runs: deleting would pull the run out from under its runner.
        if obj is not None and obj.runs.filter(status__in=ACTIVE_STATUSES).exists():
            return False
        return super().has_delete_permission(request, obj)

    def has_run_permission(self, request) -> bool:
        return permissions.projects_for(request.user, "run", Scenario).exists()

    @admin.action(description="Run now", permissions=["run"])
    def run_now(self, request, queryset):
        for scenario in queryset:
            if not permissions.can(request.user, "run", scenario):
                self.message_user(request, f"{scenario}: you may not run it.", messages.ERROR)
                continue
            started = run_start(
                scenario=scenario,
                user=request.user,
                trigger_kind="manual",
                trigger_name=request.user.get_username(),
            )
            if started.run is not None:
                self.message_user(request, f"{scenario}: started run #{started.run.number}.")
                continue
            active = f" (run #{started.active.number})" if started.active else ""
            message = f"{scenario}: skipped, {started.reason}{active}."
            self.message_user(request, message, messages.WARNING)

    @admin.action(description="Abort active runs", permissions=["run"])
    def abort_active_runs(self, request, queryset):
        for scenario in queryset:
            if not permissions.can(request.user, "run", scenario):
                self.message_user(request, f"{scenario}: you may not abort it.", messages.ERROR)
                continue
            runs = list(scenario.runs.filter(status__in=ACTIVE_STATUSES))
            for run in runs:
                run_abort(run, user=request.user)
            self.message_user(request, f"{scenario}: asked {len(runs)} active run(s) to abort.")

    def _set_active(self, request, queryset, active: bool) -> None:
        allowed = [s.pk for s in queryset if permissions.can(request.user, "change", s)]
        changed = Scenario.objects.filter(pk__in=allowed).update(active=active)
        word = "activated" if active else "deactivated"
        self.message_user(request, f"{changed} scenario(s) {word}.")
        if len(allowed) < len(queryset):
            skipped = len(queryset) - len(allowed)
            self.message_user(request, f"{skipped} skipped: you may not edit them.", messages.ERROR)

    @admin.action(description="Activate (let triggers start them)", permissions=["change"])
    def activate(self, request, queryset):
        self._set_active(request, queryset, True)

    @admin.action(description="Deactivate (triggers stop starting them)", permissions=["change"])
    def deactivate(self, request, queryset):
        self._set_active(request, queryset, False)
