"""Admin for charts (with the Refresh cache action, synchronous) and dashboards (with a link
to their page)."""

from __future__ import annotations

from django import forms
from django.contrib import admin, messages
from django.utils.html import format_html

from apps.dashboards.models import Chart, Dashboard
from apps.dashboards.services import chart_refresh
from apps.dashboards.validation import chart_errors, dashboard_errors
from apps.dashboards.views import dashboard_url
from apps.flow.access import require_usable
from apps.flow.models import Dataset
from apps.flow.storage import FlowError
from apps.projects import permissions
from apps.projects.admin import ProjectScopedAdmin
from apps.quality.admin import add_errors


class ChartForm(forms.ModelForm):
    user = None  # set per request by ChartAdmin.get_form

    class Meta:
        model = Chart
        fields = ["project", "name", "dataset", "kind", "group_by", "aggregate", "value"]

    def clean(self):
        data = super().clean()
        project = data.get("project") or getattr(self.instance, "project", None)
        if project is None or data.get("dataset") is None or "aggregate" not in data:
            return data  # their own errors say what is missing
        chart = Chart(project=project, dataset=data["dataset"], aggregate=data["aggregate"],
                      group_by=data.get("group_by", ""), value=data.get("value", ""))  # fmt: skip
        add_errors(self, chart_errors(chart, user=self.user))
        return data


@admin.register(Chart)
class ChartAdmin(ProjectScopedAdmin):
    form = ChartForm
    list_display = ["name", "project", "dataset", "kind", "measure", "group_by", "cached_at"]
    list_filter = ["kind", ("project", admin.RelatedOnlyFieldListFilter)]
    list_select_related = ["project", "dataset"]
    search_fields = ["name", "dataset__name"]
    readonly_fields = ["cached_at", "cached_groups"]
    actions = ["refresh_cache"]

    def get_readonly_fields(self, request, obj=None):
        return [*self.readonly_fields, "project"] if obj is not None else self.readonly_fields

    def get_form(self, request, obj=None, change=False, **kwargs):
        form = super().get_form(request, obj, change, **kwargs)  # a new class on every call
        form.user = request.user
        return form

    def formfield_for_foreignkey(self, db_field, request, **kwargs):
        if db_field.name == "dataset":
            datasets = Dataset.objects.select_related("project", "connection")
            kwargs["queryset"] = permissions.for_user(datasets, request.user, "change")
        return super().formfield_for_foreignkey(db_field, request, **kwargs)

    @admin.display(description="Measure")
    def measure(self, chart) -> str:
        return f"{chart.aggregate}({chart.value or '*'})"

    @admin.display(description="Cached result")
    def cached_groups(self, chart) -> str:
        pairs = zip(chart.cached.get("labels", []), chart.cached.get("values", []), strict=False)
        shown = [f"{label}: {value}" for label, value in list(pairs)[:20]]
        return ", ".join(shown) or "— (not computed yet)"

    @admin.action(description="Refresh cache", permissions=["change"])
    def refresh_cache(self, request, queryset):
        for chart in queryset.select_related("project", "dataset__connection"):
            if not permissions.can(request.user, "change", chart):
                self.message_user(request, f"{chart.name}: you may not edit it.", messages.ERROR)
                continue
            try:
                require_usable(chart.dataset, request.user)
                result = chart_refresh(chart)
            except FlowError as error:
                self.message_user(request, f"{chart.name}: {error}", messages.ERROR)
                continue
            self.message_user(request, f"{chart.name}: {len(result['labels'])} group(s) cached.")


class DashboardForm(forms.ModelForm):
    class Meta:
        model = Dashboard
        fields = ["project", "name", "charts"]

    def clean(self):
        data = super().clean()
        project = data.get("project") or getattr(self.instance, "project", None)
        if project is not None and "charts" in data:
            dashboard = Dashboard(project=project)
            add_errors(self, dashboard_errors(dashboard, list(data["charts"])))
        return data


@admin.register(Dashboard)
class DashboardAdmin(ProjectScopedAdmin):
    form = DashboardForm
    list_display = ["name", "project", "chart_count", "page"]
    list_filter = [("project", admin.RelatedOnlyFieldListFilter)]
    list_select_related = ["project"]
    search_fields = ["name"]
    filter_horizontal = ["charts"]

    def get_queryset(self, request):
        return super().get_queryset(request).prefetch_related("charts")

    def get_readonly_fields(self, request, obj=None):
        return ["project", "page"] if obj is not None else []

    def formfield_for_manytomany(self, db_field, request, **kwargs):
        if db_field.name == "charts":
            charts = Chart.objects.select_related("project")
            kwargs["queryset"] = permissions.for_user(charts, request.user, "change")
        return super().formfield_for_manytomany(db_field, request, **kwargs)

    @admin.display(description="Charts")
    def chart_count(self, dashboard) -> int:
        return len(dashboard.charts.all())

    @admin.display(description="Page")
    def page(self, dashboard) -> str:
        if dashboard.pk is None:
            return "—"
        return format_html('<a href="{}">Open the dashboard</a>', dashboard_url(dashboard))
