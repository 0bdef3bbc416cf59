"""REST API for messaging channels (superusers write them), reporters of the project's
scenarios with a preview, and the deliveries of a run.

Channel secrets are write-only: a response says which are set (``secrets_set``), never what
they are.
"""

from __future__ import annotations

from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import transaction
from django.db.models import ProtectedError
from django.shortcuts import get_object_or_404
from drf_spectacular.utils import (
    OpenApiParameter,
    PolymorphicProxySerializer,
    extend_schema,
    extend_schema_view,
)
from rest_framework import exceptions, serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.permissions import SAFE_METHODS
from rest_framework.response import Response

from apps.projects import permissions
from apps.projects.api import (
    ProjectChildReadOnlyViewSet,
    raise_api_validation,
)
from apps.reporters.models import Delivery, MessagingChannel, Reporter
from apps.reporters.selectors import (
    channel_choices,
    channels_usable_by,
    secret_keys,
    test_recipients,
)
from apps.reporters.services import channel_test_send, reporter_preview
from apps.reporters.transports import kind_choices
from apps.reporters.validation import channel_clean, reporter_errors, writes_code
from apps.runs.models import Run
from apps.scenarios.api import ProjectScenarioField, ScenarioChildViewSet
from apps.system.parsers import JSONField

CODE_REFUSED = "A reporter that runs a command needs the coder profile and the editor role."


class DeliverySerializer(serializers.ModelSerializer):
    channel_name = serializers.CharField(source="channel.name", read_only=True)

    class Meta:
        model = Delivery
        fields = [
            "id", "event", "channel", "channel_name", "reporter", "run", "status", "attempts",
            "response_code", "error", "recipients", "subject", "created_at", "sent_at",
        ]  # fmt: skip
        read_only_fields = fields


# --- channels ------------------------------------------------------------------------------


class ChannelSerializer(serializers.ModelSerializer):
    """What every user sees of a channel they may use."""

    usable = serializers.SerializerMethodField(help_text="You may use it in reporters.")

    class Meta:
        model = MessagingChannel
        fields = ["id", "name", "kind", "usable"]
        read_only_fields = fields

    def get_usable(self, channel) -> bool:
        return channel.usable_by(self.context["request"].user)


class ChannelAdminSerializer(ChannelSerializer):
    """A channel as superusers write it; ``secrets`` are write-only."""

    kind = serializers.ChoiceField(choices=kind_choices())
    secrets = JSONField(
        write_only=True,
        required=False,
        help_text="A JSON object, validated per kind. Omit it to keep the stored secrets; "
        "given, it replaces them all. Never returned.",
    )
    secrets_set = serializers.SerializerMethodField(help_text="The secrets that hold a value.")

    class Meta:
        model = MessagingChannel
        fields = ["id", "name", "kind", "usable", "config", "secrets", "secrets_set",
                  "allowed_groups", "created_at"]  # fmt: skip
        read_only_fields = ["created_at"]

    def get_secrets_set(self, channel) -> list[str]:
        return secret_keys(channel)

    def validate(self, data):
        instance = self.instance
        try:
            config, secrets = channel_clean(
                kind=data.get("kind", getattr(instance, "kind", None)),
                config=data.get("config", getattr(instance, "config", {})),
                secrets=data.pop("secrets", None),
                instance=instance,
            )
        except DjangoValidationError as error:
            raise_api_validation(error)
        data["config"] = config
        if secrets is not None:
            data["secrets"] = secrets  # the model's property encrypts it
        return data


class ChannelTestSerializer(serializers.Serializer):
    recipients = serializers.ListField(
        child=serializers.CharField(max_length=254),
        required=False,
        max_length=50,
        help_text="Default: the channel's config test_recipients. Superusers only: others "
        "test a channel they may use with its test recipients.",
    )


class ChannelInUse(exceptions.APIException):
    status_code = status.HTTP_409_CONFLICT
    default_detail = "Reporters use this channel; point them elsewhere before deleting it."
    default_code = "channel_in_use"


