"""REST API for runs: history with filters, step runs, abort, and the stored log by ``?after=``."""

from __future__ import annotations

from django.utils import timezone
from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.decorators import action
from rest_framework.pagination import CursorPagination
from rest_framework.response import Response

from apps.projects.api import ProjectChildReadOnlyViewSet
from apps.runs.models import LogLine, Run, RunStatus, StepRun
from apps.runs.services import run_abort

MAX_LOG_LIMIT = 5000


class RunSummarySerializer(serializers.ModelSerializer):
    class Meta:
        model = Run
        fields = ["id", "number", "status", "trigger_kind", "queued_at", "started_at",
                  "finished_at"]  # fmt: skip
        read_only_fields = fields


class RunSerializer(serializers.ModelSerializer):
    scenario_name = serializers.CharField(source="scenario.name", read_only=True)
    started_by = serializers.SlugRelatedField(slug_field="username", read_only=True)
    run_as = serializers.SlugRelatedField(slug_field="username", read_only=True)
    duration_seconds = serializers.FloatField(read_only=True, allow_null=True)

    class Meta:
        model = Run
        fields = [
            "id", "number", "scenario", "scenario_name", "status", "trigger_kind",
            "trigger_name", "trigger_params", "started_by", "run_as", "parent_run",
            "queued_at", "started_at", "finished_at", "duration_seconds",
            "abort_requested_at", "outcome_message",
        ]  # fmt: skip
        read_only_fields = fields


class StepRunSerializer(serializers.ModelSerializer):
    class Meta:
        model = StepRun
        fields = ["id", "position", "name", "type", "attempt", "status", "started_at",
                  "finished_at", "output", "message", "error"]  # fmt: skip
        read_only_fields = fields


# The columns the list reads for RunSerializer (with the related rows' names only).
LIST_FIELDS = [
    "id", "number", "project", "scenario", "scenario__name", "status", "trigger_kind",
    "trigger_name", "trigger_params", "started_by__username", "run_as__username",
    "parent_run", "queued_at", "started_at", "finished_at", "abort_requested_at",
    "outcome_message",
]  # fmt: skip


TIMES = ("queued_at", "started_at", "finished_at", "abort_requested_at")


def run_row(row: dict, tz=None) -> dict:
    """One ``values(*LIST_FIELDS)`` row as RunSerializer renders the run. ``tz``: the current
    time zone, looked up once per page by the caller (DRF's field looks it up per value)."""
    tz = tz or timezone.get_current_timezone()
    started, finished = row["started_at"], row["finished_at"]
    return {
        **{name: row[name] for name in ("id", "number", "scenario")},
        "scenario_name": row["scenario__name"],
        **{name: row[name] for name in ("status", "trigger_kind", "trigger_name")},
        "trigger_params": row["trigger_params"],
        "started_by": row["started_by__username"],
        "run_as": row["run_as__username"],
        "parent_run": row["parent_run"],
        **{name: row[name] and _iso(row[name], tz) for name in TIMES},
        "duration_seconds": (finished - started).total_seconds() if started and finished else None,
        "outcome_message": row["outcome_message"],
    }


def _iso(value, tz) -> str:
    """DRF's DateTimeField rendering (ISO 8601 in the current time zone, "Z" for UTC)."""
    text = value.astimezone(tz).isoformat()
    return text[:-6] + "Z" if text.endswith("+00:00") else text


class RunDetailSerializer(RunSerializer):
    step_runs = StepRunSerializer(many=True, read_only=True)

    class Meta(RunSerializer.Meta):
        fields = [*RunSerializer.Meta.fields, "variables", "definition", "step_runs"]
        read_only_fields = fields


class RunFilterSerializer(serializers.Serializer):
    scenario = serializers.IntegerField(required=False, min_value=1, help_text="Scenario id.")
    status = serializers.ChoiceField(choices=RunStatus.choices, required=False)
    since = serializers.DateTimeField(required=False, help_text="Queued at or after.")
    until = serializers.DateTimeField(required=False, help_text="Queued before.")


