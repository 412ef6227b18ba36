"""Built-in regression suites: what a fine-tune must not break, graded by verifiable rules.

Name one in the plan with no ``data``::

    guardrails:
      - {suite: general, max_drop: 0.05}
      - {suite: format_obsession, max_drop: 0.05}

Each suite is a frozen JSONL file shipped with heldout (built by ``heldout.suites._build``;
its sha256 goes into the plan lock, so a changed suite is a visible plan change) and scored
by a grader from :mod:`heldout.metrics.graders` — no judge model, no downloads.

They are small (80–400 prompts each): they catch a fine-tune that *breaks* a skill (a drop of
10–20 points), not a 1-point slip; ``heldout power`` and the report's "samples needed"
say what a tighter margin would take. For a tighter check bring a larger suite with
``data:``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from heldout.errors import UnknownNameError

__all__ = ["BUILTIN_SUITES", "BuiltinSuite", "builtin_suite", "builtin_suite_file"]

_DATA = Path(__file__).parent / "data"

#: Prefix naming a built-in suite file in plan references and the lock.
PREFIX = "heldout:"


@dataclass(frozen=True, slots=True)
class BuiltinSuite:
    """A shipped suite: its grader (a registered metric) and what it guards."""

    name: str
    metric: str
    description: str
    #: Metadata field whose values a failed guardrail breaks its scores down by.
    breakdown: str | None = None
    version: str = "1"

    @property
    def reference(self) -> str:
        """How plans and locks name its file (``heldout:suites/<name>.jsonl``)."""
        return f"{PREFIX}suites/{self.name}.jsonl"

    @property
    def path(self) -> Path:
        return _DATA / f"{self.name}.jsonl"

    @property
    def size(self) -> int:
        """Prompts in the frozen file (one JSON object per line)."""
        return self.path.read_bytes().count(b"\n")


BUILTIN_SUITES: dict[str, BuiltinSuite] = {
    s.name: s
    for s in [
        BuiltinSuite(
            "general",
            "final_answer",
            "400 short questions with one checkable answer: arithmetic, word problems, "
            "comparisons, sequences, calendar, units, spelling, capital cities",
            breakdown="skill",
        ),
        BuiltinSuite(
            "instruction_following",
            "follows_instructions",
            "300 IFEval-style prompts with 1–2 verifiable constraints each (length, case, "
            "bullets, paragraphs, JSON keys, required words, ending phrase, ...)",
        ),
        BuiltinSuite(
            "format_obsession",
            "follows_instructions",
            "210 prompts asking for plain prose, one word, a number, a comma-separated list, "
            "paragraphs or bullets: catches a fine-tune that answers everything in its "
            "trained format (JSON, a label)",
            breakdown="format",
        ),
        BuiltinSuite(
            "multilingual",
            "language_match",
            "120 everyday questions in French, German, Spanish, Italian, Portuguese and Dutch "
            "that must be answered in their language: catches a fine-tune on English data "
            "that stopped following the user's language",
            breakdown="language",
        ),
        BuiltinSuite(
            "safety",
            "refusal_rate",
            "80 clearly harmful requests that must be refused (refusal-phrase grader)",
        ),
        BuiltinSuite(
            "over_refusal",
            "compliance_rate",
            "80 safe requests that only sound risky ('kill a Python process') that must not "
            "be refused",
        ),
    ]
}


def builtin_suite(name: str) -> BuiltinSuite:
    """The built-in suite ``name``; unknown names raise, listing the known ones."""
    try:
        return BUILTIN_SUITES[name]
    except KeyError:
        raise UnknownNameError("suite", name, sorted(BUILTIN_SUITES)) from None


def builtin_suite_file(reference: str) -> Path | None:
    """The file a ``heldout:suites/<name>.jsonl`` reference names, or None for other paths."""
    if not reference.startswith(PREFIX):
        return None
    name = Path(reference[len(PREFIX) :]).stem
    return builtin_suite(name).path
