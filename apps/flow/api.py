"""REST API for the flow: connections (superusers write them; passwords are write-only),
and the datasets and recipes of a project, with Build and Clear.

Datasets and recipes are named by name or id, in URLs and in fields (``inputs``,
``outputs``, ``connection``); responses name them. Builds run in the request for now.
"""

from __future__ import annotations

from functools import cache

from django.core.exceptions import ValidationError as DjangoValidationError
from django.db.models import ProtectedError
from django.shortcuts import get_object_or_404
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import (
    OpenApiParameter,
    PolymorphicProxySerializer,
    extend_schema,
    extend_schema_field,
    extend_schema_view,
)
from rest_framework import exceptions, serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.permissions import SAFE_METHODS
from rest_framework.response import Response

from apps.flow.build import MODES
from apps.flow.models import Connection, Dataset, Recipe
from apps.flow.selectors import connections_usable_by, out_of_date_ids
from apps.flow.services import (
    connection_password_set,
    dataset_clear_for,
    datasets_build,
    recipe_link,
)
from apps.flow.storage import FlowError, connection_test
from apps.flow.validation import connection_errors, dataset_errors, recipe_errors, writes_python
from apps.projects import permissions
from apps.projects.api import ProjectChildViewSet, raise_api_validation
from apps.system.encryption import SecretsUnreadable

CODE_REFUSED = "Writing a Python recipe needs the coder profile and the editor role."


def merged(serializer: serializers.ModelSerializer, data: dict, name: str):
    """The value a write leaves in field ``name``: given, or kept, or the model default."""
    if name in data:
        return data[name]
    if serializer.instance is not None:
        return getattr(serializer.instance, name)
    return serializer.Meta.model._meta.get_field(name).get_default()


@extend_schema_field(OpenApiTypes.STR)
class NameOrIdField(serializers.RelatedField):
    """A related object by name (as responses give it) or by id."""

    default_error_messages = {
        "unknown": "No {kind} {value!r} here.",
        "incorrect_type": "A name or an id.",
    }
    kind = "object"

    def to_internal_value(self, data):
        if isinstance(data, bool) or not isinstance(data, int | str):
            self.fail("incorrect_type")
        text = str(data)
        lookup = {"pk": int(text)} if text.isdigit() else {"name": text}
        found = self.get_queryset().filter(**lookup).first()
        if found is None:
            self.fail("unknown", kind=self.kind, value=data)
        return found

    def to_representation(self, value) -> str:
        return value.name


class ProjectDatasetField(NameOrIdField):
    kind = "dataset"

    def get_queryset(self):
        project = self.context["view"].get_project()
        return Dataset.objects.filter(project=project).select_related("project", "connection")


class UsableConnectionField(NameOrIdField):
    kind = "connection you may use"

    def get_queryset(self):
        return connections_usable_by(self.context["request"].user)


class NameOrIdLookup:
    """Detail routes take a name or an id (names never start with a digit)."""

    lookup_value_regex = r"[A-Za-z0-9_]+"

    def get_object(self):
        value = self.kwargs[self.lookup_url_kwarg or self.lookup_field]
        lookup = {"pk": int(value)} if value.isdigit() else {"name": value}
        obj = get_object_or_404(self.get_queryset(), **lookup)
        self.check_object_permissions(self.request, obj)
        return obj


NAME_OR_ID = OpenApiParameter("id", str, OpenApiParameter.PATH, description="A name or an id.")


def by_name_or_id(*actions: str) -> dict:
    return {name: extend_schema(parameters=[NAME_OR_ID]) for name in actions}


# --- connections -------------------------------------------------------------------------------


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


# --- datasets ----------------------------------------------------------------------------------


class DatasetSerializer(serializers.ModelSerializer):
    connection = UsableConnectionField()
    schema = serializers.ListField(
        child=serializers.DictField(), read_only=True, help_text="Columns: name and type."
    )
    built_by = serializers.SlugRelatedField(slug_field="name", read_only=True)
    out_of_date = serializers.SerializerMethodField(
        help_text="Its recipe or an input changed since it was built."
    )

    class Meta:
        model = Dataset
        fields = ["id", "name", "connection", "format", "path", "table", "schema", "built_at",
                  "built_by", "row_count", "out_of_date", "updated_at"]  # fmt: skip
        read_only_fields = ["built_at", "row_count", "updated_at"]
        extra_kwargs = {"format": {"help_text": "Default: table on SQL connections, else csv."}}
        validators = []  # the unique name is checked in validate(), naming the field

    def get_out_of_date(self, dataset) -> bool:
        return dataset.pk in self.context["out_of_date"]()

    def validate(self, data):
        project = self.context["view"].get_project()
        connection = merged(self, data, "connection")
        if self.instance is None and "format" not in data and connection.is_sql:
            data["format"] = Dataset.Format.TABLE
        fields = ("name", "connection", "format", "path", "table")
        dataset = Dataset(
            pk=getattr(self.instance, "pk", None),
            project=project,
            **{name: merged(self, data, name) for name in fields},
        )
        errors = dataset_errors(dataset)
        clash = Dataset.objects.filter(project=project, name=dataset.name)
        if clash.exclude(pk=dataset.pk).exists():
            errors["name"] = f"The project already has a dataset named {dataset.name!r}."
        if errors:
            raise serializers.ValidationError(errors)
        return data


class BuildRequestSerializer(serializers.Serializer):
    mode = serializers.ChoiceField(
        choices=MODES,
        default="required",
        help_text="only: its recipe · required: what is out of date upstream · force: all "
        "upstream · missing: what was never built",
    )


