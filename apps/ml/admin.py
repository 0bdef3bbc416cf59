"""Admin for saved models: their versions (read-only, with metrics) and checks inline, and the
Train now action (synchronous: it trains in the request)."""

from __future__ import annotations

from django import forms
from django.contrib import admin, messages

from apps.flow.access import require_usable
from apps.flow.models import Dataset
from apps.flow.storage import FlowError
from apps.ml.models import ModelCheck, ModelVersion, SavedModel
from apps.ml.training import model_train
from apps.ml.validation import model_check_errors, model_errors
from apps.projects import permissions
from apps.projects.admin import ProjectScopedAdmin
from apps.quality.admin import HistoryInline, add_errors


class ModelVersionInline(HistoryInline):
    model = ModelVersion
    fields = ["number", "trained_at", "algorithm", "params", "metrics", "train_rows",
              "test_rows", "run"]  # fmt: skip
    verbose_name_plural = "Latest versions"


class ModelCheckForm(forms.ModelForm):
    task = None  # set per request by ModelCheckInline.get_formset

    class Meta:
        model = ModelCheck
        fields = ["name", "metric", "soft_min", "soft_max", "hard_min", "hard_max"]

    def clean(self):
        data = super().clean()
        if "metric" in data:
            check = ModelCheck(**{name: data.get(name) for name in self.Meta.fields})
            add_errors(self, model_check_errors(check, self.task))
        return data


class ModelCheckInline(admin.TabularInline):
    model = ModelCheck
    form = ModelCheckForm
    extra = 0

    def get_formset(self, request, obj=None, **kwargs):
        formset = super().get_formset(request, obj, **kwargs)
        # The task as posted (the model form may change it), else as saved.
        formset.form.task = request.POST.get("task") or getattr(obj, "task", None)
        return formset

    def has_view_permission(self, request, obj=None):
        return obj is None or permissions.can(request.user, "view", obj)

    def has_add_permission(self, request, obj=None):
        if obj is None:
            return permissions.projects_for(request.user, "change", SavedModel).exists()
        return permissions.can(request.user, "change", obj)

    has_change_permission = has_add_permission
    has_delete_permission = has_add_permission


class SavedModelForm(forms.ModelForm):
    user = None  # set per request by SavedModelAdmin.get_form

    class Meta:
        model = SavedModel
        fields = ["project", "name", "dataset", "target", "task", "algorithm", "params",
                  "active_version"]  # fmt: skip

    def clean(self):
        data = super().clean()
        project = data.get("project") or getattr(self.instance, "project", None)
        if project is None or data.get("dataset") is None or "task" not in data:
            return data  # their own errors say what is missing
        params = {} if data.get("params") is None else data["params"]
        data["params"] = params
        model = SavedModel(project=project, dataset=data["dataset"], task=data["task"],
                           target=data.get("target", ""), algorithm=data.get("algorithm", ""),
                           params=params)  # fmt: skip
        add_errors(self, model_errors(model, user=self.user))
        return data


@admin.register(SavedModel)
class SavedModelAdmin(ProjectScopedAdmin):
    form = SavedModelForm
    inlines = [ModelCheckInline, ModelVersionInline]
    list_display = ["name", "project", "dataset", "target", "task", "algorithm", "active"]
    list_filter = ["task", "algorithm", ("project", admin.RelatedOnlyFieldListFilter)]
    list_select_related = ["project", "dataset", "active_version"]
    search_fields = ["name", "dataset__name", "target"]
    actions = ["train_now"]

    def get_readonly_fields(self, request, obj=None):
        # Versions are made by training; the project stays (its versions' files live there).
        return ["project"] if obj is not None else ["active_version"]

    def get_form(self, request, obj=None, change=False, **kwargs):
        form = super().get_form(request, obj, change, **kwargs)  # a new class on every call
        form.user = request.user
        if obj is not None and "active_version" in form.base_fields:
            field = form.base_fields["active_version"]
            field.queryset = obj.versions.all()
            field.help_text = "Roll back to an earlier version, or forward again."
        return form

    def formfield_for_foreignkey(self, db_field, request, **kwargs):
        if db_field.name == "dataset":
            datasets = Dataset.objects.select_related("project", "connection")
            kwargs["queryset"] = permissions.for_user(datasets, request.user, "change")
        return super().formfield_for_foreignkey(db_field, request, **kwargs)

    @admin.display(description="Active version")
    def active(self, model) -> str:
        version = model.active_version
        if version is None:
            return "—"
        scores = ", ".join(f"{name} {value:g}" for name, value in version.metrics.items())
        return f"v{version.number} ({scores})"

    @admin.action(description="Train now", permissions=["change"])
    def train_now(self, request, queryset):
        for model in queryset.select_related("project", "dataset__connection"):
            if not permissions.can(request.user, "change", model):
                self.message_user(request, f"{model.name}: you may not edit it.", messages.ERROR)
                continue
            try:
                require_usable(model.dataset, request.user)
                version = model_train(model)
            except FlowError as error:
                self.message_user(request, f"{model.name}: {error}", messages.ERROR)
                continue
            scores = ", ".join(f"{name} = {value:g}" for name, value in version.metrics.items())
            self.message_user(request, f"{model.name}: trained v{version.number} ({scores}).")
