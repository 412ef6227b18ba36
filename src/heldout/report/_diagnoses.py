"""Diagnoses with evidence: the causes the method names for common symptoms (outputs cut
off, refusals of safe prompts, format obsession, a train-vs-held-out gap), each with the
counts or intervals behind it; never a guess without numbers."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from heldout.report._format import fmt
from heldout.results import RunResult
from heldout.results._table import SampleBlock, SampleTable, flag_code

__all__ = ["Diagnosis", "diagnose", "overfitting"]

_TRUNCATED = flag_code(["truncated"])


@dataclass(frozen=True, slots=True)
class Diagnosis:
    """A symptom the method names, its likely cause and fix, with the counts behind it."""

    symptom: str
    cause: str
    fix: str
    dataset: str
    base: int  # samples showing the symptom, base model
    candidate: int  # and candidate
    n: int
    examples: list[str]  # candidate sample ids that show it
    #: The numbers, where they are not counts (the train-vs-held-out gap).
    text: str = ""

    @property
    def evidence(self) -> str:
        return self.text or (f"candidate {self.candidate:,} of {self.n:,}, base {self.base:,}")


def _unterminated_json(text: str | None) -> bool:
    """Output that opens a JSON object or array and does not close it: cut off mid-answer.
    More brackets opened than closed (a crude count: strings may hold brackets) and not
    valid JSON; the counts (C speed) spare the parse for the outputs that close."""
    t = (text or "").strip()
    if not t or t[0] not in "{[":
        return False
    if t.count("{") + t.count("[") <= t.count("}") + t.count("]"):
        return False
    try:
        json.loads(t)
    except ValueError:
        return True
    return False


def _count_where(block: SampleBlock, test: Any) -> list[int]:
    return [i for i in range(len(block)) if test(block, i)]


def diagnose(table: SampleTable) -> list[Diagnosis]:
    """The causes the method lists for common symptoms, each with its counts and examples,
    reported only where the candidate shows the symptom on at least 3 samples (and 1% of
    them) more than the base does."""
    pairs: dict[str, dict[str, SampleBlock]] = {}
    for b in table.blocks:
        pairs.setdefault(b.dataset, {})[b.model] = b
    out: list[Diagnosis] = []

    def add(dataset: str, symptom: str, cause: str, fix: str, test: Any) -> None:
        models = pairs.get(dataset, {})
        cand, base = models.get("candidate"), models.get("base")
        if cand is None or base is None:
            return
        hit_c, hit_b = _count_where(cand, test), _count_where(base, test)
        if len(hit_c) - len(hit_b) >= max(3, 0.01 * len(cand)):
            ids = [str(cand.ids[i]) for i in hit_c[:5]]
            out.append(
                Diagnosis(symptom, cause, fix, dataset, len(hit_b), len(hit_c), len(cand), ids)
            )

    def cut_off(b: SampleBlock, i: int) -> bool:
        return bool(b.codes[i] & _TRUNCATED) or _unterminated_json(b.outputs[i])

    def failed_suite(b: SampleBlock, i: int) -> bool:
        metric = next(iter(b.scores), None)
        return metric is not None and float(b.scores[metric][i]) == 0.0

    for dataset in pairs:
        add(
            dataset,
            "outputs cut off (finish_reason: length, or JSON left open)",
            "the answer needs more tokens than generation allows, or the fine-tune learned "
            "to run on (training sequences cut at the sequence length)",
            "raise max_tokens in the plan's generation settings, or the training sequence "
            "length; check that training examples end with the end-of-sequence token",
            cut_off,
        )
    add(
        "suite:over_refusal",
        "refusals up on safe prompts",
        "the fine-tune learned to refuse requests that only sound risky",
        "add training examples that answer similar safe questions",
        failed_suite,
    )
    add(
        "suite:format_obsession",
        "answers in the trained format where prose was asked",
        "format obsession: every answer comes out in the fine-tune's format",
        "mix in training examples that ask for other formats (prose, one word, lists)",
        failed_suite,
    )
    return out


def overfitting(result: RunResult) -> list[Diagnosis]:
    """The train-vs-held-out gap, where the plan scored a train_sample and the candidate's
    lift on its training rows exceeds its lift on the gold set beyond doubt."""
    o = result.overfitting
    if o is None or not o.overfitting:
        return []
    t, g, e = o.train_lift, o.gold_lift, o.excess
    text = (
        f"lift over the base {fmt(t.estimate, signed=True)} [{fmt(t.low, signed=True)}, "
        f"{fmt(t.high, signed=True)}] on {o.n_train:,} training rows against "
        f"{fmt(g.estimate, signed=True)} [{fmt(g.low, signed=True)}, {fmt(g.high, signed=True)}] "
        f"on the gold set: {fmt(e.estimate, signed=True)} more [{fmt(e.low, signed=True)}, "
        f"{fmt(e.high, signed=True)}]"
    )
    return [
        Diagnosis(
            "a train-vs-held-out gap",
            "overfitting: the candidate learned its training rows more than the task",
            "fewer epochs or a lower learning rate, more varied training data, early stopping "
            "on a held-out split",
            "train",
            0,
            0,
            o.n_train,
            [],
            text,
        )
    ]
