"""Admin for metrics, checks and data-quality rules, with their latest history inline and the
Compute / Run / Verify now actions (synchronous: they work in the request).

Checks take their metric's dataset. Python checks run only in scenarios (in the sandbox);
writing their code needs the coder profile.
"""

from __future__ import annotations

from django import forms
from django.contrib import admin, messages
from django.db.models import OuterRef, Subquery

from apps.flow.access import require_usable
from apps.flow.models import Dataset
from apps.flow.storage import FlowError
from apps.projects import permissions
from apps.projects.admin import ProjectScopedAdmin
from apps.quality.models import Check, Metric, MetricValue, QualityResult, Rule
from apps.quality.services import checks_run, metrics_compute, rules_verify, worst
from apps.quality.validation import (
    BOUNDS,
    check_errors,
    check_writes_code,
    metric_errors,
    rule_errors,
)

CODE_REFUSED = "Writing a Python check needs the coder profile and the editor role."
LEVELS = {"OK": messages.SUCCESS, "WARNING": messages.WARNING, "ERROR": messages.ERROR}


def add_errors(form: forms.ModelForm, errors: dict[str, str]) -> None:
    for field, message in errors.items():
        form.add_error(field if field in form.fields else None, message)


def dataset_of(form: forms.ModelForm) -> Dataset | None:
    """The dataset chosen, or kept (read-only once saved)."""
    chosen = form.cleaned_data.get("dataset")
    return chosen or (form.instance.dataset if form.instance.dataset_id else None)


# --- history inlines (read-only) ---------------------------------------------------------------


class LatestFormSet(forms.BaseInlineFormSet):
    """Only the latest rows of a long history."""

    limit = 20

    def get_queryset(self):
        if not hasattr(self, "_queryset"):
            self._queryset = super().get_queryset()[: self.limit]
        return self._queryset


class HistoryInline(admin.TabularInline):
    """The latest 20 rows of a history, read-only."""

    formset = LatestFormSet
    extra = 0
    can_delete = False

    def get_readonly_fields(self, request, obj=None):
        return self.fields

    def has_view_permission(self, request, obj=None):
        return obj is not None and permissions.can(request.user, "view", obj)

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


class MetricValueInline(HistoryInline):
    model = MetricValue
    fields = ["computed_at", "value", "run"]
    verbose_name_plural = "Latest values"


class CheckResultInline(HistoryInline):
    model = QualityResult
    fk_name = "check_ref"
    fields = ["at", "outcome", "value", "message", "run"]
    verbose_name_plural = "Latest results"


class RuleResultInline(CheckResultInline):
    fk_name = "rule"


# --- the shared base ---------------------------------------------------------------------------


class DatasetChildAdmin(ProjectScopedAdmin):
    """Metrics, checks and rules: scoped through their dataset, which the user must be able
    to edit; the form knows the user (to detect columns, and for the code permission)."""

    project_field = None
    history_inline: type[HistoryInline]

    def get_form(self, request, obj=None, change=False, **kwargs):
        form = super().get_form(request, obj, change, **kwargs)  # a new class on every call
        form.user = request.user
        return form

    def get_inlines(self, request, obj):
        return [self.history_inline] if obj is not None else []

    def get_readonly_fields(self, request, obj=None):
        # It stays on its dataset: its history (and a metric's checks) are about it.
        return ["dataset"] if obj is not None else []

    def formfield_for_foreignkey(self, db_field, request, **kwargs):
        if db_field.name == "dataset":
            datasets = Dataset.objects.select_related("project", "connection")
            kwargs["queryset"] = permissions.for_user(datasets, request.user, "change")
        return super().formfield_for_foreignkey(db_field, request, **kwargs)

    def usable_datasets(self, request, queryset) -> list[Dataset]:
        """The distinct datasets of the selected rows the user may edit and read."""
        rows = queryset.select_related("dataset__project", "dataset__connection")
        datasets = {row.dataset_id: row.dataset for row in rows}
        usable = []
        for dataset in datasets.values():
            if not permissions.can(request.user, "change", dataset):
                self.message_user(request, f"{dataset.name}: you may not edit it.", messages.ERROR)
                continue
            try:
                require_usable(dataset, request.user)
            except FlowError as error:
                self.message_user(request, f"{dataset.name}: {error}", messages.ERROR)
                continue
            usable.append(dataset)
        return usable

    def report_results(self, request, dataset: Dataset, results, name) -> None:
        if not results:
            self.message_user(request, f"{dataset.name}: nothing to verify.", messages.WARNING)
            return
        parts = [f"{name(r)} {r.outcome} ({r.message})" for r in results]
        level = LEVELS[worst(r.outcome for r in results)]
        self.message_user(request, f"{dataset.name}: {'; '.join(parts)}.", level)


