"""Prompt templates: ``{field}`` placeholders filled from a sample; ``{{``/``}}`` are braces.

A small renderer of our own rather than ``str.format``: JSON examples inside prompts are common,
and ``str.format`` would try to interpret their braces and attribute syntax.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from heldout.errors import TemplateError

__all__ = ["DEFAULT_TEMPLATE", "placeholders", "render"]

DEFAULT_TEMPLATE = "{input}"
_TOKEN = re.compile(r"\{\{|\}\}|\{([A-Za-z_][A-Za-z0-9_]*)\}")


def placeholders(template: str) -> list[str]:
    """The field names a template uses, in order of first appearance."""
    seen: dict[str, None] = {}
    for m in _TOKEN.finditer(template):
        if m.group(1):
            seen.setdefault(m.group(1), None)
    return list(seen)


def render(template: str, fields: Mapping[str, Any], *, sample_id: str = "?") -> str:
    """Fill ``template`` from ``fields``; a missing field raises :class:`TemplateError`."""

    def sub(m: re.Match[str]) -> str:
        token = m.group(0)
        if token == "{{":
            return "{"
        if token == "}}":
            return "}"
        name = m.group(1)
        if name not in fields:
            known = ", ".join(sorted(fields))
            raise TemplateError(
                f"sample {sample_id!r}: the prompt template uses {{{name}}} but the sample has "
                f"no field {name!r} (it has: {known}). Add it to the gold set's metadata or "
                "fix the template."
            )
        value = fields[name]
        return value if isinstance(value, str) else str(value)

    return _TOKEN.sub(sub, template)
