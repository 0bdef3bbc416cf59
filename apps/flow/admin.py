"""Admin for the flow: connections (superusers only; the password is write-only), and the
datasets and recipes of projects with their build status and Build / Clear actions.

The actions build in the request, for now: fine for small flows; a scenario with a build
step is the way to build big ones in the background.
"""

from __future__ import annotations

from django import forms
from django.contrib import admin, messages

from apps.flow.models import Connection, Dataset, Recipe
from apps.flow.selectors import connections_usable_by, out_of_date_ids
from apps.flow.services import (
    BuildOutcome,
    connection_password_set,
    dataset_clear_for,
    datasets_build,
    recipe_link,
)
from apps.flow.storage import FlowError, connection_test
from apps.flow.validation import connection_errors, dataset_errors, recipe_errors, writes_python
from apps.projects import permissions
from apps.projects.admin import ProjectScopedAdmin
from apps.system.encryption import SecretsUnreadable

CODE_REFUSED = "Writing a Python recipe needs the coder profile and the editor role."
BUILD_STATUS = ["built_at", "built_by_recipe", "row_count", "out_of_date", "columns"]

# --- connections -------------------------------------------------------------------------------


class ConnectionForm(forms.ModelForm):
    password = forms.CharField(
        required=False,
        strip=False,
        widget=forms.PasswordInput(render_value=False, attrs={"autocomplete": "new-password"}),
        help_text="Write-only: never shown again. Leave blank to keep the stored password.",
    )
    clear_password = forms.BooleanField(required=False, label="Remove the stored password")

    class Meta:
        model = Connection
        fields = ["name", "kind", "config", "allowed_groups"]

    def clean(self):
        data = super().clean()
        errors = connection_errors(
            instance=self.instance if self.instance.pk else None,
            name=data.get("name"),
            kind=data.get("kind"),
            config=data.get("config"),
        )
        for field, message in errors.items():
            self.add_error(field, message)
        return data

    def save(self, commit=True):
        connection_password_set(
            self.instance,
            password=self.cleaned_data.get("password", ""),
            clear=self.cleaned_data.get("clear_password", False),
        )
        return super().save(commit)


@admin.register(Connection)
class ConnectionAdmin(admin.ModelAdmin):
    form = ConnectionForm
    list_display = ["name", "kind", "password_state", "groups"]
    list_filter = ["kind"]
    search_fields = ["name"]
    filter_horizontal = ["allowed_groups"]
    readonly_fields = ["password_state"]
    fields = ["name", "kind", "config", "password", "clear_password", "password_state",
              "allowed_groups"]  # fmt: skip
    actions = ["test_connection"]

    def get_queryset(self, request):
        return super().get_queryset(request).prefetch_related("allowed_groups")

    def has_module_permission(self, request):
        return request.user.is_active and request.user.is_superuser

    def has_view_permission(self, request, obj=None):
        return self.has_module_permission(request)

    has_add_permission = has_module_permission
    has_change_permission = has_view_permission
    has_delete_permission = has_view_permission

    @admin.display(description="Password")
    def password_state(self, connection) -> str:
        try:
            stored = bool(connection.secrets.get("password"))
        except SecretsUnreadable:
            return "password: unreadable (was the secrets key changed?)"
        return "password: set" if stored else "password: not set"

    @admin.display(description="Usable by")
    def groups(self, connection) -> str:
        names = [group.name for group in connection.allowed_groups.all()]
        return ", ".join(names) or "everyone"

    @admin.action(description="Test connection")
    def test_connection(self, request, queryset):
        for connection in queryset:
            try:
                answer = connection_test(connection)
            except (FlowError, SecretsUnreadable) as error:
                self.message_user(request, f"{connection.name}: {error}", messages.ERROR)
                continue
            self.message_user(request, f"{connection.name}: {answer}.", messages.SUCCESS)


# --- datasets ----------------------------------------------------------------------------------