def any_channel(many: bool = False) -> PolymorphicProxySerializer:
    """What a user sees of a channel: superusers all of it, others the summary."""
    return PolymorphicProxySerializer(
        component_name="AnyChannel",
        serializers=[ChannelSerializer, ChannelAdminSerializer],
        resource_type_field_name=None,
        many=many,
    )


@extend_schema_view(
    list=extend_schema(responses=any_channel(many=True)),
    retrieve=extend_schema(responses=any_channel()),
    create=extend_schema(request=ChannelAdminSerializer, responses={201: ChannelAdminSerializer}),
    update=extend_schema(request=ChannelAdminSerializer, responses=ChannelAdminSerializer),
    partial_update=extend_schema(request=ChannelAdminSerializer, responses=ChannelAdminSerializer),
)
class ChannelViewSet(viewsets.ModelViewSet):
    """Messaging channels. Everyone lists the channels they may use; superusers see and
    write all of them, with their config and secrets."""

    serializer_class = ChannelSerializer
    lookup_value_regex = r"[0-9]+"

    def get_queryset(self):
        return channels_usable_by(self.request.user)

    def get_serializer_class(self):
        return ChannelAdminSerializer if self.request.user.is_superuser else ChannelSerializer

    def check_permissions(self, request):
        super().check_permissions(request)
        writes = request.method not in SAFE_METHODS and self.action != "test"
        if writes and not request.user.is_superuser:
            raise exceptions.PermissionDenied("Only superusers manage messaging channels.")

    def perform_destroy(self, instance):
        try:
            instance.delete()
        except ProtectedError:
            raise ChannelInUse() from None

    @extend_schema(
        request=ChannelTestSerializer, responses=DeliverySerializer, summary="Send a test message"
    )
    @action(detail=True, methods=["post"])
    def test(self, request, pk=None):
        """Send a test message now; the answer is the delivery, sent or failed with why."""
        channel = self.get_object()
        body = ChannelTestSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        chosen = body.validated_data.get("recipients")
        if chosen and not request.user.is_superuser:
            # Anyone may check that a channel works; choosing whom it writes to (any address,
            # any phone number, up to 50 of them) is the administrator's.
            raise exceptions.PermissionDenied(
                "Only superusers choose the recipients of a test message; without recipients "
                "it goes to the channel's test recipients."
            )
        recipients = chosen or test_recipients(channel)
        delivery = channel_test_send(channel, recipients=recipients, user=request.user)
        return Response(DeliverySerializer(delivery).data)


# --- reporters -----------------------------------------------------------------------------


class UsableChannelField(serializers.PrimaryKeyRelatedField):
    """A channel the requesting user may use (or the reporter's current one)."""

    default_error_messages = {"does_not_exist": "No channel you may use has id {pk_value}."}

    def get_queryset(self):
        reporter = self.parent.instance
        current = reporter.channel if isinstance(reporter, Reporter) else None
        return channel_choices(self.context["request"].user, current)


class RecipientsField(serializers.ListField):
    """Stored comma-separated; a list of addresses (or numbers) in the API."""

    child = serializers.CharField(max_length=254)

    def to_representation(self, value):
        return [item.strip() for item in (value or "").split(",") if item.strip()]

    def to_internal_value(self, data):
        items = super().to_internal_value(data)
        if any("," in item for item in items):
            raise serializers.ValidationError("One recipient per item, without commas.")
        return ", ".join(items)


