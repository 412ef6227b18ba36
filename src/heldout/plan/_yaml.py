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


#: A plan is a few hundred nodes; past these limits it is an attack or an accident, and
#: expanding it (aliases) or recursing into it (nesting) would hang or crash the reader.
MAX_NODES = 100_000
MAX_DEPTH = 64


def _syntax_problem(exc: yaml.YAMLError, source: str, what: str) -> Problem:
    mark = getattr(exc, "problem_mark", None)
    line = mark.line + 1 if mark is not None else None
    reason = getattr(exc, "problem", None) or str(exc)
    return Problem(
        source,
        f"{what}: {reason}; fix the YAML at that line (indent with spaces, close brackets and "
        "quotes; 'heldout init' writes a valid plan to compare with)",
        line,
    )


def parse_yaml(text: str, source: str) -> tuple[Any, yaml.Node | None, list[Problem]]:
    """Parse ``text``; return (data, node tree, problems). Data is None when the text cannot
    be read safely: a syntax error, a Python tag, nesting deeper than :data:`MAX_DEPTH`, or
    aliases that expand past :data:`MAX_NODES` nodes (an alias bomb)."""
    try:
        deep = _too_deep(text)
        if deep is not None:
            return (
                None,
                None,
                [
                    Problem(
                        source,
                        f"nested deeper than {MAX_DEPTH} levels; write it as a flat plan",
                        deep,
                    )
                ],
            )
        node = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError as exc:
        return None, None, [_syntax_problem(exc, source, "YAML syntax error")]
    except RecursionError:
        return None, None, [Problem(source, f"nested too deep to read (limit {MAX_DEPTH} levels)")]
    if node is None:
        return None, None, [Problem(source, "the plan is empty; run 'heldout init' for a start")]
    unsafe = _check_shape(node, source)
    if unsafe:
        return None, None, [unsafe]
    problems: list[Problem] = []
    _find_duplicates(node, problems)
    try:
        data = yaml.load(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError as exc:
        return None, None, [_syntax_problem(exc, source, "YAML error")]
    return data, node, problems


_OPEN = (
    yaml.BlockMappingStartToken,
    yaml.BlockSequenceStartToken,
    yaml.FlowMappingStartToken,
    yaml.FlowSequenceStartToken,
)
_CLOSE = (yaml.BlockEndToken, yaml.FlowMappingEndToken, yaml.FlowSequenceEndToken)


def _too_deep(text: str) -> int | None:
    """The line where nesting passes :data:`MAX_DEPTH`, from the token stream (the scanner
    is iterative; PyYAML's composer recurses and would take seconds to overflow)."""
    depth = 0
    for token in yaml.scan(text, Loader=yaml.SafeLoader):
        if isinstance(token, _OPEN):
            depth += 1
            if depth > MAX_DEPTH:
                return int(token.start_mark.line) + 1
        elif isinstance(token, _CLOSE):
            depth -= 1
    return None


def _check_shape(root: yaml.Node, source: str) -> Problem | None:
    """Depth, expanded size and tags, in one walk that visits each node object once."""
    sizes: dict[int, int] = {}
    stack: list[tuple[yaml.Node, int, bool]] = [(root, 1, False)]
    while stack:
        node, depth, done = stack.pop()
        line = node.start_mark.line + 1
        if node.tag.startswith("tag:yaml.org,2002:python"):
            return Problem(
                source, f"Python tags ({node.tag}) are not allowed in a plan; remove the tag", line
            )
        if depth > MAX_DEPTH:
            return Problem(
                source, f"nested deeper than {MAX_DEPTH} levels; write it as a flat plan", line
            )
        children: list[yaml.Node] = []
        if isinstance(node, yaml.MappingNode):
            children = [n for pair in node.value for n in pair]
        elif isinstance(node, yaml.SequenceNode):
            children = list(node.value)
        if done:
            sizes[id(node)] = 1 + sum(sizes[id(c)] for c in children)
            if sizes[id(node)] > MAX_NODES:
                return Problem(
                    source,
                    f"expands to more than {MAX_NODES:,} values through YAML aliases (an alias "
                    "bomb?); write the plan out without anchors and aliases",
                    line,
                )
            continue
        if id(node) in sizes:
            continue
        stack.append((node, depth, True))
        stack.extend((c, depth + 1, False) for c in children if id(c) not in sizes)
    return None


def _find_duplicates(root: yaml.Node, out: list[Problem]) -> None:
    """Duplicate keys in every mapping, each node object visited once (aliases share it)."""
    visited: set[int] = set()
    stack: list[tuple[yaml.Node, list[int | str]]] = [(root, [])]
    while stack:
        node, path = stack.pop()
        if id(node) in visited:
            continue
        visited.add(id(node))
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
                stack.append((value_node, [*path, key]))
        elif isinstance(node, yaml.SequenceNode):
            stack.extend((item, [*path, i]) for i, item in enumerate(node.value))
    out.sort(key=lambda p: p.line or 0)


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