class FlowStatusAdmin(ProjectScopedAdmin):
    """Marks each row of a changelist out of date or not, computed once for the page."""

    def get_changelist_instance(self, request):
        changelist = super().get_changelist_instance(request)
        rows = list(changelist.result_list)  # the page, now cached for the template
        stale = out_of_date_ids({row.project_id for row in rows})
        for row in rows:
            row.flow_out_of_date = self.is_out_of_date(row, stale)
        return changelist

    def is_out_of_date(self, obj, stale: set[int]) -> bool:
        raise NotImplementedError

    @admin.display(description="Out of date", boolean=True)
    def out_of_date(self, obj) -> bool | None:
        if obj.pk is None:
            return None
        if not hasattr(obj, "flow_out_of_date"):  # a change page: one object
            obj.flow_out_of_date = self.is_out_of_date(obj, out_of_date_ids([obj.project_id]))
        return obj.flow_out_of_date


class DatasetForm(forms.ModelForm):
    class Meta:
        model = Dataset
        fields = ["project", "name", "connection", "format", "path", "table"]

    def clean(self):
        data = super().clean()
        project = data.get("project") or getattr(self.instance, "project", None)
        if project is None or data.get("connection") is None or "format" not in data:
            return data  # their own errors say what is missing
        fields = ("name", "connection", "format", "path", "table")
        dataset = Dataset(
            pk=self.instance.pk, project=project, **{name: data.get(name, "") for name in fields}
        )
        for field, message in dataset_errors(dataset).items():
            self.add_error(field, message)
        return data


@admin.register(Dataset)
class DatasetAdmin(FlowStatusAdmin):
    form = DatasetForm
    list_display = ["name", "project", "connection", "format", "built_at", "row_count",
                    "built_by_recipe", "out_of_date"]  # fmt: skip
    list_filter = [
        ("project", admin.RelatedOnlyFieldListFilter),
        ("connection", admin.RelatedOnlyFieldListFilter),
        "format",
    ]
    list_select_related = ["project", "connection", "built_by"]
    search_fields = ["name", "path", "table"]
    actions = ["build_required", "build_force", "clear_data"]
    fieldsets = [
        (None, {"fields": ["project", "name", "connection", "format", "path", "table"]}),
        ("Build status", {"fields": BUILD_STATUS}),
    ]

    def get_readonly_fields(self, request, obj=None):
        readonly = list(BUILD_STATUS)
        return [*readonly, "project"] if obj else readonly

    def formfield_for_foreignkey(self, db_field, request, **kwargs):
        if db_field.name == "connection":
            kwargs["queryset"] = connections_usable_by(request.user)
        return super().formfield_for_foreignkey(db_field, request, **kwargs)

    def is_out_of_date(self, dataset, stale: set[int]) -> bool:
        return dataset.pk in stale

    @admin.display(description="Built by", ordering="built_by__name")
    def built_by_recipe(self, dataset) -> str:
        return dataset.built_by.name if dataset.built_by else "—"

    @admin.display(description="Columns")
    def columns(self, dataset) -> str:
        return ", ".join(f"{c['name']} {c['type']}" for c in dataset.schema or []) or "—"

    def _editable(self, request, queryset) -> list[Dataset]:
        datasets = list(queryset.select_related("project", "connection"))
        allowed = [d for d in datasets if permissions.can(request.user, "change", d)]
        if len(allowed) < len(datasets):
            skipped = len(datasets) - len(allowed)
            self.message_user(request, f"{skipped} skipped: you may not edit them.", messages.ERROR)
        return allowed

    def _build(self, request, queryset, mode: str) -> None:
        targets = self._editable(request, queryset)
        if targets:
            self._report(request, datasets_build(targets, mode=mode, user=request.user))

    def _report(self, request, outcome: BuildOutcome) -> None:
        if outcome.error:
            self.message_user(request, f"Build failed: {outcome.error}", messages.ERROR)
        elif not outcome.recipes:
            self.message_user(request, "Nothing to build: everything is up to date.")
        else:
            rows = ", ".join(f"{name}: {count} rows" for name, count in outcome.rows.items())
            ran = ", ".join(outcome.recipes)
            self.message_user(request, f"Built: ran {ran} ({rows}).", messages.SUCCESS)

    @admin.action(description="Build (required)", permissions=["change"])
    def build_required(self, request, queryset):
        self._build(request, queryset, "required")

    @admin.action(description="Build (force)", permissions=["change"])
    def build_force(self, request, queryset):
        self._build(request, queryset, "force")

    @admin.action(description="Clear data", permissions=["change"])
    def clear_data(self, request, queryset):
        for dataset in self._editable(request, queryset):
            try:
                dataset_clear_for(dataset, user=request.user)
            except FlowError as error:
                self.message_user(request, f"{dataset.name}: {error}", messages.ERROR)
                continue
            self.message_user(request, f"{dataset.name}: data cleared.")


