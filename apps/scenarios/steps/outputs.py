"""Steps that refresh what people look at: chart caches and documentation exports."""

from __future__ import annotations

from rest_framework import serializers

from apps.scenarios.steps.base import StepError, StepResult, StepType
from apps.scenarios.steps.flow import require_connection


class RefreshCharts(StepType):
    key = "refresh_charts"
    label = "Refresh chart caches"

    class Params(serializers.Serializer):
        charts = serializers.ListField(
            child=serializers.CharField(),
            default=list,
            help_text="Chart names; empty: every chart of the project.",
        )

    def run(self, ctx, params):
        from apps.dashboards.models import Chart
        from apps.dashboards.services import chart_refresh
        from apps.flow.storage import FlowError

        charts = Chart.objects.filter(project=ctx.project).select_related("dataset__connection")
        if params["charts"]:
            charts = charts.filter(name__in=params["charts"])
            missing = set(params["charts"]) - {c.name for c in charts}
            if missing:
                raise StepError(f"No chart {', '.join(sorted(missing))} in {ctx.project.key}.")
        refreshed = {}
        for chart in charts:
            ctx.require("change", chart)
            require_connection(ctx, chart.dataset)
            try:
                refreshed[chart.name] = len(chart_refresh(chart)["labels"])
            except FlowError as error:
                raise StepError(str(error)) from None
            ctx.log(f"Chart {chart.name}: {refreshed[chart.name]} groups")
        return StepResult(output={"charts": refreshed})


class ExportFlowDocs(StepType):
    key = "export_flow_docs"
    label = "Export flow documentation"

    def run(self, ctx, params):
        from apps.flow.documentation import flow_docs_export

        ctx.require("change", ctx.project.datasets.model(project=ctx.project))
        files = [path.name for path in flow_docs_export(ctx.project)]
        ctx.log(f"Wrote {', '.join(files)}")
        return StepResult(output={"files": files})


class ExportModelDocs(StepType):
    key = "export_model_docs"
    label = "Export model documentation"

    class Params(serializers.Serializer):
        model = serializers.CharField()

    def run(self, ctx, params):
        from apps.flow.documentation import model_docs_export
        from apps.scenarios.steps.models import _model

        files = [path.name for path in model_docs_export(_model(ctx, params["model"]))]
        ctx.log(f"Wrote {', '.join(files)}")
        return StepResult(output={"files": files})
