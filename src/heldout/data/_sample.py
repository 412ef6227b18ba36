"""A gold-set sample and how its fields are found in a file."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

__all__ = ["FieldMap", "Sample"]


@dataclass(frozen=True, slots=True)
class Sample:
    """One held-out example: a unique id, the model input, the reference, and metadata.

    ``target`` keeps its JSON type: a label string, a list of spans, a JSON object ...
    ``metadata`` holds every other column (slice fields, template fields).
    """

    id: str
    input: str
    target: Any
    metadata: Mapping[str, Any] = field(default_factory=dict)

    def template_fields(self) -> dict[str, Any]:
        """Fields a prompt template may use: metadata, then ``id``, ``input``, ``target``."""
        return {**self.metadata, "id": self.id, "input": self.input, "target": self.target}


@dataclass(frozen=True, slots=True)
class FieldMap:
    """Which columns of a file hold the id, the input and the target."""

    id_field: str = "id"
    input_field: str = "input"
    target_field: str = "target"
    require_target: bool = True
