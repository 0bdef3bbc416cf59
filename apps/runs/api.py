"""REST API for runs: history with filters, step runs, abort, and the stored log by ``?after=``."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.decorators import action
from rest_framework.exceptions import NotFound
from rest_framework.pagination import CursorPagination
from rest_framework.renderers import BrowsableAPIRenderer
from rest_framework.response import Response

from apps.projects import permissions
from apps.projects.api import ProjectChildReadOnlyViewSet
from apps.runs.history import run_history_page
from apps.runs.models import LogLine, Run, RunStatus, StepRun
from apps.runs.services import run_abort
from apps.system.renderers import FastJSONRenderer

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


class RunPage:
    """The runs a list page shows, through the three calls DRF's CursorPagination makes on a
    queryset: ``order_by`` the ordering or its reverse, ``filter`` past the cursor's position,
    and a slice (the offset, one row more than the page). So the cursors, offsets, reverse
    pages and links stay DRF's own (tests/runs/test_api_rows.py pins them to the ORM's)."""

    def __init__(self, project_id: int, filters: dict, descending=True, beyond=None):
        self.project_id, self.filters = project_id, filters
        self.descending, self.beyond = descending, beyond

    def order_by(self, *ordering: str) -> RunPage:
        if ordering not in (("-id",), ("id",)):
            raise ValueError(f"The run list orders by id, not {ordering}.")
        return RunPage(self.project_id, self.filters, ordering == ("-id",), self.beyond)

    def filter(self, **lookup) -> RunPage:
        ((name, position),) = lookup.items()
        if name != ("id__lt" if self.descending else "id__gt"):
            raise ValueError(f"The run list pages by id, not by {name}.")
        try:  # the cursor's text, as the client sent it
            beyond = int(position)
        except (TypeError, ValueError):
            raise NotFound(RunCursorPagination.invalid_cursor_message) from None
        if not -(2**63) <= beyond < 2**63:
            raise NotFound(RunCursorPagination.invalid_cursor_message)
        return RunPage(self.project_id, self.filters, self.descending, beyond)

    def __getitem__(self, window: slice) -> list[dict]:
        offset = window.start or 0
        return run_history_page(
            self.project_id, self.filters, descending=self.descending, beyond=self.beyond,
            offset=offset, limit=window.stop - offset,
        )  # fmt: skip


class RunViewSet(ProjectChildReadOnlyViewSet):
    """Runs of the project's scenarios, newest first. Readers see them and their logs;
    operators may abort them.

    The list pages by cursor: follow ``next`` (older runs) and ``previous`` (newer runs);
    there is no total count."""

    queryset = Run.objects.select_related("scenario", "started_by", "run_as")
    serializer_class = RunSerializer
    pagination_class = RunCursorPagination
    renderer_classes = [FastJSONRenderer, BrowsableAPIRenderer]

    def get_serializer_class(self):
        return RunDetailSerializer if self.action == "retrieve" else RunSerializer

    def get_queryset(self):
        runs = super().get_queryset().order_by("-id")
        return runs.prefetch_related("step_runs") if self.action == "retrieve" else runs

    @extend_schema(parameters=[RunFilterSerializer])
    def list(self, request, *args, **kwargs):
        # The busiest read of the API: its page query is written once (apps/runs/history.py),
        # and DRF's paginator drives it as it would drive a queryset.
        project = self.get_project()  # first: an outsider learns nothing from a 400
        query = RunFilterSerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        runs = RunPage(permissions.viewable_rows_of(request.user, project), query.validated_data)
        return self.get_paginated_response(self.paginate_queryset(runs))

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
