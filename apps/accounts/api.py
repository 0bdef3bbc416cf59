from __future__ import annotations

from drf_spectacular.utils import extend_schema
from rest_framework import mixins, permissions, serializers, status, viewsets
from rest_framework.decorators import api_view, permission_classes
from rest_framework.response import Response

from apps.accounts.license import LicenseError, active_license, license_install
from apps.accounts.models import ApiToken
from apps.accounts.services import profile_kind, seats_used, token_create


class LicenseSerializer(serializers.Serializer):
    edition = serializers.CharField()
    licensee = serializers.CharField()
    status = serializers.CharField()
    message = serializers.CharField()
    expires_at = serializers.DateField(allow_null=True)
    features = serializers.ListField(child=serializers.CharField())
    seats = serializers.DictField()


def license_payload() -> dict:
    current = active_license()
    seats = {
        kind: {"limit": current.seat_limit(kind), "used": seats_used(kind)}
        for kind in ("reader", "designer", "coder")
    }
    return {
        "edition": current.edition,
        "licensee": current.licensee,
        "status": current.status,
        "message": current.message,
        "expires_at": current.expires_at,
        "features": sorted(current.features),
        "seats": seats,
    }


class LicenseInstallSerializer(serializers.Serializer):
    document = serializers.CharField(help_text="The signed license document (JSON text).")


@extend_schema(methods=["GET"], responses=LicenseSerializer, summary="The active edition and seats")
@extend_schema(
    methods=["POST"],
    request=LicenseInstallSerializer,
    responses=LicenseSerializer,
    summary="Install a license document (superusers)",
)
@api_view(["GET", "POST"])
@permission_classes([permissions.IsAuthenticated])
def license_view(request):
    """The active edition (GET, any user); install a license document (POST, superusers)."""
    if request.method == "POST":
        if not request.user.is_superuser:
            return Response({"detail": "Only superusers install licenses."}, status=403)
        payload = LicenseInstallSerializer(data=request.data)
        payload.is_valid(raise_exception=True)
        try:
            license_install(payload.validated_data["document"], user=request.user)
        except LicenseError as error:
            return Response({"document": [str(error)]}, status=status.HTTP_400_BAD_REQUEST)
    return Response(LicenseSerializer(license_payload()).data)


class MeSerializer(serializers.Serializer):
    username = serializers.CharField()
    is_superuser = serializers.BooleanField()
    profile = serializers.CharField()


@extend_schema(responses=MeSerializer, summary="Who you are")
@api_view(["GET"])
def me_view(request):
    user = request.user
    data = {
        "username": user.get_username(),
        "is_superuser": user.is_superuser,
        "profile": profile_kind(user),
    }
    return Response(MeSerializer(data).data)


class ApiTokenSerializer(serializers.ModelSerializer):
    key = serializers.SerializerMethodField(help_text="Only in the response that creates it.")

    class Meta:
        model = ApiToken
        fields = ["id", "name", "prefix", "created_at", "last_used_at", "expires_at", "key"]
        read_only_fields = ["prefix", "created_at", "last_used_at"]

    def get_key(self, token) -> str | None:
        return getattr(token, "plain_key", None)


class ApiTokenViewSet(
    mixins.ListModelMixin,
    mixins.CreateModelMixin,
    mixins.DestroyModelMixin,
    viewsets.GenericViewSet,
):
    """Your personal API tokens: create (the key is shown once), list, revoke."""

    serializer_class = ApiTokenSerializer
    queryset = ApiToken.objects.none()  # for the schema; get_queryset scopes to the caller

    def get_queryset(self):
        return ApiToken.objects.filter(user=self.request.user)

    def perform_create(self, serializer):
        token, key = token_create(user=self.request.user, **serializer.validated_data)
        token.plain_key = key
        serializer.instance = token
