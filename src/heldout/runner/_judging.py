"""The plan's judge in a run: its requests (each gold sample twice, positions swapped) and
what it concluded, as plain data for results.json and warnings for the verdict's reader."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from heldout.backends import Generation, Request
from heldout.judge import (
    JudgeSummary,
    combine,
    nonce_for,
    pairwise_prompt,
    parse_verdict,
    summarize,
)
from heldout.plan import JudgeSpec
from heldout.runner._datasets import Dataset, requests_for
from heldout.runner._records import interval_record

__all__ = ["BASE_FIRST", "CANDIDATE_FIRST", "judge_record", "judge_requests", "judge_summary"]

CANDIDATE_FIRST = "|candidate-first"
BASE_FIRST = "|base-first"


def judge_requests(
    spec: JudgeSpec,
    gold: Dataset,
    base: Mapping[str, Generation],
    cand: Mapping[str, Generation],
    seed: int,
) -> list[Request]:
    """Two requests per gold sample both models answered: candidate as A, then base as A."""
    out = []
    for r in requests_for(gold, False):
        b, c = base[r.sample_id], cand[r.sample_id]
        if not (b.ok and c.ok):
            continue
        nonce = nonce_for(r.sample_id, seed)
        for suffix, first, second in ((CANDIDATE_FIRST, c, b), (BASE_FIRST, b, c)):
            prompt = pairwise_prompt(
                r.prompt, first.text or "", second.text or "", spec.rubric, nonce
            )
            out.append(Request(r.sample_id + suffix, prompt))
    return out


def _verdict(g: Generation) -> str | None:
    return parse_verdict(g.text) if g.ok and g.text is not None else None


def judge_summary(
    spec: JudgeSpec,
    gold: Dataset,
    base: Mapping[str, Generation],
    cand: Mapping[str, Generation],
    verdicts_by_request: Mapping[str, Generation],
    human: Mapping[str, str] | None,
    confidence: float,
) -> JudgeSummary:
    """What the judge concluded over the gold set (samples without both outputs left out)."""
    verdicts: dict[str, tuple[str | None, str | None]] = {}
    lengths: dict[str, tuple[int, int]] = {}
    for s in gold.samples:
        one = verdicts_by_request.get(s.id + CANDIDATE_FIRST)
        two = verdicts_by_request.get(s.id + BASE_FIRST)
        if one is None or two is None:
            continue
        verdicts[s.id] = (_verdict(one), _verdict(two))
        lengths[s.id] = (len(cand[s.id].text or ""), len(base[s.id].text or ""))
    outcomes = {k: combine(*v) for k, v in verdicts.items()}
    return summarize(
        outcomes,
        verdicts,
        lengths,
        human,
        min_agreement=spec.min_agreement,
        confidence=confidence,
    )


def describe(s: JudgeSummary) -> str:
    """One line for terminals and reports."""
    wr = s.win_rate
    trust = (
        "no human labels (unchecked)"
        if s.human is None
        else f"agrees with human labels on {s.human.agreement:.0%} of {s.human.n} "
        f"(kappa {s.human.kappa:.2f}): {'trusted' if s.human.trusted else 'NOT trusted'}"
    )
    return (
        f"judge (pairwise, positions swapped, n={s.n}): candidate wins {s.candidate_wins}, "
        f"base wins {s.base_wins}, ties {s.ties} ({s.inconsistent} position-inconsistent); "
        f"candidate win rate {wr.estimate:.3f} [{wr.low:.3f}, {wr.high:.3f}], sign test "
        f"p={s.sign_test_p:.2g}; {trust}; reported, not gated"
    )


def judge_record(summary: JudgeSummary, spec: JudgeSpec) -> tuple[dict[str, Any], list[str]]:
    """The summary as results.json stores it, and the warnings a reader must see."""
    s = summary
    record: dict[str, Any] = {
        "method": "pairwise, each sample judged twice with positions swapped",
        "rubric": list(spec.rubric),
        "n": s.n,
        "candidate_wins": s.candidate_wins,
        "base_wins": s.base_wins,
        "ties": s.ties,
        "inconsistent": s.inconsistent,
        "unparseable": s.unparseable,
        "win_rate": interval_record(s.win_rate).model_dump(),
        "sign_test_p": s.sign_test_p,
        "first_position_rate": s.first_position_rate,
        "first_position_p": s.first_position_p,
        "longer_wins_rate": s.longer_wins_rate,
        "longer_wins_p": s.longer_wins_p,
        "human": None
        if s.human is None
        else {
            "n": s.human.n,
            "agreement": s.human.agreement,
            "kappa": s.human.kappa,
            "min_agreement": s.human.min_agreement,
        },
        "trusted": s.trusted,
        "description": describe(s),
    }
    warnings = []
    if s.human is not None and not s.human.trusted:
        warnings.append(
            f"judge: agrees with the human labels on {s.human.agreement:.0%} of {s.human.n} "
            f"samples (kappa {s.human.kappa:.2f}), below min_agreement "
            f"{s.human.min_agreement:.0%}: its win rate is reported, not trusted"
        )
    if s.n and s.inconsistent / s.n > 0.2:
        warnings.append(
            f"judge: its verdict flipped with the order of the responses on "
            f"{s.inconsistent / s.n:.0%} of samples (counted as ties)"
        )
    if s.first_position_rate is not None and s.first_position_p < 0.05:
        warnings.append(
            f"judge: picked the first response in {s.first_position_rate:.0%} of its decisive "
            f"judgments (p={s.first_position_p:.2g}): position bias"
        )
    if s.longer_wins_rate is not None and s.longer_wins_rate > 0.5 and s.longer_wins_p < 0.05:
        warnings.append(
            f"judge: the longer response won {s.longer_wins_rate:.0%} of decisive samples "
            f"(p={s.longer_wins_p:.2g}): it may reward length"
        )
    if s.unparseable:
        warnings.append(f"judge: no verdict for {s.unparseable} sample(s) (left out, counted)")
    return record, warnings
