"""A JSON renderer for the API's busiest list: DRF's JSONRenderer output, written by orjson.

The run list renders 50 rows with four timestamps each. DRF's encoder formats every datetime
in Python and json walks the page in its own pass: orjson does both in C (0.65 → 0.16 ms a
page with the rows' own rendering, bench/api.py). The text is DRF's, byte for byte, for what
the API renders (tests/system/test_renderers.py); where orjson would differ, DRF renders:

- an indent asked for (``Accept: application/json; indent=4``), or non-compact or ASCII-only
  settings;
- what orjson refuses: integers beyond 64 bits, and so on.

Types orjson does not know (Decimal, lazy strings, …) go to DRF's encoder, as with DRF.
Floats are written in their shortest form by both, though orjson spells exponents without a
sign or a leading zero (1e16, where json writes 1e+16): the same number. NaN and infinities,
which DRF refuses, orjson writes as null: the run list has none.
"""

from __future__ import annotations

import orjson
from rest_framework.renderers import JSONRenderer

# JavaScript cannot take these two raw in a string: DRF escapes them, so does this.
_LINE_SEPARATORS = (("\u2028".encode(), b"\\u2028"), ("\u2029".encode(), b"\\u2029"))


class FastJSONRenderer(JSONRenderer):
    def render(self, data, accepted_media_type=None, renderer_context=None):
        if data is None:
            return b""
        indent = self.get_indent(accepted_media_type, renderer_context or {})
        if indent is not None or self.ensure_ascii or not self.compact:
            return super().render(data, accepted_media_type, renderer_context)
        try:
            text = orjson.dumps(
                data,
                default=self.encoder_class().default,
                option=orjson.OPT_UTC_Z | orjson.OPT_NON_STR_KEYS,
            )
        except orjson.JSONEncodeError:
            return super().render(data, accepted_media_type, renderer_context)
        for raw, escaped in _LINE_SEPARATORS:
            if raw in text:
                text = text.replace(raw, escaped)
        return text