class BuildResultSerializer(serializers.Serializer):
    recipes = serializers.ListField(child=serializers.CharField(), help_text="Run, in order.")
    rows = serializers.DictField(child=serializers.IntegerField(), help_text="Rows per dataset.")
    log = serializers.ListField(child=serializers.CharField())


class BuildFailedSerializer(serializers.Serializer):
    detail = serializers.CharField()
    log = serializers.ListField(child=serializers.CharField())


class FlowRequestError(exceptions.APIException):
    status_code = status.HTTP_400_BAD_REQUEST
    default_code = "flow_error"


@extend_schema_view(**by_name_or_id("retrieve", "update", "partial_update", "destroy"))
class DatasetViewSet(NameOrIdLookup, ProjectChildViewSet):
    """Datasets of the project, with their build status. Editors write, build and clear them
    on connections they may use."""

    queryset = Dataset.objects.select_related("project", "connection", "built_by")
    serializer_class = DatasetSerializer

    def get_serializer_context(self):
        context = super().get_serializer_context()
        context["out_of_date"] = cache(lambda: out_of_date_ids([self.get_project().pk]))
        return context

    @extend_schema(
        request=BuildRequestSerializer,
        responses={200: BuildResultSerializer, 400: BuildFailedSerializer},
        parameters=[NAME_OR_ID],
        summary="Build the dataset",
    )
    @action(detail=True, methods=["post"], required_action="change")
    def build(self, request, project_key=None, pk=None):
        """Build now and wait (synchronous for now): 200 with the recipes run, 400 with the
        reason and the log when a recipe fails."""
        dataset = self.get_object()
        body = BuildRequestSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        outcome = datasets_build([dataset], mode=body.validated_data["mode"], user=request.user)
        if outcome.error:
            failed = {"detail": outcome.error, "log": outcome.log}
            return Response(failed, status=status.HTTP_400_BAD_REQUEST)
        return Response(BuildResultSerializer(outcome).data)

    @extend_schema(
        request=None,
        responses=DatasetSerializer,
        parameters=[NAME_OR_ID],
        summary="Delete the dataset's data",
    )
    @action(detail=True, methods=["post"], required_action="change")
    def clear(self, request, project_key=None, pk=None):
        """Delete the data and the build status; the definition stays."""
        dataset = self.get_object()
        try:
            dataset_clear_for(dataset, user=request.user)
        except FlowError as error:
            raise FlowRequestError(str(error)) from None
        dataset.refresh_from_db()
        return Response(self.get_serializer(dataset).data)


# --- recipes -----------------------------------------------------------------------------------


class RecipeSerializer(serializers.ModelSerializer):
    inputs = ProjectDatasetField(many=True, required=False)
    outputs = ProjectDatasetField(many=True)

    class Meta:
        model = Recipe
        fields = ["id", "name", "kind", "code", "inputs", "outputs", "updated_at"]
        read_only_fields = ["updated_at"]
        validators = []  # the unique name is checked in validate(), naming the field

    def _links(self, data: dict, name: str) -> list[Dataset]:
        if name in data:
            return list(data[name])
        return list(getattr(self.instance, name).all()) if self.instance else []

    def validate(self, data):
        project = self.context["view"].get_project()
        recipe = Recipe(
            pk=getattr(self.instance, "pk", None),
            project=project,
            **{name: merged(self, data, name) for name in ("name", "kind", "code")},
        )
        errors = recipe_errors(recipe, self._links(data, "inputs"), self._links(data, "outputs"))
        clash = Recipe.objects.filter(project=project, name=recipe.name)
        if clash.exclude(pk=recipe.pk).exists():
            errors["name"] = f"The project already has a recipe named {recipe.name!r}."
        if errors:
            raise serializers.ValidationError(errors)
        return data

    def create(self, validated_data):
        links = {name: self._links(validated_data, name) for name in ("inputs", "outputs")}
        recipe = Recipe.objects.create(
            **{k: v for k, v in validated_data.items() if k not in links}
        )
        self._link(recipe, links)
        return recipe

    def update(self, instance, validated_data):
        links = {name: self._links(validated_data, name) for name in ("inputs", "outputs")}
        for name, value in validated_data.items():
            if name not in links:
                setattr(instance, name, value)
        instance.save()  # always: a new updated_at puts what it writes out of date
        self._link(instance, links)
        return instance

    def _link(self, recipe: Recipe, links: dict) -> None:
        try:
            recipe_link(recipe, inputs=links["inputs"], outputs=links["outputs"])
        except DjangoValidationError as error:
            raise_api_validation(error)


@extend_schema_view(**by_name_or_id("retrieve", "update", "partial_update", "destroy"))
class RecipeViewSet(NameOrIdLookup, ProjectChildViewSet):
    """Recipes of the project. Editors write them; Python recipes need the coder profile."""

    queryset = Recipe.objects.select_related("project").prefetch_related("inputs", "outputs")
    serializer_class = RecipeSerializer

    def _require_code(self, serializer) -> None:
        before, data = serializer.instance, serializer.validated_data
        kind = data.get("kind", getattr(before, "kind", None))
        code = data.get("code", getattr(before, "code", ""))
        probe = before or self.creation_probe()
        if writes_python(before, kind, code) and not permissions.can(
            self.request.user, "code", probe
        ):
            raise exceptions.PermissionDenied(CODE_REFUSED)

    def perform_create(self, serializer):
        self._require_code(serializer)
        super().perform_create(serializer)

    def perform_update(self, serializer):
        self._require_code(serializer)
        super().perform_update(serializer)
