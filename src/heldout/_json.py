"""JSON from untrusted text (model outputs, server answers, data files) that fails cleanly.

``json.loads`` recurses: a line nested 100,000 deep raises RecursionError, which no caller
expects. :func:`load_json` turns it into the ``JSONDecodeError`` every caller handles.
"""

from __future__ import annotations

import json
from typing import Any

__all__ = ["json_objects", "load_json"]


def load_json(text: str | bytes, **kwargs: Any) -> Any:
    """``json.loads`` that raises ``json.JSONDecodeError`` (a ``ValueError``), never
    RecursionError, on nesting deeper than Python's parser can follow."""
    try:
        return json.loads(text, **kwargs)
    except RecursionError:
        doc = text if isinstance(text, str) else text.decode("utf-8", "replace")
        raise json.JSONDecodeError("nested too deeply to read", doc, 0) from None


def json_objects(text: str) -> list[Any]:
    """Every JSON value that starts at a '{' in ``text`` and parses, in order (an LLM's
    reply with prose, code fences or several objects around the one that matters)."""
    decoder = json.JSONDecoder()
    found = []
    pos = text.find("{")
    while pos != -1:
        try:
            value, end = decoder.raw_decode(text, pos)
        except json.JSONDecodeError:
            pos = text.find("{", pos + 1)
            continue
        found.append(value)
        pos = text.find("{", end)
    return found
