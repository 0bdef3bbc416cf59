"""REST API for the saved models of a project: their definition, their versions (read-only,
in the detail) and Train, which trains in the request and answers with the new version."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.decorators import action
from rest_framework.response import Response

from apps.flow.access import require_usable
from apps.flow.api.datasets import FlowRequestError
from apps.flow.api.references import ProjectDatasetField, merged
from apps.flow.storage import FlowError
from apps.ml.models import ModelCheck, ModelVersion, SavedModel
from apps.ml.training import model_train
from apps.ml.validation import model_errors
from apps.projects.api import ProjectChildViewSet
from apps.quality.api import raise_field_errors
from apps.system.parsers import JSONField


class ModelVersionSerializer(serializers.ModelSerializer):
    class Meta:
        model = ModelVersion
        fields = ["number", "trained_at", "algorithm", "params", "features", "metrics",
                  "train_rows", "test_rows", "run"]  # fmt: skip
        read_only_fields = fields


class ModelCheckSerializer(serializers.ModelSerializer):
    class Meta:
        model = ModelCheck
        fields = ["id", "name", "metric", "soft_min", "soft_max", "hard_min", "hard_max"]
        read_only_fields = fields


class ActiveVersionField(serializers.IntegerField):
    """The active version, by number (any version of the model: roll back, or forward)."""

    def to_representation(self, value) -> int:
        return value.number

    def get_attribute(self, instance):
        return instance.active_version

    def to_internal_value(self, data):
        number = super().to_internal_value(data)
        model = self.parent.instance
        version = model.versions.filter(number=number).first() if model else None
        if version is None:
            raise serializers.ValidationError(f"The model has no version {number}.")
        return version


class SavedModelSerializer(serializers.ModelSerializer):
    dataset = ProjectDatasetField()
    params = JSONField(
        required=False, help_text='The algorithm\'s parameters, e.g. {"n_estimators": 100}.'
    )
    active_version = ActiveVersionField(
        required=False, allow_null=True, help_text="The version predictions use, by number."
    )

    class Meta:
        model = SavedModel
        fields = ["id", "name", "dataset", "target", "task", "algorithm", "params",
                  "active_version"]  # fmt: skip
        extra_kwargs = {
            "algorithm": {"help_text": "classification: logistic_regression, random_forest, "
                          "gradient_boosting · regression: linear_regression, random_forest, "
                          "gradient_boosting"},
            "target": {"help_text": "The column to predict."},
        }  # fmt: skip
        validators = []  # the unique name is checked in validate(), naming the field

    def validate(self, data):
        project = self.context["view"].get_project()
        fields = ("name", "dataset", "target", "task", "algorithm", "params")
        model = SavedModel(project=project, **{name: merged(self, data, name) for name in fields})
        errors = model_errors(model, user=self.context["request"].user)
        clash = SavedModel.objects.filter(project=project, name=model.name)
        if clash.exclude(pk=getattr(self.instance, "pk", None)).exists():
            errors["name"] = f"The project already has a model named {model.name!r}."
        raise_field_errors(errors)
        return data


class SavedModelDetailSerializer(SavedModelSerializer):
    versions = ModelVersionSerializer(many=True, read_only=True, help_text="Newest first.")
    checks = ModelCheckSerializer(many=True, read_only=True)

    class Meta(SavedModelSerializer.Meta):
        fields = [*SavedModelSerializer.Meta.fields, "checks", "versions"]


class SavedModelViewSet(ProjectChildViewSet):
    """Saved models of the project (scikit-learn). Editors write and train them; the detail
    lists their versions and checks."""

    queryset = SavedModel.objects.select_related(
        "project", "dataset__connection", "active_version"
    ).prefetch_related("versions", "checks")
    serializer_class = SavedModelSerializer

    def get_serializer_class(self):
        return SavedModelDetailSerializer if self.action == "retrieve" else SavedModelSerializer

    @extend_schema(request=None, responses=ModelVersionSerializer, summary="Train the model")
    @action(detail=True, methods=["post"], required_action="change")
    def train(self, request, project_key=None, pk=None):
        """Train a new version now and wait (synchronous); it becomes the active version.
        200 with the version and its metrics; 400 with the reason when training fails."""
        model = self.get_object()
        try:
            require_usable(model.dataset, request.user)
            version = model_train(model)
        except FlowError as error:
            raise FlowRequestError(str(error)) from None
        return Response(ModelVersionSerializer(version).data)