# --- recipes -----------------------------------------------------------------------------------


class RecipeForm(forms.ModelForm):
    user = None  # set per request by RecipeAdmin.get_form

    class Meta:
        model = Recipe
        fields = ["project", "name", "kind", "code", "inputs", "outputs"]

    def clean(self):
        data = super().clean()
        before = self.instance if self.instance.pk else None
        project = data.get("project") or getattr(before, "project", None)
        if project is None or "kind" not in data or {"inputs", "outputs"} & set(self.errors):
            return data  # their own errors say what is missing
        recipe = Recipe(
            pk=self.instance.pk,
            project=project,
            kind=data["kind"],
            code=data.get("code", getattr(before, "code", "")),
        )
        inputs, outputs = list(data.get("inputs") or []), list(data.get("outputs") or [])
        for field, message in recipe_errors(recipe, inputs, outputs).items():
            self.add_error(field if field in self.fields else None, message)
        if writes_python(before, recipe.kind, recipe.code):
            if not permissions.can(self.user, "code", recipe):
                self.add_error("code" if "code" in self.fields else "kind", CODE_REFUSED)
        return data


@admin.register(Recipe)
class RecipeAdmin(FlowStatusAdmin):
    form = RecipeForm
    list_display = ["name", "project", "kind", "input_names", "output_names", "updated_at",
                    "out_of_date"]  # fmt: skip
    list_filter = [("project", admin.RelatedOnlyFieldListFilter), "kind"]
    list_select_related = ["project"]
    search_fields = ["name", "code"]
    filter_horizontal = ["inputs", "outputs"]

    def get_queryset(self, request):
        return super().get_queryset(request).prefetch_related("inputs", "outputs")

    def get_readonly_fields(self, request, obj=None):
        readonly = ["updated_at", "out_of_date"]
        if obj is not None:
            readonly.append("project")  # its datasets stay in their project
            if obj.kind == Recipe.Kind.PYTHON and not permissions.can(request.user, "code", obj):
                readonly.append("code")
        return readonly

    def get_form(self, request, obj=None, change=False, **kwargs):
        form = super().get_form(request, obj, change, **kwargs)  # a new class on every call
        form.user = request.user
        return form

    def formfield_for_manytomany(self, db_field, request, **kwargs):
        if db_field.name in ("inputs", "outputs"):
            datasets = Dataset.objects.select_related("project")
            kwargs["queryset"] = permissions.for_user(datasets, request.user, "change")
        return super().formfield_for_manytomany(db_field, request, **kwargs)

    def save_related(self, request, form, formsets, change):
        # Inside the admin's transaction; a new updated_at (the recipe was saved just
        # before) puts what it writes out of date even when only the links changed.
        data = form.cleaned_data
        recipe_link(form.instance, inputs=list(data["inputs"]), outputs=list(data["outputs"]))
        super().save_related(request, form, formsets, change)

    def is_out_of_date(self, recipe, stale: set[int]) -> bool:
        return any(dataset.pk in stale for dataset in recipe.outputs.all())

    @admin.display(description="Inputs")
    def input_names(self, recipe) -> str:
        return ", ".join(dataset.name for dataset in recipe.inputs.all()) or "—"

    @admin.display(description="Outputs")
    def output_names(self, recipe) -> str:
        return ", ".join(dataset.name for dataset in recipe.outputs.all()) or "—"
