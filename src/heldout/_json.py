"""JSON from untrusted text (model outputs, server answers, data files) that fails cleanly.

``json.loads`` recurses: a line nested 100,000 deep raises RecursionError, which no caller
expects. :func:`load_json` turns it into the ``JSONDecodeError`` every caller handles.
"""

from __future__ import annotations

import json
from typing import Any

__all__ = ["load_json"]


def load_json(text: str | bytes, **kwargs: Any) -> Any:
    """``json.loads`` that raises ``json.JSONDecodeError`` (a ``ValueError``), never
    RecursionError, on nesting deeper than Python's parser can follow."""
    try:
        return json.loads(text, **kwargs)
    except RecursionError:
        doc = text if isinstance(text, str) else text.decode("utf-8", "replace")
        raise json.JSONDecodeError("nested too deeply to read", doc, 0) from None
