"""Recipes of a project: their inputs and outputs name datasets by name or id."""

from __future__ import annotations

from django.core.exceptions import ValidationError as DjangoValidationError
from drf_spectacular.utils import extend_schema_view
from rest_framework import exceptions, serializers

from apps.flow.api.references import NameOrIdLookup, ProjectDatasetField, by_name_or_id, merged
from apps.flow.models import Dataset, Recipe
from apps.flow.services import recipe_link
from apps.flow.validation import recipe_errors, writes_python
from apps.projects import permissions
from apps.projects.api import ProjectChildViewSet, raise_api_validation

CODE_REFUSED = "Writing a Python recipe needs the coder profile and the editor role."


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
