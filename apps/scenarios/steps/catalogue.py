"""The step types described for clients: the /step-types/ listing and the OpenAPI schema."""

from __future__ import annotations

from functools import cache

from rest_framework import fields as drf_fields
from rest_framework import serializers

from apps.scenarios.steps import STEP_TYPES, get_step_type

_FIELD_KINDS = [
    (drf_fields.BooleanField, "boolean"),
    (drf_fields.IntegerField, "integer"),
    (drf_fields.FloatField, "number"),
    (drf_fields.DecimalField, "number"),
    (drf_fields.ChoiceField, "choice"),
    (drf_fields.CharField, "string"),
    (drf_fields.DictField, "object"),
    (drf_fields.JSONField, "json"),
    (drf_fields.ListField, "array"),
]


@cache
def params_serializers() -> dict[str, type[serializers.Serializer]]:
    """Each type's Params under a unique name (``PythonStepParams``…): several types share
    a Params class, and OpenAPI components need distinct names."""
    named = {}
    for key in STEP_TYPES:
        step_type = get_step_type(key)
        name = "".join(part.capitalize() for part in key.split("_")) + "StepParams"
        doc = f"Params of a `{key}` step ({step_type.label})."
        named[key] = type(name, (step_type.Params,), {"__module__": __name__, "__doc__": doc})
    return named


def _field_kind(field: drf_fields.Field) -> str:
    return next((kind for cls, kind in _FIELD_KINDS if isinstance(field, cls)), "string")


def _default(field: drf_fields.Field):
    if field.default is drf_fields.empty:
        return None
    return field.default() if callable(field.default) else field.default


def describe_params(params_class: type[serializers.Serializer]) -> list[dict]:
    described = []
    for name, field in params_class().fields.items():
        entry = {
            "name": name,
            "type": _field_kind(field),
            "required": field.required,
            "default": _default(field),
            "help_text": str(field.help_text or ""),
        }
        if isinstance(field, drf_fields.ChoiceField):
            entry["choices"] = list(field.choices)
        described.append(entry)
    return described


def step_type_catalogue() -> list[dict]:
    return [
        {
            "key": key,
            "label": get_step_type(key).label,
            "needs_code": get_step_type(key).needs_code,
            "params": describe_params(get_step_type(key).Params),
        }
        for key in STEP_TYPES
    ]
