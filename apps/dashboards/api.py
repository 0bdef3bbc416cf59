"""REST API for the charts of a project (with Refresh, which recomputes the cached result in
the request) and its dashboards (with the address of their page)."""

from __future__ import annotations

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema, extend_schema_field
from rest_framework import serializers
from rest_framework.decorators import action
from rest_framework.response import Response

from apps.dashboards.models import Chart, Dashboard
from apps.dashboards.services import chart_refresh
from apps.dashboards.validation import chart_errors
from apps.dashboards.views import dashboard_url
from apps.flow.access import require_usable
from apps.flow.api.datasets import FlowRequestError
from apps.flow.api.references import NameOrIdField, ProjectDatasetField, merged
from apps.flow.storage import FlowError
from apps.projects.api import ProjectChildViewSet
from apps.quality.api import raise_field_errors


class CachedSerializer(serializers.Serializer):
    labels = serializers.ListField(child=serializers.CharField())
    values = serializers.ListField(child=serializers.FloatField(allow_null=True))


@extend_schema_field(CachedSerializer)
class CachedField(serializers.JSONField):
    """The chart's result as last computed: {labels, values} (empty before the first refresh)."""


class ChartSerializer(serializers.ModelSerializer):
    dataset = ProjectDatasetField()
    cached = CachedField(read_only=True)

    class Meta:
        model = Chart
        fields = ["id", "name", "dataset", "kind", "group_by", "aggregate", "value", "cached",
                  "cached_at"]  # fmt: skip
        read_only_fields = ["cached_at"]
        extra_kwargs = {"group_by": {"help_text": "The column whose values label the groups."}}
        validators = []  # the unique name is checked in validate(), naming the field

    def validate(self, data):
        project = self.context["view"].get_project()
        fields = ("name", "dataset", "group_by", "aggregate", "value")
        chart = Chart(project=project, **{name: merged(self, data, name) for name in fields})
        errors = chart_errors(chart, user=self.context["request"].user)
        clash = Chart.objects.filter(project=project, name=chart.name)
        if clash.exclude(pk=getattr(self.instance, "pk", None)).exists():
            errors["name"] = f"The project already has a chart named {chart.name!r}."
        raise_field_errors(errors)
        return data


class ChartViewSet(ProjectChildViewSet):
    """Charts over the project's datasets, with their cached result. Editors write and
    refresh them (a scenario's "Refresh chart caches" step refreshes them in the background)."""

    queryset = Chart.objects.select_related("project", "dataset__connection")
    serializer_class = ChartSerializer

    @extend_schema(request=None, responses=ChartSerializer, summary="Refresh the chart's cache")
    @action(detail=True, methods=["post"], required_action="change")
    def refresh(self, request, project_key=None, pk=None):
        """Recompute the chart now, where the data lives, and wait: 200 with the chart and
        its new cached result; 400 with the reason when the data cannot be read."""
        chart = self.get_object()
        try:
            require_usable(chart.dataset, request.user)
            chart_refresh(chart)
        except FlowError as error:
            raise FlowRequestError(str(error)) from None
        chart.refresh_from_db()
        return Response(self.get_serializer(chart).data)


class ProjectChartField(NameOrIdField):
    kind = "chart"

    def get_queryset(self):
        return Chart.objects.filter(project=self.context["view"].get_project())


class DashboardSerializer(serializers.ModelSerializer):
    charts = ProjectChartField(many=True, required=False, help_text="Charts, by name or id.")
    page = serializers.SerializerMethodField(help_text="The dashboard's page.")

    class Meta:
        model = Dashboard
        fields = ["id", "name", "charts", "page"]
        validators = []  # the unique name is checked in validate(), naming the field

    @extend_schema_field(OpenApiTypes.URI)
    def get_page(self, dashboard) -> str:
        return self.context["request"].build_absolute_uri(dashboard_url(dashboard))

    def validate_name(self, value):
        clash = Dashboard.objects.filter(project=self.context["view"].get_project(), name=value)
        if clash.exclude(pk=getattr(self.instance, "pk", None)).exists():
            raise serializers.ValidationError(
                f"The project already has a dashboard named {value!r}."
            )
        return value


class DashboardViewSet(ProjectChildViewSet):
    """Dashboards of the project: named groups of its charts. Editors write them; the page
    shows the charts' cached results to readers."""

    queryset = Dashboard.objects.select_related("project").prefetch_related("charts")
    serializer_class = DashboardSerializer
