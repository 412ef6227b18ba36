"""YAML reading that keeps line numbers and refuses duplicate keys.

PyYAML keeps the last of two equal keys silently; in a pre-registration that would let a
second ``success_threshold:`` quietly override the first, so duplicates are problems here.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import yaml

from heldout.errors import Problem

__all__ = ["format_path", "line_of", "parse_yaml"]


def format_path(loc: Sequence[int | str]) -> str:
    """``('guardrails', 2, 'max_drop')`` → ``guardrails[2].max_drop``."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out


def parse_yaml(text: str, source: str) -> tuple[Any, yaml.Node | None, list[Problem]]:
    """Parse ``text``; return (data, node tree, problems). Data is None on a syntax error."""
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark is not None else None
        reason = getattr(exc, "problem", None) or str(exc)
        return None, None, [Problem(source, f"YAML syntax error: {reason}", line)]
    if node is None:
        return None, None, [Problem(source, "the plan is empty; run 'heldout init' for a start")]
    problems: list[Problem] = []
    _find_duplicates(node, [], problems)
    data = yaml.load(text, Loader=yaml.SafeLoader)
    return data, node, problems


def _find_duplicates(node: yaml.Node, path: list[int | str], out: list[Problem]) -> None:
    if isinstance(node, yaml.MappingNode):
        seen: dict[str, int] = {}
        for key_node, value_node in node.value:
            key = str(key_node.value)
            if key in seen:
                out.append(
                    Problem(
                        format_path([*path, key]),
                        f"key appears twice (first at line {seen[key]}); keep one",
                        key_node.start_mark.line + 1,
                    )
                )
            else:
                seen[key] = key_node.start_mark.line + 1
            _find_duplicates(value_node, [*path, key], out)
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            _find_duplicates(item, [*path, i], out)


def line_of(node: yaml.Node | None, loc: Sequence[int | str]) -> int | None:
    """1-based line of the deepest node along ``loc`` (the key line for a missing key)."""
    if node is None:
        return None
    line = node.start_mark.line + 1
    for part in loc:
        if isinstance(node, yaml.MappingNode) and isinstance(part, str):
            for key_node, value_node in node.value:
                if key_node.value == part:
                    line = key_node.start_mark.line + 1
                    node = value_node
                    break
            else:
                return line
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int):
            if part >= len(node.value):
                return line
            node = node.value[part]
            line = node.start_mark.line + 1
        else:
            return line
    return line