class ReporterSerializer(serializers.ModelSerializer):
    scenario = ProjectScenarioField()
    channel = UsableChannelField()
    recipients = RecipientsField(required=False)

    class Meta:
        model = Reporter
        fields = ["id", "scenario", "name", "enabled", "channel", "when", "condition",
                  "recipients", "subject", "body"]  # fmt: skip
        validators = []  # the unique name is checked in validate(), naming the field

    def _merged(self, data: dict, name: str):
        if name in data:
            return data[name]
        if self.instance is not None:
            return getattr(self.instance, name)
        return Reporter._meta.get_field(name).get_default()

    def validate(self, data):
        recipients = self._merged(data, "recipients")
        errors = reporter_errors(
            channel=self._merged(data, "channel"),
            condition=self._merged(data, "condition"),
            recipients=[item for item in recipients.split(",") if item.strip()],
            templates={name: self._merged(data, name) for name in ("subject", "body")},
        )
        scenario, name = self._merged(data, "scenario"), self._merged(data, "name")
        clash = Reporter.objects.filter(scenario=scenario, name=name)
        if self.instance is not None:
            clash = clash.exclude(pk=self.instance.pk)
        if clash.exists():
            errors["name"] = f"The scenario already has a reporter named {name!r}."
        if errors:
            raise serializers.ValidationError(errors)
        return data


class PreviewRequestSerializer(serializers.Serializer):
    run = serializers.IntegerField(min_value=1, help_text="A run of the reporter's scenario.")


class PreviewSerializer(serializers.Serializer):
    run = serializers.IntegerField()
    subject = serializers.CharField()
    body = serializers.CharField()
    recipients = serializers.ListField(child=serializers.CharField())
    would_send = serializers.BooleanField(help_text="Whether the condition holds for the run.")
    condition_error = serializers.CharField(allow_null=True)


@extend_schema_view(
    list=extend_schema(
        parameters=[OpenApiParameter("scenario", int, description="Only this scenario's.")]
    )
)
class ReporterViewSet(ScenarioChildViewSet):
    """Reporters of the project's scenarios. Editors write them, with a channel they may use;
    reporters on command channels need the coder profile."""

    queryset = Reporter.objects.select_related("scenario", "channel")
    serializer_class = ReporterSerializer

    def _save(self, serializer) -> None:
        user, before = self.request.user, serializer.instance
        channel = serializer.validated_data.get("channel")
        probe = before or Reporter(scenario=serializer.validated_data["scenario"])
        if writes_code(before, channel) and not permissions.can(user, "code", probe):
            raise exceptions.PermissionDenied(CODE_REFUSED)
        with transaction.atomic():
            reporter = serializer.save()
            if not permissions.can(user, "change", reporter):
                raise exceptions.PermissionDenied()

    def perform_create(self, serializer):
        self._save(serializer)

    def perform_update(self, serializer):
        self._save(serializer)

    @extend_schema(
        request=PreviewRequestSerializer, responses=PreviewSerializer, summary="Preview a message"
    )
    @action(detail=True, methods=["post"], required_action="view")
    def preview(self, request, project_key=None, pk=None):
        """Render the reporter against one of its scenario's runs; nothing is sent."""
        reporter = self.get_object()
        body = PreviewRequestSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        run_id = body.validated_data["run"]
        run = Run.objects.filter(pk=run_id, scenario_id=reporter.scenario_id).first()
        if run is None:
            message = f"No run of this scenario has id {run_id}."
            raise exceptions.ValidationError({"run": [message]})
        preview = reporter_preview(reporter, run)
        would_send = preview["would_send"]
        preview |= {
            "run": run.pk,
            "would_send": would_send is True,
            "condition_error": would_send if isinstance(would_send, str) else None,
        }
        return Response(PreviewSerializer(preview).data)


# --- deliveries ----------------------------------------------------------------------------


@extend_schema_view(
    list=extend_schema(parameters=[OpenApiParameter("run_pk", int, OpenApiParameter.PATH)]),
    retrieve=extend_schema(parameters=[OpenApiParameter("run_pk", int, OpenApiParameter.PATH)]),
)
class RunDeliveryViewSet(ProjectChildReadOnlyViewSet):
    """The messages a run sent (or tried to), newest first: readers see them."""

    queryset = Delivery.objects.select_related("channel")
    serializer_class = DeliverySerializer

    def get_queryset(self):
        runs = Run.objects.filter(project=self.get_project())
        runs = permissions.for_user(runs, self.request.user, "view")
        run = get_object_or_404(runs, pk=self.kwargs["run_pk"])
        return super().get_queryset().filter(run=run).order_by("-id")
