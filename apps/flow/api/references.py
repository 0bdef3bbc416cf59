"""Shared by the flow serializers: naming objects by name (as responses do) or by id, in
fields and URLs, and the value a partial write leaves in a field."""

from __future__ import annotations

from django.shortcuts import get_object_or_404
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema, extend_schema_field
from rest_framework import serializers

from apps.flow.models import Dataset
from apps.flow.selectors import connections_usable_by


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
        "null_characters": "Null characters are not allowed.",
    }
    kind = "object"

    def to_internal_value(self, data):
        if isinstance(data, bool) or not isinstance(data, int | str):
            self.fail("incorrect_type")
        text = str(data)
        if "\x00" in text:  # no name holds one, and PostgreSQL refuses it in a query
            self.fail("null_characters")
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