# --- metrics -----------------------------------------------------------------------------------


class MetricForm(forms.ModelForm):
    user = None  # set per request by the admin's get_form

    class Meta:
        model = Metric
        fields = ["dataset", "name", "kind", "column", "sql"]

    def clean(self):
        data = super().clean()
        dataset = dataset_of(self)
        if dataset is None or "kind" not in data:
            return data  # their own errors say what is missing
        fields = ("name", "kind", "column", "sql")
        metric = Metric(dataset=dataset, **{name: data.get(name, "") for name in fields})
        add_errors(self, metric_errors(metric, user=self.user))
        return data


@admin.register(Metric)
class MetricAdmin(DatasetChildAdmin):
    form = MetricForm
    history_inline = MetricValueInline
    list_display = ["name", "dataset", "kind", "column", "last_value", "last_computed_at"]
    list_filter = ["kind", ("dataset__project", admin.RelatedOnlyFieldListFilter)]
    list_select_related = ["dataset__project"]
    search_fields = ["name", "dataset__name"]
    actions = ["compute_now"]

    def get_queryset(self, request):
        latest = MetricValue.objects.filter(metric=OuterRef("pk")).order_by("-computed_at")
        return (
            super()
            .get_queryset(request)
            .annotate(
                latest_value=Subquery(latest.values("value")[:1]),
                latest_at=Subquery(latest.values("computed_at")[:1]),
            )
        )

    @admin.display(description="Last value")
    def last_value(self, metric) -> str:
        value = getattr(metric, "latest_value", None)
        return "—" if value is None else f"{value:g}"

    @admin.display(description="Computed at", ordering="latest_at")
    def last_computed_at(self, metric):
        return getattr(metric, "latest_at", None)

    @admin.action(description="Compute metrics now (all of their datasets' metrics)",
                  permissions=["change"])  # fmt: skip
    def compute_now(self, request, queryset):
        for dataset in self.usable_datasets(request, queryset):
            try:
                values = metrics_compute(dataset)
            except FlowError as error:
                self.message_user(request, f"{dataset.name}: {error}", messages.ERROR)
                continue
            shown = ", ".join(f"{name} = {value}" for name, value in values.items())
            self.message_user(request, f"{dataset.name}: {shown or 'no metrics'}.")


# --- checks ------------------------------------------------------------------------------------


class CheckForm(forms.ModelForm):
    user = None  # set per request by the admin's get_form

    class Meta:
        model = Check
        fields = ["name", "metric", "soft_min", "soft_max", "hard_min", "hard_max", "code"]

    def clean(self):
        data = super().clean()
        metric = data.get("metric")
        if metric is None:
            return data
        before = self.instance if self.instance.pk else None
        self.instance.dataset = metric.dataset  # a check watches its metric's dataset
        code = data.get("code", self.instance.code)  # kept when read-only
        check = Check(dataset=metric.dataset, metric=metric, code=code,
                      **{name: data.get(name) for name in BOUNDS})  # fmt: skip
        add_errors(self, check_errors(check))
        clash = Check.objects.filter(dataset=metric.dataset, name=data.get("name"))
        if clash.exclude(pk=self.instance.pk).exists():
            self.add_error("name", f"{metric.dataset.name} already has a check of this name.")
        if "code" in data and check_writes_code(before, data["code"]):
            if not permissions.can(self.user, "code", check):
                self.add_error("code", CODE_REFUSED)
        return data


