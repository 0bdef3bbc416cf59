"""apps/system/renderers.py writes what DRF's JSONRenderer writes, or lets DRF write it."""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest
from django.utils.translation import gettext_lazy
from rest_framework.renderers import JSONRenderer
from rest_framework.utils.serializer_helpers import ReturnDict

from apps.system.renderers import FastJSONRenderer

PARIS = ZoneInfo("Europe/Paris")


@pytest.mark.parametrize(
    "data",
    [
        {"at": datetime(2024, 3, 1, 12, 0, tzinfo=UTC), "also": datetime(2024, 3, 1, tzinfo=PARIS)},
        {"micro": datetime(2024, 3, 1, 12, 0, 0, 5, tzinfo=UTC), "naive": datetime(2024, 3, 1)},
        {"zero offset, not UTC": datetime(2024, 1, 1, tzinfo=ZoneInfo("Atlantic/Reykjavik"))},
        {"half hours": datetime(2024, 7, 1, 8, 30, tzinfo=ZoneInfo("America/St_Johns"))},
        {"day": date(2024, 2, 29), "id": uuid.UUID(int=7), "money": Decimal("1.10")},
        {"lazy": gettext_lazy("Invalid cursor"), "span": timedelta(seconds=90.5)},
        {"text": 'é, 中, \u2028 and \u2029, "quoted" \\ \n', "nested": [1, {"a": None}]},
        {"controls": "\t\b\f\r\x00\x01\x1f\x7f\ud7ff\ue000\U0001f600"},
        {"floats": [0.1, 90.5, 1.0, -0.0, 123456.789], "ints": [0, -1, 2**63 - 1]},
        ReturnDict({"results": [{"id": 1}], "next": None}, serializer=None),
        [],
    ],
)
def test_the_same_bytes_as_drf(data):
    assert FastJSONRenderer().render(data) == JSONRenderer().render(data)


def test_an_integer_beyond_64_bits_is_drf_s_to_write():
    data = {"big": 2**70}
    assert FastJSONRenderer().render(data) == JSONRenderer().render(data) == b'{"big":%d}' % 2**70


def test_an_indent_asked_for_is_drf_s_to_write():
    data = {"a": [1, 2]}
    media = "application/json; indent=2"
    assert FastJSONRenderer().render(data, media) == JSONRenderer().render(data, media)
    assert b"\n" in FastJSONRenderer().render(data, media)


def test_nothing_renders_as_nothing():
    assert FastJSONRenderer().render(None) == JSONRenderer().render(None) == b""