class LogQuerySerializer(serializers.Serializer):
    after = serializers.IntegerField(default=0, min_value=0, help_text="Lines with seq > after.")
    limit = serializers.IntegerField(default=1000, min_value=1, max_value=MAX_LOG_LIMIT)


class LogLineSerializer(serializers.Serializer):
    seq = serializers.IntegerField()
    ts = serializers.DateTimeField()
    level = serializers.CharField()
    step_run = serializers.IntegerField(allow_null=True)
    message = serializers.CharField()


class LogPageSerializer(serializers.Serializer):
    lines = LogLineSerializer(many=True)
    next_after = serializers.IntegerField(help_text="Pass as ?after= to get the next lines.")
    has_more = serializers.BooleanField(help_text="More lines are stored after these.")
    run_status = serializers.ChoiceField(choices=RunStatus.choices)


class RunCursorPagination(CursorPagination):
    """Newest first, 50 a page, through the ``next`` / ``previous`` links.

    A run history grows without bound: a page number would need a COUNT(*) of every
    matching run and an OFFSET that reads all the pages before it (both O(runs); ~60-100 ms
    at 1M runs). The cursor is the last id seen, so any page is one index range scan.
    """

    ordering = "-id"
    page_size_query_param = None


class RunViewSet(ProjectChildReadOnlyViewSet):
    """Runs of the project's scenarios, newest first. Readers see them and their logs;
    operators may abort them.

    The list pages by cursor: follow ``next`` (older runs) and ``previous`` (newer runs);
    there is no total count."""

    queryset = Run.objects.select_related("scenario", "started_by", "run_as")
    serializer_class = RunSerializer
    pagination_class = RunCursorPagination

    def get_serializer_class(self):
        return RunDetailSerializer if self.action == "retrieve" else RunSerializer

    def get_queryset(self):
        runs = super().get_queryset().order_by("-id")
        if self.action == "retrieve":
            runs = runs.prefetch_related("step_runs")
        if self.action != "list":
            return runs
        # What RunSerializer shows and nothing more: not the snapshot (the steps with their
        # code) nor the variables, and of the related rows only their names.
        runs = runs.values(*LIST_FIELDS)
        query = RunFilterSerializer(data=self.request.query_params)
        query.is_valid(raise_exception=True)
        filters = query.validated_data
        lookups = {
            "scenario": "scenario_id",
            "status": "status",
            "since": "queued_at__gte",
            "until": "queued_at__lt",
        }
        return runs.filter(**{lookups[name]: value for name, value in filters.items()})

    @extend_schema(parameters=[RunFilterSerializer])
    def list(self, request, *args, **kwargs):
        # The busiest read of the API: rows go straight to RunSerializer's shape (the same
        # output, tested) without a model instance and a serializer field per value.
        page = self.paginate_queryset(self.get_queryset())
        tz = timezone.get_current_timezone()
        return self.get_paginated_response([run_row(row, tz) for row in page])

    @extend_schema(request=None, responses={202: RunSerializer}, summary="Abort a run")
    @action(detail=True, methods=["post"], required_action="run")
    def abort(self, request, project_key=None, pk=None):
        """Queued runs end at once; running ones stop at the next step boundary (or their
        child process is killed)."""
        run = run_abort(self.get_object(), user=request.user)
        return Response(RunSerializer(run).data, status=status.HTTP_202_ACCEPTED)

    @extend_schema(
        parameters=[LogQuerySerializer], responses=LogPageSerializer, summary="Stored log lines"
    )
    @action(detail=True, methods=["get"])
    def logs(self, request, project_key=None, pk=None):
        """The run's log lines with ``seq > after``, in order; poll with ``next_after``."""
        run = self.get_object()
        query = LogQuerySerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        after, limit = query.validated_data["after"], query.validated_data["limit"]
        lines = list(LogLine.objects.filter(run=run, seq__gt=after).order_by("seq")[: limit + 1])
        page = [line.as_message() for line in lines[:limit]]
        payload = {
            "lines": page,
            "next_after": page[-1]["seq"] if page else after,
            "has_more": len(lines) > limit,
            "run_status": run.status,
        }
        return Response(LogPageSerializer(payload).data)
