"""The API's parsers: DRF's, refusing bodies that PostgreSQL could never store.

PostgreSQL keeps no NUL character (U+0000) in text or jsonb. DRF's CharField refuses one, but
free-form fields (variables, params) would hand it to the database, which answers with an
error (a 500). Refused here, for every body at once, the answer is a 400 naming the field.
A JSON body nested too deeply to parse is a 400 too, not a RecursionError.

A form body's JSON field holds JSON text that only the field decodes, so an escaped NUL
("\\u0000") gets past the parsers: ``JSONField`` refuses it. Every writable JSON field of the
API is one (the model serializers' default too, see ``SystemConfig.ready``).
"""

from __future__ import annotations

from rest_framework import parsers, serializers
from rest_framework.exceptions import ParseError, ValidationError
from rest_framework.settings import api_settings


class JSONParser(parsers.JSONParser):
    def parse(self, stream, media_type=None, parser_context=None):
        try:
            data = super().parse(stream, media_type, parser_context)
            where = _null_character_at(data)
        except RecursionError:
            raise ParseError("JSON parse error - nested too deeply.") from None
        if where is not None:
            field = where[0] if isinstance(data, dict) else api_settings.NON_FIELD_ERRORS_KEY
            message = f"Null characters are not allowed (at {_dotted(where)})."
            raise ValidationError({field: [message]})
        return data


class FormParser(parsers.FormParser):
    def parse(self, stream, media_type=None, parser_context=None):
        data = super().parse(stream, media_type, parser_context)
        _refuse_null_characters(data)
        return data


class MultiPartParser(parsers.MultiPartParser):
    def parse(self, stream, media_type=None, parser_context=None):
        parsed = super().parse(stream, media_type, parser_context)
        _refuse_null_characters(parsed.data)
        return parsed


class JSONField(serializers.JSONField):
    """DRF's JSONField, refusing NUL characters anywhere in the decoded value."""

    default_error_messages = {
        "null_character": "Null characters are not allowed (at {path}).",
        "too_deep": "Nested too deeply.",
    }

    def to_internal_value(self, data):
        try:
            value = super().to_internal_value(data)
            where = _null_character_at(value, (self.field_name,))
        except RecursionError:  # JSON text of a form field, which no parser has bounded
            self.fail("too_deep")
        if where is not None:
            self.fail("null_character", path=_dotted(where))
        return value


def _refuse_null_characters(form) -> None:
    for key, values in form.lists():
        if "\x00" in key or any("\x00" in value for value in values):
            field = key.replace("\x00", "\\u0000")
            raise ValidationError({field: ["Null characters are not allowed."]})


def _dotted(path: tuple[str, ...]) -> str:
    return ".".join(part.replace("\x00", "\\u0000") for part in path)


def _null_character_at(value, path: tuple[str, ...] = ()) -> tuple[str, ...] | None:
    """The path of the first string (or object key) holding a NUL, if any."""
    if isinstance(value, str):
        return path if "\x00" in value else None
    if isinstance(value, dict):
        items = value.items()
    elif isinstance(value, list):
        items = ((str(index), item) for index, item in enumerate(value))
    else:
        return None
    for key, item in items:
        if "\x00" in key:
            return (*path, key)
        found = _null_character_at(item, (*path, key))
        if found is not None:
            return found
    return None
