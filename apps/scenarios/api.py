"""REST API for scenarios and their steps, the Run action, and the step-type catalogue.

Steps are a flat resource of the project (``/projects/{key}/steps/?scenario=<id>``) with a
required ``scenario`` field, rather than a nested route: the project base class scopes
them like every other resource, and a step can be moved between scenarios of the project.
"""

from __future__ import annotations

from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import transaction
from django.db.models import Max, Prefetch
from drf_spectacular.utils import (
    OpenApiParameter,
    PolymorphicProxySerializer,
    extend_schema,
    extend_schema_field,
    extend_schema_view,
)
from rest_framework import exceptions, serializers, status
from rest_framework.decorators import action, api_view
from rest_framework.response import Response

from apps.projects import permissions
from apps.projects.api import ProjectChildViewSet, raise_api_validation
from apps.runs.api import RunSerializer, RunSummarySerializer
from apps.runs.models import ACTIVE_STATUSES, Run
from apps.runs.services import run_start
from apps.scenarios.models import Scenario, Step
from apps.scenarios.services import UNCHANGED, scenario_run_as, scenario_touch
from apps.scenarios.steps import get_step_type, step_type_choices, validate_params
from apps.scenarios.steps.catalogue import params_serializers, step_type_catalogue
from apps.scenarios.validation import OUTCOMES, step_condition_errors, writes_script
from apps.system.parsers import JSONField


@extend_schema_field(
    PolymorphicProxySerializer(
        component_name="StepParams",
        serializers=lambda: list(params_serializers().values()),
        resource_type_field_name=None,
    )
)
class StepParamsField(JSONField):
    """The params of the step's ``type`` (see GET /api/v1/step-types/)."""


class ProjectScenarioField(serializers.PrimaryKeyRelatedField):
    """A scenario of the URL's project that the user can see."""

    def get_queryset(self):
        view, user = self.context["view"], self.context["request"].user
        scenarios = Scenario.objects.filter(project=view.get_project())
        return permissions.for_user(scenarios, user, "view")


class StepSerializer(serializers.ModelSerializer):
    scenario = ProjectScenarioField()
    type = serializers.ChoiceField(choices=step_type_choices())
    params = StepParamsField(required=False, help_text="Validated against the type's schema.")
    condition_outcomes = serializers.ListField(
        child=serializers.ChoiceField(choices=OUTCOMES), required=False
    )

    class Meta:
        model = Step
        fields = [
            "id", "scenario", "position", "name", "type", "params", "enabled", "run_condition",
            "condition_outcomes", "condition_expression", "retries", "retry_delay_seconds",
            "retry_backoff", "timeout_seconds", "warnings_as", "proceed_on_failure",
            "reset_failure_state",
        ]  # fmt: skip
        validators = []  # the unique name is checked in validate(), naming the field

    def _merged(self, data: dict, name: str):
        if name in data:
            return data[name]
        if self.instance is not None:
            return getattr(self.instance, name)
        return Step._meta.get_field(name).get_default()

    def validate(self, data):
        if self.instance is None or "type" in data or "params" in data:
            try:
                data["params"] = validate_params(
                    self._merged(data, "type"), self._merged(data, "params")
                )
            except DjangoValidationError as error:
                raise_api_validation(error)
        errors = step_condition_errors(
            self._merged(data, "run_condition"),
            self._merged(data, "condition_expression"),
            self._merged(data, "condition_outcomes"),
        )
        scenario, name = self._merged(data, "scenario"), self._merged(data, "name")
        clash = Step.objects.filter(scenario=scenario, name=name)
        if self.instance is not None:
            clash = clash.exclude(pk=self.instance.pk)
        if clash.exists():
            errors["name"] = f"The scenario already has a step named {name!r}."
        if errors:
            raise serializers.ValidationError(errors)
        return data


