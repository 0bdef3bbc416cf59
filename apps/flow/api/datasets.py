"""Datasets of a project, with their build status, Build and Clear."""

from __future__ import annotations

from functools import cache

from django.db.models import ProtectedError
from drf_spectacular.utils import extend_schema, extend_schema_view
from rest_framework import exceptions, serializers, status
from rest_framework.decorators import action
from rest_framework.response import Response

from apps.flow.api.references import (
    NAME_OR_ID,
    NameOrIdLookup,
    UsableConnectionField,
    by_name_or_id,
    merged,
)
from apps.flow.build import MODES
from apps.flow.models import Dataset
from apps.flow.selectors import out_of_date_ids
from apps.flow.services import dataset_clear_for, datasets_build
from apps.flow.storage import FlowError
from apps.flow.validation import dataset_errors
from apps.projects.api import ProjectChildViewSet


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


class DatasetInUse(exceptions.APIException):
    status_code = status.HTTP_409_CONFLICT
    default_detail = "Saved models are trained on this dataset; delete them first."
    default_code = "dataset_in_use"


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

    def perform_destroy(self, instance):
        try:
            instance.delete()
        except ProtectedError:
            raise DatasetInUse() from None

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
