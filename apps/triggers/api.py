"""REST API for triggers: the project resource (written through trigger_save), the Test now
action, the evaluation history ("why did or didn't it run") and the kinds catalogue.

Like steps and reporters, triggers are a flat resource of the project
(``/projects/{key}/triggers/?scenario=<id>``) with a required ``scenario`` field.
"""

from __future__ import annotations

from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import transaction
from django.utils import timezone
from drf_spectacular.utils import (
    OpenApiParameter,
    PolymorphicProxySerializer,
    extend_schema,
    extend_schema_field,
    extend_schema_view,
)
from rest_framework import exceptions, serializers
from rest_framework.decorators import action, api_view
from rest_framework.response import Response

from apps.projects import permissions
from apps.projects.api import raise_api_validation
from apps.scenarios.api import ProjectScenarioField, ScenarioChildViewSet
from apps.system.parsers import JSONField
from apps.triggers.kinds import TRIGGER_KINDS
from apps.triggers.models import Trigger, TriggerEvaluation
from apps.triggers.selectors import (
    kind_catalogue,
    params_serializers,
    trigger_evaluations,
    trigger_schedule,
    writes_code,
)
from apps.triggers.services import trigger_evaluate, trigger_save, trigger_validate

CODE_REFUSED = "A custom Python trigger needs the coder profile and the editor role."


@extend_schema_field({"type": "string", "enum": list(TRIGGER_KINDS)})
class KindField(serializers.CharField):
    """A trigger kind's key (see GET /api/v1/trigger-kinds/); checked by trigger_validate."""


@extend_schema_field(
    PolymorphicProxySerializer(
        component_name="TriggerParams",
        serializers=lambda: list(params_serializers().values()),
        resource_type_field_name=None,
    )
)
class TriggerParamsField(JSONField):
    """The params of the trigger's ``kind`` (see GET /api/v1/trigger-kinds/)."""


class ScheduleSerializer(serializers.Serializer):
    crontab = serializers.CharField(
        allow_null=True, help_text="minute hour day-of-month month day-of-week"
    )
    timezone = serializers.CharField(allow_null=True)
    every_minutes = serializers.IntegerField(allow_null=True)


class TriggerSerializer(serializers.ModelSerializer):
    scenario = ProjectScenarioField()
    kind = KindField(max_length=20)
    params = TriggerParamsField(required=False, help_text="Validated against the kind's schema.")
    schedule = serializers.SerializerMethodField(
        help_text="Beat's schedule row of a time trigger (null for other kinds)."
    )

    class Meta:
        model = Trigger
        fields = [
            "id", "scenario", "name", "kind", "enabled", "params", "check_interval_seconds",
            "grace_seconds", "catch_up", "schedule", "next_fire_at", "next_check_at",
            "last_fired_at", "suspended_reason", "updated_at",
        ]  # fmt: skip
        read_only_fields = [
            "next_fire_at", "next_check_at", "last_fired_at", "suspended_reason", "updated_at",
        ]  # fmt: skip
        extra_kwargs = {"check_interval_seconds": {"min_value": 1}}
        validators = []  # the unique name is checked in validate(), naming the field

    @extend_schema_field(ScheduleSerializer(allow_null=True))
    def get_schedule(self, trigger):
        return trigger_schedule(trigger)

    def _merged(self, data: dict, name: str):
        if name in data:
            return data[name]
        if self.instance is not None:
            return getattr(self.instance, name)
        return Trigger._meta.get_field(name).get_default()

    def validate(self, data):
        if self.instance is None or "kind" in data or "params" in data:
            try:
                data["params"] = trigger_validate(
                    self._merged(data, "kind"), self._merged(data, "params")
                )
            except DjangoValidationError as error:
                raise_api_validation(error)
        scenario, name = self._merged(data, "scenario"), self._merged(data, "name")
        clash = Trigger.objects.filter(scenario=scenario, name=name)
        if self.instance is not None:
            clash = clash.exclude(pk=self.instance.pk)
        if clash.exists():
            message = f"The scenario already has a trigger named {name!r}."
            raise serializers.ValidationError({"name": message})
        return data