class ScenarioSerializer(serializers.ModelSerializer):
    tags = serializers.ListField(
        child=serializers.CharField(max_length=100), required=False, help_text="Strings."
    )
    updated_by = serializers.SlugRelatedField(slug_field="username", read_only=True)
    effective_run_as = serializers.SerializerMethodField(
        help_text="Who runs act as: run_as, or else the last editor."
    )
    steps = StepSerializer(many=True, read_only=True)
    last_run = serializers.SerializerMethodField()

    class Meta:
        model = Scenario
        fields = [
            "id", "name", "description", "tags", "kind", "script", "active", "run_as",
            "effective_run_as", "queue_policy", "max_parallel", "variables",
            "run_timeout_seconds", "created_at", "updated_at", "updated_by", "steps", "last_run",
        ]  # fmt: skip
        read_only_fields = ["created_at", "updated_at"]

    def get_effective_run_as(self, scenario) -> str | None:
        user = scenario.effective_run_as()
        return user.get_username() if user else None

    @extend_schema_field(RunSummarySerializer(allow_null=True))
    def get_last_run(self, scenario):
        if hasattr(scenario, "latest_runs"):
            latest = scenario.latest_runs[0] if scenario.latest_runs else None
        else:
            latest = scenario.runs.order_by("-id").first()
        return RunSummarySerializer(latest).data if latest else None

    def validate_name(self, value):
        clash = self.context["view"].get_project().scenarios.filter(name=value)
        if self.instance is not None:
            clash = clash.exclude(pk=self.instance.pk)
        if clash.exists():
            raise serializers.ValidationError("The project already has a scenario of this name.")
        return value

    def validate_variables(self, value):
        if not isinstance(value, dict):
            raise serializers.ValidationError("Scenario variables must be a JSON object.")
        return value

    def validate(self, data):
        user = self.context["request"].user
        current = self.instance.run_as if self.instance else None
        try:
            data["run_as"] = scenario_run_as(
                user=user, current=current, requested=data.get("run_as", UNCHANGED)
            )
        except DjangoValidationError as error:
            raise_api_validation(error)
        data["updated_by"] = user
        return data


class RunRequestSerializer(serializers.Serializer):
    params = serializers.DictField(required=False, default=dict, help_text="Trigger params.")


class RunRefusedSerializer(serializers.Serializer):
    detail = serializers.CharField()
    reason = serializers.CharField(help_text="Why the queue policy refused the run.")
    active_run = serializers.IntegerField(allow_null=True, help_text="The active run's id.")


class ScenarioBusy(exceptions.APIException):
    status_code = status.HTTP_409_CONFLICT
    default_detail = "The scenario has active runs; abort them before deleting it."
    default_code = "active_runs"


class ScenarioViewSet(ProjectChildViewSet):
    """Scenarios of the project. Editors write them (scripts need the coder profile);
    operators run them."""

    queryset = Scenario.objects.select_related("project", "run_as", "updated_by").prefetch_related(
        "steps", Prefetch("runs", queryset=Run.objects.order_by("-id")[:1], to_attr="latest_runs")
    )
    serializer_class = ScenarioSerializer

    def _require_code(self, serializer) -> None:
        scenario = serializer.instance or self.creation_probe()
        if writes_script(serializer.instance, serializer.validated_data):
            if not permissions.can(self.request.user, "code", scenario):
                raise exceptions.PermissionDenied(
                    "Writing a scenario script needs the coder profile and the editor role."
                )

    def perform_create(self, serializer):
        self._require_code(serializer)
        super().perform_create(serializer)

    def perform_update(self, serializer):
        self._require_code(serializer)
        super().perform_update(serializer)

    def perform_destroy(self, instance):
        # Deleting would pull the run out from under its runner.
        if instance.runs.filter(status__in=ACTIVE_STATUSES).exists():
            raise ScenarioBusy()
        instance.delete()

    @extend_schema(
        request=RunRequestSerializer,
        responses={201: RunSerializer, 409: RunRefusedSerializer},
        summary="Start a run",
    )
    @action(detail=True, methods=["post"], required_action="run")
    def run(self, request, project_key=None, pk=None):
        """Start a run now (operators); 409 when the queue policy refuses it."""
        scenario = self.get_object()
        body = RunRequestSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        started = run_start(
            scenario=scenario,
            user=request.user,
            trigger_kind="api",
            trigger_name=request.user.get_username(),
            trigger_params=body.validated_data["params"],
        )
        if started.run is None:
            refused = {
                "detail": f"Not started: {started.reason}.",
                "reason": started.reason,
                "active_run": started.active.pk if started.active else None,
            }
            return Response(refused, status=status.HTTP_409_CONFLICT)
        return Response(RunSerializer(started.run).data, status=status.HTTP_201_CREATED)


