from __future__ import annotations

import pytest

from heldout.data import placeholders, render
from heldout.errors import TemplateError


def test_placeholders_and_literal_braces() -> None:
    tpl = 'Return JSON like {{"name": "..."}} for: {input} ({language}) {input}'
    assert placeholders(tpl) == ["input", "language"]
    out = render(tpl, {"input": "Ana lives in Porto", "language": "en"})
    assert out == 'Return JSON like {"name": "..."} for: Ana lives in Porto (en) Ana lives in Porto'


def test_non_identifier_braces_are_left_alone() -> None:
    assert render("{ not a field } {input}", {"input": "x"}) == "{ not a field } x"


def test_missing_field_names_sample_and_fix() -> None:
    with pytest.raises(TemplateError, match=r"sample 's1'.*\{country\}.*it has: input"):
        render("{input} {country}", {"input": "x"}, sample_id="s1")