class TriggerEvaluationSerializer(serializers.ModelSerializer):
    class Meta:
        model = TriggerEvaluation
        fields = ["id", "at", "result", "message", "run"]


class TriggerTestSerializer(serializers.Serializer):
    result = serializers.ChoiceField(TriggerEvaluation.Result.choices)
    message = serializers.CharField(allow_blank=True)
    would_fire = serializers.BooleanField(help_text="Whether a real check would start a run.")
    recorded = serializers.BooleanField(
        help_text="Whether it was kept in the history (errors and license suspensions are)."
    )
    next_fire_at = serializers.DateTimeField(allow_null=True)


@extend_schema_view(
    list=extend_schema(
        parameters=[OpenApiParameter("scenario", int, description="Only this scenario's.")]
    )
)
class TriggerViewSet(ScenarioChildViewSet):
    """Triggers of the project's scenarios. Editors write them (gated kinds need the license
    and profile; custom Python needs the coder profile); operators test them."""

    queryset = Trigger.objects.select_related("scenario", "crontab", "interval")
    serializer_class = TriggerSerializer

    def _save(self, serializer) -> None:
        user, before = self.request.user, serializer.instance
        trigger = before or Trigger()
        kinds = (getattr(before, "kind", None), serializer.validated_data.get("kind"))
        for name, value in serializer.validated_data.items():
            setattr(trigger, name, value)
        if writes_code(*kinds) and not permissions.can(user, "code", trigger):
            raise exceptions.PermissionDenied(CODE_REFUSED)
        try:
            with transaction.atomic():
                trigger_save(trigger, user=user)
                if not permissions.can(user, "change", trigger):
                    raise exceptions.PermissionDenied()
        except DjangoValidationError as error:
            raise_api_validation(error)
        except DjangoPermissionDenied as error:
            raise exceptions.PermissionDenied(str(error)) from None
        serializer.instance = trigger

    def perform_create(self, serializer):
        self._save(serializer)

    def perform_update(self, serializer):
        self._save(serializer)

    @extend_schema(request=None, responses=TriggerTestSerializer, summary="Test now")
    @action(detail=True, methods=["post"], required_action="run")
    def test(self, request, project_key=None, pk=None):
        """Evaluate the trigger now without firing (operators): what a check would find."""
        trigger = self.get_object()
        evaluation = trigger_evaluate(trigger, timezone.now(), fire=False)
        trigger.refresh_from_db(fields=["next_fire_at", "suspended_reason"])
        result = {
            "result": evaluation.result,
            "message": evaluation.message,
            "would_fire": evaluation.result == TriggerEvaluation.Result.FIRED,
            "recorded": evaluation.pk is not None,
            "next_fire_at": trigger.next_fire_at,
        }
        return Response(TriggerTestSerializer(result).data)

    @extend_schema(responses=TriggerEvaluationSerializer(many=True), summary="Evaluations")
    @action(detail=True, methods=["get"], serializer_class=TriggerEvaluationSerializer)
    def evaluations(self, request, project_key=None, pk=None):
        """Why the trigger did or did not start a run: its evaluations, newest first."""
        page = self.paginate_queryset(trigger_evaluations(self.get_object()))
        return self.get_paginated_response(TriggerEvaluationSerializer(page, many=True).data)


class TriggerKindSerializer(serializers.Serializer):
    key = serializers.CharField()
    label = serializers.CharField()
    feature = serializers.CharField(help_text="The license feature it needs.")
    profile = serializers.CharField(help_text="The user profile it needs.")
    polled = serializers.BooleanField(help_text="Checked every check interval.")
    params = serializers.ListField(child=serializers.DictField(), help_text="Params fields.")
    available = serializers.BooleanField(help_text="Whether you may use it here.")
    reason = serializers.CharField(allow_blank=True, help_text="Why not, if not.")


@extend_schema(responses=TriggerKindSerializer(many=True), summary="The trigger kinds")
@api_view(["GET"])
def trigger_kinds_view(request):
    """Every trigger kind, with its params fields and whether you may use it on this
    installation (license edition, your profile); unavailable kinds say why."""
    return Response(TriggerKindSerializer(kind_catalogue(request.user), many=True).data)
