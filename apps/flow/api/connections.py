"""Connections: everyone lists those they may use; superusers write them."""

from __future__ import annotations

from django.db.models import ProtectedError
from drf_spectacular.utils import PolymorphicProxySerializer, extend_schema, extend_schema_view
from rest_framework import exceptions, serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.permissions import SAFE_METHODS
from rest_framework.response import Response

from apps.flow.api.references import merged
from apps.flow.models import Connection
from apps.flow.selectors import connections_usable_by
from apps.flow.services import connection_password_set
from apps.flow.storage import FlowError, connection_test
from apps.flow.validation import connection_errors
from apps.system.encryption import SecretsUnreadable


class ConnectionSummarySerializer(serializers.ModelSerializer):
    """What every user sees of a connection they may use."""

    class Meta:
        model = Connection
        fields = ["id", "name", "kind"]
        read_only_fields = fields


class ConnectionSerializer(serializers.ModelSerializer):
    """A connection as superusers write it; the password is write-only."""

    password = serializers.CharField(
        write_only=True,
        required=False,
        allow_blank=True,
        trim_whitespace=False,
        style={"input_type": "password"},
        help_text="Write-only. Omitted or blank keeps the stored password.",
    )
    clear_password = serializers.BooleanField(
        write_only=True, required=False, help_text="Remove the stored password."
    )
    password_set = serializers.SerializerMethodField(help_text="A password is stored.")

    class Meta:
        model = Connection
        fields = ["id", "name", "kind", "config", "allowed_groups", "password",
                  "clear_password", "password_set"]  # fmt: skip

    def get_password_set(self, connection) -> bool:
        try:
            return bool(connection.secrets.get("password"))
        except SecretsUnreadable:
            return True  # stored, though unreadable with the current key

    def validate(self, data):
        errors = connection_errors(
            instance=self.instance,
            name=merged(self, data, "name"),
            kind=merged(self, data, "kind"),
            config=merged(self, data, "config"),
        )
        if errors:
            raise serializers.ValidationError(errors)
        return data

    def create(self, validated_data):
        instance = Connection()
        self._set_password(instance, validated_data)
        validated_data["secrets"] = instance.secrets  # the model's property encrypts it
        return super().create(validated_data)

    def update(self, instance, validated_data):
        self._set_password(instance, validated_data)
        return super().update(instance, validated_data)

    def _set_password(self, instance: Connection, validated_data: dict) -> None:
        connection_password_set(
            instance,
            password=validated_data.pop("password", ""),
            clear=validated_data.pop("clear_password", False),
        )


class ConnectionTestedSerializer(serializers.Serializer):
    ok = serializers.BooleanField()
    answer = serializers.CharField(help_text="What answered.")


class ConnectionFailedSerializer(serializers.Serializer):
    ok = serializers.BooleanField()
    error = serializers.CharField(help_text="Why it could not connect.")


class ConnectionInUse(exceptions.APIException):
    status_code = status.HTTP_409_CONFLICT
    default_detail = "Datasets use this connection; delete or move them first."
    default_code = "connection_in_use"


def any_connection(many: bool = False) -> PolymorphicProxySerializer:
    """What a user sees of a connection: superusers all of it, others the summary."""
    return PolymorphicProxySerializer(
        component_name="AnyConnection",
        serializers=[ConnectionSummarySerializer, ConnectionSerializer],
        resource_type_field_name=None,
        many=many,
    )


@extend_schema_view(
    list=extend_schema(responses=any_connection(many=True)),
    retrieve=extend_schema(responses=any_connection()),
)
class ConnectionViewSet(viewsets.ModelViewSet):
    """Connections. Everyone lists those they may use (id, name, kind); superusers see and
    write all of them, with their config. Passwords are never returned."""

    serializer_class = ConnectionSerializer
    lookup_value_regex = r"[0-9]+"

    def get_queryset(self):
        return connections_usable_by(self.request.user).prefetch_related("allowed_groups")

    def get_serializer_class(self):
        if self.request.user.is_superuser:
            return ConnectionSerializer
        return ConnectionSummarySerializer

    def check_permissions(self, request):
        super().check_permissions(request)
        if request.method not in SAFE_METHODS and not request.user.is_superuser:
            raise exceptions.PermissionDenied("Only superusers manage connections.")

    def perform_destroy(self, instance):
        try:
            instance.delete()
        except ProtectedError:
            raise ConnectionInUse() from None

    @extend_schema(
        request=None,
        responses={200: ConnectionTestedSerializer, 400: ConnectionFailedSerializer},
        summary="Test a connection",
    )
    @action(detail=True, methods=["post"])
    def test(self, request, pk=None):
        """Connect now (superusers): 200 with what answered, or 400 with why not."""
        connection = self.get_object()
        try:
            answer = connection_test(connection)
        except (FlowError, SecretsUnreadable) as error:
            return Response({"ok": False, "error": str(error)}, status=status.HTTP_400_BAD_REQUEST)
        return Response({"ok": True, "answer": answer})