@admin.register(Check)
class CheckAdmin(DatasetChildAdmin):
    form = CheckForm
    history_inline = CheckResultInline
    list_display = ["name", "dataset", "metric", "bounds", "python"]
    list_filter = [("dataset__project", admin.RelatedOnlyFieldListFilter)]
    list_select_related = ["dataset__project", "metric"]
    search_fields = ["name", "dataset__name", "metric__name"]
    actions = ["run_now"]

    def get_readonly_fields(self, request, obj=None):
        readonly = ["dataset"]
        if obj is not None and obj.code and not permissions.can(request.user, "code", obj):
            readonly.append("code")
        return readonly

    def formfield_for_foreignkey(self, db_field, request, **kwargs):
        if db_field.name == "metric":
            metrics = Metric.objects.select_related("dataset__project")
            kwargs["queryset"] = permissions.for_user(metrics, request.user, "change")
        return super().formfield_for_foreignkey(db_field, request, **kwargs)

    @admin.display(description="Bounds")
    def bounds(self, check) -> str:
        soft = f"soft [{_bound(check.soft_min)}, {_bound(check.soft_max)}]"
        return f"{soft} hard [{_bound(check.hard_min)}, {_bound(check.hard_max)}]"

    @admin.display(description="Python", boolean=True)
    def python(self, check) -> bool:
        return bool(check.code.strip())

    @admin.action(description="Run checks now (all of their datasets' checks)",
                  permissions=["change"])  # fmt: skip
    def run_now(self, request, queryset):
        for dataset in self.usable_datasets(request, queryset):
            try:
                results = checks_run(dataset)
            except FlowError as error:
                self.message_user(request, f"{dataset.name}: {error}", messages.ERROR)
                continue
            self.report_results(request, dataset, results, lambda r: r.check_ref.name)


def _bound(value: float | None) -> str:
    return "" if value is None else f"{value:g}"


# --- rules -------------------------------------------------------------------------------------


class RuleForm(forms.ModelForm):
    user = None  # set per request by the admin's get_form

    class Meta:
        model = Rule
        fields = ["dataset", "name", "kind", "column", "params", "severity"]

    def clean(self):
        data = super().clean()
        dataset = dataset_of(self)
        if dataset is None or "kind" not in data or "params" in self.errors:
            return data  # their own errors say what is missing
        data["params"] = {} if data.get("params") is None else data["params"]
        rule = Rule(dataset=dataset, kind=data["kind"], column=data.get("column", ""),
                    params=data["params"])  # fmt: skip
        add_errors(self, rule_errors(rule, user=self.user))
        return data


@admin.register(Rule)
class RuleAdmin(DatasetChildAdmin):
    form = RuleForm
    history_inline = RuleResultInline
    list_display = ["name", "dataset", "kind", "column", "params", "severity"]
    list_filter = ["kind", "severity", ("dataset__project", admin.RelatedOnlyFieldListFilter)]
    list_select_related = ["dataset__project"]
    search_fields = ["name", "dataset__name", "column"]
    actions = ["verify_now"]

    @admin.action(description="Verify rules now (all of their datasets' rules)",
                  permissions=["change"])  # fmt: skip
    def verify_now(self, request, queryset):
        for dataset in self.usable_datasets(request, queryset):
            try:
                results = rules_verify(dataset)
            except FlowError as error:
                self.message_user(request, f"{dataset.name}: {error}", messages.ERROR)
                continue
            self.report_results(request, dataset, results, lambda r: r.rule.name)