@extend_schema_view(
    list=extend_schema(
        parameters=[OpenApiParameter("scenario", int, description="Only this scenario's steps.")]
    )
)
class ScenarioChildViewSet(ProjectChildViewSet):
    """Objects that belong to one of the project's scenarios (steps, triggers, reporters);
    ``?scenario=<id>`` narrows the list."""

    def get_queryset(self):
        rows = super().get_queryset()
        scenario = self.request.query_params.get("scenario")
        if self.action == "list" and scenario is not None:
            if not scenario.isdigit():
                raise exceptions.ValidationError({"scenario": "A scenario id."})
            rows = rows.filter(scenario_id=int(scenario))
        return rows

    def creation_probe(self):
        return self.queryset.model(scenario=Scenario(project=self.get_project()))


class StepViewSet(ScenarioChildViewSet):
    """Steps of the project's scenarios. Editors write them; Python, SQL and shell steps
    need the coder profile."""

    queryset = Step.objects.select_related("scenario")
    serializer_class = StepSerializer

    def _require_code(self, serializer) -> None:
        types = {serializer.validated_data.get("type"), getattr(serializer.instance, "type", None)}
        step = serializer.instance or Step(scenario=serializer.validated_data["scenario"])
        if any(get_step_type(key).needs_code for key in types if key):
            if not permissions.can(self.request.user, "code", step):
                raise exceptions.PermissionDenied(
                    "Writing a code step needs the coder profile and the editor role."
                )

    def _save(self, serializer, **extra) -> Step:
        user = self.request.user
        self._require_code(serializer)
        previous = serializer.instance.scenario if serializer.instance else None
        with transaction.atomic():
            step = serializer.save(**extra)
            if not permissions.can(user, "change", step):
                raise exceptions.PermissionDenied()
            for scenario in {step.scenario, previous} - {None}:
                scenario_touch(scenario, user=user)
        return step

    def perform_create(self, serializer):
        extra = {}
        if "position" not in serializer.validated_data:
            scenario = serializer.validated_data["scenario"]
            last = scenario.steps.aggregate(last=Max("position"))["last"]
            extra["position"] = 0 if last is None else last + 1
        self._save(serializer, **extra)

    def perform_update(self, serializer):
        self._save(serializer)

    def perform_destroy(self, instance):
        with transaction.atomic():
            scenario_touch(instance.scenario, user=self.request.user)
            instance.delete()


class StepTypeSerializer(serializers.Serializer):
    key = serializers.CharField()
    label = serializers.CharField()
    needs_code = serializers.BooleanField(help_text="Writing it needs the coder profile.")
    params = serializers.ListField(child=serializers.DictField(), help_text="Params fields.")


@extend_schema(responses=StepTypeSerializer(many=True), summary="The step types")
@api_view(["GET"])
def step_types_view(request):
    """Every step type: its key, label, whether it is code, and its params fields (name,
    type, required, default, help text). The same schemas appear as ``StepParams``."""
    return Response(StepTypeSerializer(step_type_catalogue(), many=True).data)
