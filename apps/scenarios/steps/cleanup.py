from __future__ import annotations

from datetime import timedelta

from django.db.models import Window
from django.db.models.functions import RowNumber
from django.utils import timezone
from rest_framework import serializers

from apps.scenarios.steps.base import StepResult, StepType


class CleanRunLogs(StepType):
    """Delete finished runs (with their steps and logs) of the project beyond retention."""

    key = "clean_run_logs"
    label = "Clean old run logs"

    class Params(serializers.Serializer):
        keep_days = serializers.IntegerField(required=False, min_value=0, allow_null=True)
        keep_runs = serializers.IntegerField(
            required=False, min_value=1, allow_null=True, help_text="Per scenario."
        )

        def validate(self, data):
            if data.get("keep_days") is None and data.get("keep_runs") is None:
                raise serializers.ValidationError("Set keep_days, keep_runs or both.")
            return data

    def run(self, ctx, params):
        from apps.runs.models import FINAL_STATUSES, Run

        ctx.require("change", ctx.project)
        finished = Run.objects.filter(project=ctx.project, status__in=FINAL_STATUSES)
        doomed = set()
        if params.get("keep_days") is not None:
            cutoff = timezone.now() - timedelta(days=params["keep_days"])
            doomed |= set(finished.filter(queued_at__lt=cutoff).values_list("pk", flat=True))
        if params.get("keep_runs") is not None:
            ranked = finished.annotate(
                rank=Window(RowNumber(), partition_by="scenario_id", order_by="-number")
            ).values_list("pk", "rank")
            doomed |= {pk for pk, rank in ranked if rank > params["keep_runs"]}
        doomed.discard(ctx.run.pk)
        deleted = Run.objects.filter(pk__in=doomed).delete()[0] if doomed else 0
        ctx.log(f"Deleted {len(doomed)} old run(s) ({deleted} rows with their steps and logs)")
        return StepResult(output={"runs_deleted": len(doomed)})
