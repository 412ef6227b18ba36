"""The plan's judge in a run: its requests, the re-asks of replies that break the rubric's
schema, and what the judges concluded.

Requests (``judge_all``), per judge of the panel (roles ``judge``, ``judge_2`` …):

- pairwise (``mode`` pairwise or both): each gold sample twice, candidate first and base
  first (dataset "gold", ids = sample id + order);
- rubric (``mode`` rubric or both): every gold response of base, candidate and reference,
  and the base and candidate responses of each judged suite; ids ``dataset|model|sample``.
  Round k of re-asks is stored as dataset ``rubric:k`` (same ids, the prompt says what was
  wrong), so each attempt has its own cache entry and a rerun re-asks nothing that parsed.

Every request goes through the response cache and the backend's retries, replicas and rate
limits like any model's. :func:`analyse` turns the replies into :class:`Judged`: the
three-way table per criterion with paired deltas and the candidate's share of the reference,
agreement with people and between judges, the length-controlled win rate, self-preference,
what was neutralised in the answers, cost, the scores of judged suites, and per gate target
whether the judge may gate on it.
"""

from __future__ import annotations

import math
import time
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from itertools import combinations
from typing import Any

import numpy as np
import numpy.typing as npt

from heldout.backends import Backend, Generation, Request, ResponseCache
from heldout.judge import (
    Criterion,
    CriterionAgreement,
    JudgeSummary,
    LengthControlled,
    SelfPreference,
    aggregate_scores,
    cohen_kappa,
    combine,
    criterion_agreement,
    inter_judge,
    length_controlled,
    neutralise,
    nonce_for,
    pairwise_prompt,
    pairwise_self_preference,
    parse_scores,
    parse_verdict,
    rubric_prompt,
    self_preference,
    summarize,
)
from heldout.metrics import MetricResult
from heldout.plan import JudgeSpec, Plan, SuiteGuardrail
from heldout.runner._datasets import Dataset, external_metric, requests_for, subset
from heldout.runner._generate import GenerationSink, generate_async
from heldout.runner._records import interval_record
from heldout.runner._stages import ROLES, Datasets, Generations
from heldout.stats import Comparison, Interval, StatsOptions, compare, reference_ceiling

__all__ = [
    "BASE_FIRST",
    "CANDIDATE_FIRST",
    "Judged",
    "analyse",
    "judge_all",
    "judge_requests",
    "judge_roles",
    "judge_summary",
    "judged_datasets",
]

CANDIDATE_FIRST = "|candidate-first"
BASE_FIRST = "|base-first"
F64 = npt.NDArray[np.float64]


def judge_roles(spec: JudgeSpec) -> list[str]:
    """The role of each judge: ``judge`` for the first, ``judge_2`` … for the panel."""
    return ["judge"] + [f"judge_{i + 2}" for i in range(len(spec.panel))]


def _judged_roles(plan: Plan) -> list[str]:
    return [r for r in ROLES if getattr(plan.models, r) is not None]


# -- requests -------------------------------------------------------------------------------


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
        rubric = [c.description for c in spec.criteria()]
        for suffix, first, second in ((CANDIDATE_FIRST, c, b), (BASE_FIRST, b, c)):
            prompt = pairwise_prompt(r.prompt, first.text or "", second.text or "", rubric, nonce)
            out.append(Request(r.sample_id + suffix, prompt))
    return out


@dataclass(frozen=True, slots=True)
class RubricItem:
    """One response the rubric judge scores."""

    key: str  # dataset|model|sample
    dataset: str
    role: str
    sample_id: str
    prompt: str
    response: str
    target: str | None
    criteria: tuple[Criterion, ...]


def _judged_suites(plan: Plan) -> list[SuiteGuardrail]:
    return [g for g in plan.guardrails if isinstance(g, SuiteGuardrail) and g.judge]


def rubric_items(plan: Plan, datasets: Datasets, gens: Generations) -> list[RubricItem]:
    """Every response the rubric judge scores (a model's failed request has none)."""
    spec = plan.judge
    assert spec is not None
    criteria = spec.criteria()
    by_name = {c.name: c for c in criteria}
    todo: list[tuple[Dataset, list[str], tuple[Criterion, ...], bool]] = []
    if spec.mode in ("rubric", "both"):
        todo.append((datasets.gold, _judged_roles(plan), tuple(criteria), spec.show_target))
    for guard in _judged_suites(plan):
        chosen = tuple(by_name[n] for n in guard.judge or ())
        todo.append((datasets.get(f"suite:{guard.suite}"), ["base", "candidate"], chosen, False))
    out = []
    for ds, roles, chosen, show in todo:
        prompts = {r.sample_id: r.prompt for r in requests_for(ds, False)}
        targets = {s.id: s.target for s in ds.samples}
        for role in roles:
            outs = gens.get(role, ds.name)
            for s in ds.samples:
                g = outs.get(s.id)
                if g is None or not g.ok:
                    continue
                target = targets[s.id]
                out.append(
                    RubricItem(
                        f"{ds.name}|{role}|{s.id}", ds.name, role, s.id, prompts[s.id],
                        g.text or "", None if not show or target is None else str(target),
                        chosen,
                    )
                )  # fmt: skip
    return out


def _rubric_request(item: RubricItem, seed: int, error: str | None, attempt: int) -> Request:
    prompt = rubric_prompt(
        item.prompt, item.response, item.criteria, nonce_for(item.key, seed),
        target=item.target, error=error, attempt=attempt,
    )  # fmt: skip
    return Request(item.key, prompt)


async def judge_all(
    plan: Plan,
    datasets: Datasets,
    gens: Generations,
    backends: Mapping[str, Backend],
    *,
    cache: ResponseCache | None,
    sink: GenerationSink,
    refresh: bool,
    reporter: Callable[[str], Callable[[int, int], None]],
    timings: dict[str, float],
) -> None:
    """Every judge's pairwise verdicts and rubric scores, re-asking a judge whose rubric reply
    breaks the schema up to ``retries`` times; all replies go into ``gens``."""
    spec = plan.judge
    assert spec is not None
    seed = plan.stats.seed
    items = rubric_items(plan, datasets, gens)
    pairwise = spec.mode in ("pairwise", "both")
    for role in judge_roles(spec):
        t0 = time.perf_counter()
        backend = backends[role]
        common: dict[str, Any] = {"cache": cache, "sink": sink, "refresh": refresh}
        if pairwise:
            reqs = judge_requests(
                spec, datasets.gold, gens.get("base", "gold"), gens.get("candidate", "gold"), seed
            )
            outs = await generate_async(
                backend, reqs, role=role, dataset="gold", progress=reporter(f"{role} · pairwise"),
                **common,
            )  # fmt: skip
            gens.add(role, "gold", outs)
        pending, errors = items, dict[str, str | None]()
        for attempt in range(spec.retries + 1):
            if not pending:
                break
            label = "rubric" if attempt == 0 else f"rubric re-ask {attempt}"
            outs = await generate_async(
                backend,
                [_rubric_request(it, seed, errors.get(it.key), attempt) for it in pending],
                role=role, dataset=f"rubric:{attempt}", progress=reporter(f"{role} · {label}"),
                **common,
            )  # fmt: skip
            gens.add(role, f"rubric:{attempt}", outs)
            again = []
            for it in pending:
                g = outs[it.key]
                if not g.ok:
                    continue  # a request that failed after the backend's retries: counted
                reply = parse_scores(g.text, it.criteria)
                if reply.scores is None:
                    errors[it.key] = reply.error
                    again.append(it)
            pending = again
        timings[f"generate_{role}_s"] = time.perf_counter() - t0


# -- reading the replies --------------------------------------------------------------------


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
    """One judge's pairwise conclusion over the gold set (samples without both outputs left
    out)."""
    verdicts, lengths = _pairwise_verdicts(gold, base, cand, verdicts_by_request)
    outcomes = {k: combine(*v) for k, v in verdicts.items()}
    return summarize(
        outcomes, verdicts, lengths, human, min_agreement=spec.min_agreement,
        confidence=confidence,
    )  # fmt: skip


def _pairwise_verdicts(
    gold: Dataset,
    base: Mapping[str, Generation],
    cand: Mapping[str, Generation],
    verdicts_by_request: Mapping[str, Generation],
) -> tuple[dict[str, tuple[str | None, str | None]], dict[str, tuple[int, int]]]:
    verdicts: dict[str, tuple[str | None, str | None]] = {}
    lengths: dict[str, tuple[int, int]] = {}
    for s in gold.samples:
        one = verdicts_by_request.get(s.id + CANDIDATE_FIRST)
        two = verdicts_by_request.get(s.id + BASE_FIRST)
        if one is None or two is None:
            continue
        verdicts[s.id] = (_verdict(one), _verdict(two))
        lengths[s.id] = (len(cand[s.id].text or ""), len(base[s.id].text or ""))
    return verdicts, lengths


_VALUE = {"candidate": 1.0, "base": 0.0, "tie": 0.5, "inconsistent": 0.5}


def _panel_outcomes(per_judge: Sequence[Mapping[str, str | None]], how: str) -> dict[str, str]:
    """One pairwise outcome per sample from several judges: the mean of their values (1
    candidate, ½ tie, 0 base) or the majority outcome (a tie of counts is a tie)."""
    out: dict[str, str] = {}
    ids = dict.fromkeys(k for o in per_judge for k in o)
    for sid in ids:
        said = [o.get(sid) for o in per_judge]
        values = [_VALUE[v] for v in said if v is not None]
        if not values:
            continue
        if how == "mean":
            m = sum(values) / len(values)
        else:
            counts = Counter(values).most_common()
            m = counts[0][0] if len(counts) == 1 or counts[0][1] > counts[1][1] else 0.5
        out[sid] = "candidate" if m > 0.5 else "base" if m < 0.5 else "tie"
    return out


@dataclass(frozen=True, slots=True)
class CriterionTable:
    """One criterion (or 'overall') over the gold set: each model's mean, candidate − base
    paired, reference − base, and the candidate's share of the reference (0–1 rescaled)."""

    name: str
    low: float
    high: float
    means: dict[str, tuple[float | None, int]]  # model → (mean, responses scored)
    delta: Comparison  # candidate vs base
    reference_delta: Comparison | None
    share_of_reference: Interval | None


@dataclass(slots=True)
class Judged:
    """What the judges concluded: results.json's ``judge``, warnings, the judged suites'
    scores, and for each gate target (criterion, 'overall', 'win_rate') its comparison and
    whether the judge may gate on it."""

    record: dict[str, Any]
    warnings: list[str]
    tables: dict[str, CriterionTable] = field(default_factory=dict)
    win_rate: tuple[Interval, int] | None = None
    #: target → None when the judge may gate on it, else why not
    untrusted: dict[str, str] = field(default_factory=dict)
    suite_scores: dict[str, dict[str, MetricResult]] = field(default_factory=dict)
    suite_kept: dict[str, list[str]] = field(default_factory=dict)


def _final_replies(
    gens: Generations,
    role: str,
    retries: int,
    criteria_of: Mapping[str, Sequence[Criterion]],
) -> tuple[dict[str, dict[str, int]], dict[str, str]]:
    """Per rubric request id: the scores of the first attempt that parsed; else the last
    problem (``"failed: …"`` for a request that never got a reply)."""
    scores: dict[str, dict[str, int]] = {}
    problems: dict[str, str] = {}
    for attempt in range(retries + 1):
        name = f"rubric:{attempt}"
        if not gens.has(role, name):
            break
        for key, g in gens.get_raw(role, name).items():
            if key in scores:
                continue
            if not g.ok:
                problems[key] = f"failed: {g.error}"
                continue
            problems.pop(key, None)
            crit = criteria_of.get(key)
            reply = parse_scores(g.text, crit) if crit is not None else None
            if reply is not None and reply.scores is not None:
                scores[key] = dict(reply.scores)
            elif reply is not None:
                problems[key] = f"unparseable: {reply.error}"
    return scores, problems


def _arrays(
    ds: Dataset,
    roles: Sequence[str],
    criteria: Sequence[Criterion],
    scores: Mapping[str, Mapping[str, int]],
) -> dict[str, dict[str, F64]]:
    """role → criterion → scores over ``ds.samples`` (NaN where none)."""
    out: dict[str, dict[str, F64]] = {}
    for role in roles:
        per: dict[str, F64] = {}
        got = [scores.get(f"{ds.name}|{role}|{s.id}") for s in ds.samples]
        for c in criteria:
            per[c.name] = np.array(
                [np.nan if g is None else float(g[c.name]) for g in got], dtype=np.float64
            )
        out[role] = per
    return out


def _rescaled(values: F64, c: Criterion) -> F64:
    return np.asarray((values - c.low) / c.span, dtype=np.float64)


def _overall(per: Mapping[str, F64], criteria: Sequence[Criterion]) -> F64:
    """Mean over the criteria of the 0–1 rescaled scores (NaN where any is missing)."""
    stack = np.vstack([_rescaled(per[c.name], c) for c in criteria])
    return np.asarray(stack.mean(axis=0), dtype=np.float64)


def _result(name: str, values: F64) -> MetricResult:
    return MetricResult(name, float(values.mean()) if values.size else math.nan, values)


def _table(
    name: str,
    low: float,
    high: float,
    by_role: Mapping[str, F64],
    stats: StatsOptions,
) -> CriterionTable | None:
    """The three-way comparison of one criterion; None when base and candidate share no
    scored sample."""
    spec = external_metric(f"judge {name}", "the judge", bounds=(low, high))
    unit = external_metric(f"judge {name} (0–1)", "the judge", bounds=(0.0, 1.0))
    b, c = by_role["base"], by_role["candidate"]
    means = {
        role: (float(np.mean(v[~np.isnan(v)])) if np.any(~np.isnan(v)) else None,
               int(np.sum(~np.isnan(v))))
        for role, v in by_role.items()
    }  # fmt: skip
    both = ~np.isnan(b) & ~np.isnan(c)
    if not both.any():
        return None
    delta = compare(_result(name, b[both]), _result(name, c[both]), spec, stats)
    ref_delta = share = None
    r = by_role.get("reference")
    if r is not None:
        br = ~np.isnan(b) & ~np.isnan(r)
        if br.sum() >= 2:
            ref_delta = compare(_result(name, b[br]), _result(name, r[br]), spec, stats)
        every = both & ~np.isnan(r)
        if every.sum() >= 2:
            scale = high - low

            def unit_result(v: F64) -> MetricResult:
                return _result(name, (v[every] - low) / scale)

            share = reference_ceiling(
                unit_result(b), unit_result(c), unit_result(r), unit, stats
            ).share_of_reference
    return CriterionTable(name, low, high, means, delta, ref_delta, share)


def _table_record(t: CriterionTable, human: dict[str, Any] | None) -> dict[str, Any]:
    d = t.delta
    return {
        "criterion": t.name,
        "scale": [t.low, t.high],
        "means": {m: {"mean": v, "n": n} for m, (v, n) in t.means.items()},
        "n": d.n,
        "delta": interval_record(d.delta).model_dump(),
        "p_value": d.p_value if math.isfinite(d.p_value) else None,
        "reference_delta": None
        if t.reference_delta is None
        else interval_record(t.reference_delta.delta).model_dump(),
        "share_of_reference": None
        if t.share_of_reference is None
        else interval_record(t.share_of_reference).model_dump(),
        "human": human,
    }


def _human_record(a: CriterionAgreement | None) -> dict[str, Any] | None:
    if a is None:
        return None
    return {
        "n": a.n, "exact": a.exact, "within_one": a.within_one, "kappa": a.kappa,
        "rule": a.rule, "min_agreement": a.min_agreement, "trusted": a.trusted,
    }  # fmt: skip


def _fmt(v: float | None, spec: str = ".2f") -> str:
    return "n/a" if v is None or not math.isfinite(v) else format(v, spec)


def analyse(
    plan: Plan,
    datasets: Datasets,
    gens: Generations,
    backends: Mapping[str, Backend],
    human_labels: Mapping[str, str] | None,
    human_scores: Mapping[tuple[str, str], Mapping[str, int]] | None,
    stats: StatsOptions,
) -> Judged:
    """What the judges concluded (module docstring)."""
    spec = plan.judge
    assert spec is not None
    roles = judge_roles(spec)
    criteria = spec.criteria()
    gold = datasets.gold
    judged = _judged_roles(plan)
    record: dict[str, Any] = {"mode": spec.mode, "aggregate": spec.aggregate}
    warnings: list[str] = []
    lines: list[str] = []
    out = Judged(record, warnings)
    families = {r: getattr(getattr(plan.models, r), "family", None) for r in judged}
    judge_specs = dict(zip(roles, spec.judges(), strict=True))
    record["judges"] = [
        {"role": r, "identity": backends[r].identity(), "family": judge_specs[r].family}
        for r in roles
    ]

    # pairwise
    if spec.mode in ("pairwise", "both"):
        base, cand = gens.get("base", "gold"), gens.get("candidate", "gold")
        per_judge = []
        summaries = []
        for r in roles:
            v, lengths = _pairwise_verdicts(gold, base, cand, gens.get(r, "gold"))
            outcomes = {k: combine(*x) for k, x in v.items()}
            per_judge.append(outcomes)
            summaries.append(
                summarize(outcomes, v, lengths, human_labels, min_agreement=spec.min_agreement,
                          confidence=stats.confidence)
            )  # fmt: skip
        if len(roles) == 1:
            summary = summaries[0]
        else:
            v, lengths = _pairwise_verdicts(gold, base, cand, gens.get(roles[0], "gold"))
            agg: dict[str, str | None] = dict(_panel_outcomes(per_judge, spec.aggregate))
            summary = summarize(
                agg, v, lengths, human_labels, min_agreement=spec.min_agreement,
                confidence=stats.confidence,
            )  # fmt: skip
            record["pairwise_by_judge"] = [
                {"role": r, **_pairwise_record(s)} for r, s in zip(roles, summaries, strict=True)
            ]
            record["pairwise_panel_agreement"] = _pairwise_agreement(per_judge, roles)
        prefs = _pairwise_self_preference(
            per_judge, roles, [s.id for s in gold.samples], judge_specs, families, stats
        )
        record["self_preference"] = [_preference_record(p) for p in prefs]
        warnings += ["judge: " + p.describe() for p in prefs]
        pw = _pairwise_record(summary)
        record.update(pw)
        lines.append(_describe_pairwise(summary, len(roles)))
        warnings += _pairwise_warnings(summary)
        # the length-controlled win rate, on the aggregated outcomes
        final = summary_outcomes(per_judge, spec)
        ids = [s.id for s in gold.samples if s.id in final]
        y = [_VALUE[final[i]] for i in ids]
        diff = [len(cand[i].text or "") - len(base[i].text or "") for i in ids]
        lc = length_controlled(y, diff, stats.confidence)
        record["length_controlled"] = _lc_record(lc)
        lines.append(_describe_lc(lc))
        if summary.n:
            out.win_rate = (summary.win_rate, summary.n)
        if summary.human is None:
            out.untrusted["win_rate"] = "no human pairwise labels (judge.human_labels)"
        elif not summary.human.trusted:
            out.untrusted["win_rate"] = (
                f"the judge agrees with the human labels on {summary.human.agreement:.0%} of "
                f"{summary.human.n}, below min_agreement {spec.min_agreement:.0%}"
            )

    # rubric
    items = rubric_items(plan, datasets, gens)
    criteria_of = {it.key: it.criteria for it in items}
    finals = [_final_replies(gens, r, spec.retries, criteria_of) for r in roles]
    if items:
        problems = Counter(p.split(":", 1)[0] for _, probs in finals for p in probs.values())
        asked = len(items) * len(roles)
        record["rubric_replies"] = {
            "asked": asked,
            "scored": sum(len(s) for s, _ in finals),
            "unparseable": problems["unparseable"],
            "failed": problems["failed"],
            "re_asks": sum(
                len(gens.get_raw(r, f"rubric:{k}"))
                for r in roles
                for k in range(1, spec.retries + 1)
                if gens.has(r, f"rubric:{k}")
            ),
        }
        if problems["unparseable"]:
            example = next(
                (p for _, probs in finals for p in probs.values() if p.startswith("unparseable")),
                "",
            )
            warnings.append(
                f"judge: {problems['unparseable']} of {asked} rubric replies never matched the "
                f"schema after {spec.retries} re-ask(s) (left out of every mean, never scored; "
                f"e.g. {example.split(': ', 1)[-1][:120]})"
            )
    if spec.mode in ("rubric", "both"):
        per_judge_arrays = [_arrays(gold, judged, criteria, s) for s, _ in finals]
        agg_arrays = {
            m: {
                c.name: aggregate_scores([pj[m][c.name] for pj in per_judge_arrays], spec.aggregate)
                for c in criteria
            }
            for m in judged
        }
        index = {s.id: i for i, s in enumerate(gold.samples)}
        rows = []
        human_by_c: dict[str, CriterionAgreement | None] = {}
        for c in criteria:
            agreement = None
            if human_scores:
                ours, theirs = [], []
                for (m, sid), sc in human_scores.items():
                    if c.name in sc and sid in index and m in agg_arrays:
                        ours.append(agg_arrays[m][c.name][index[sid]])
                        theirs.append(float(sc[c.name]))
                if ours:
                    agreement = criterion_agreement(
                        c, ours, theirs, min_agreement=spec.min_agreement, rule=spec.agreement
                    )
            human_by_c[c.name] = agreement
            if agreement is None:
                out.untrusted[c.name] = f"no human scores for {c.name!r} (judge.human_scores)"
            elif not agreement.trusted:
                out.untrusted[c.name] = (
                    f"the judge agrees with people on {c.name} for {agreement.agreement:.0%} "
                    f"of {agreement.n} ({agreement.rule.replace('_', ' ')}), below "
                    f"min_agreement {spec.min_agreement:.0%}"
                )
            t = _table(c.name, c.low, c.high, {m: agg_arrays[m][c.name] for m in judged}, stats)
            if t is not None:
                out.tables[c.name] = t
                rows.append(_table_record(t, _human_record(agreement)))
        overall = {m: _overall(agg_arrays[m], criteria) for m in judged}
        t = _table("overall", 0.0, 1.0, overall, stats)
        if t is not None:
            out.tables["overall"] = t
            rows.append(_table_record(t, None))
        bad = [c.name for c in criteria if c.name in out.untrusted]
        if bad:
            out.untrusted["overall"] = f"not every criterion is trusted ({', '.join(bad)})"
        record["rubric"] = {
            "criteria": [
                {"name": c.name, "description": c.description, "scale": [c.low, c.high]}
                for c in criteria
            ],
            "table": rows,
            "note": "means on each criterion's scale; overall is the mean of the criteria "
            "rescaled to 0–1; share_of_reference is candidate / reference on the 0–1 "
            "rescaled scores (the scale's floor counts as 0), with a paired bootstrap CI",
        }
        lines += _describe_rubric(out.tables, human_by_c)
        if len(roles) > 1:
            record["rubric"]["panel_agreement"] = {
                c.name: _panel_agreement(c, per_judge_arrays, judged, roles) for c in criteria
            }
        # self-preference: a judge of the same declared family as a judged model
        overall_by_judge = {
            r: {m: _overall(pj[m], criteria) for m in judged}
            for r, pj in zip(roles, per_judge_arrays, strict=True)
        }
        prefs = []
        for r in roles:
            fam = judge_specs[r].family
            for m in judged:
                if fam is not None and families.get(m) is not None and families[m] == fam:
                    sp = self_preference(r, fam, m, overall_by_judge, stats.confidence)
                    prefs.append(sp)
                    warnings.append("judge: " + sp.describe())
        record["self_preference"] = [
            *record.get("self_preference", []),
            *(_preference_record(p) for p in prefs),
        ]

    else:
        for c in criteria:
            out.untrusted[c.name] = (
                "the judge is calibrated on the gold set's rubric scores, and judge.mode is "
                "pairwise: set it to rubric or both"
            )

    # judged suites
    for g in _judged_suites(plan):
        ds = datasets.get(f"suite:{g.suite}")
        chosen = [c for c in criteria if c.name in (g.judge or ())]
        per_judge_arrays = [_arrays(ds, ["base", "candidate"], chosen, s) for s, _ in finals]
        suite_arrays = {
            m: {
                c.name: aggregate_scores([pj[m][c.name] for pj in per_judge_arrays], spec.aggregate)
                for c in chosen
            }
            for m in ("base", "candidate")
        }
        values = {m: _overall(suite_arrays[m], chosen) for m in suite_arrays}
        keep = ~np.isnan(values["base"]) & ~np.isnan(values["candidate"])
        out.suite_kept[ds.name] = [s.id for s, k in zip(ds.samples, keep, strict=True) if k]
        out.suite_scores[ds.name] = {m: _result(ds.spec.name, v[keep]) for m, v in values.items()}
        dropped = int((~keep).sum())
        if dropped:
            warnings.append(
                f"judge: {dropped} of {len(ds.samples)} samples of suite {g.suite} have no "
                "usable judge score for base or candidate (left out of its comparison)"
            )

    # what the answers said to the judge
    record["injection"] = _injection_record(plan, datasets, gens, judged, warnings, lines)
    record["cost"] = _cost_record(gens, roles)
    lines.append(_describe_cost(record["cost"]))
    record["gating"] = {
        "untrusted": dict(out.untrusted),
        "note": "a judge guardrail gates only on what the judge agrees with people on "
        "(min_agreement); the rest is reported",
    }
    record["lines"] = lines
    record["description"] = " ".join(lines)
    return out


def judged_datasets(datasets: Datasets, judged: Judged) -> Datasets:
    """The datasets with each judged suite cut to the samples the judge scored for both
    models (the comparison stays paired)."""
    if not judged.suite_kept:
        return datasets
    suites = []
    for ds in datasets.suites:
        kept = judged.suite_kept.get(ds.name)
        if kept is None:
            suites.append(ds)
            continue
        ids = set(kept)
        suites.append(subset(ds, [s for s in ds.samples if s.id in ids]))
    return Datasets(datasets.gold, tuple(suites), datasets.smoke, datasets.train)


def summary_outcomes(
    per_judge: Sequence[Mapping[str, str | None]], spec: JudgeSpec
) -> dict[str, str]:
    """The per-sample outcome the summary counted (one judge's, or the panel's)."""
    if len(per_judge) == 1:
        return {k: v for k, v in per_judge[0].items() if v is not None}
    return _panel_outcomes(per_judge, spec.aggregate)


def _panel_agreement(
    c: Criterion,
    per_judge_arrays: Sequence[Mapping[str, Mapping[str, F64]]],
    judged: Sequence[str],
    roles: Sequence[str],
) -> dict[str, Any]:
    """Agreement between the judges on one criterion, over every judged response."""
    stacked = [np.concatenate([pj[m][c.name] for m in judged]) for pj in per_judge_arrays]
    return inter_judge(c, stacked, list(roles))


def _preference_record(p: SelfPreference) -> dict[str, Any]:
    return {
        "judge": p.judge, "model": p.model, "family": p.family, "n": p.n, "unit": p.unit,
        "gap": None if p.gap is None else interval_record(p.gap).model_dump(),
        "description": p.describe(),
    }  # fmt: skip


def _pairwise_agreement(
    per_judge: Sequence[Mapping[str, str | None]], roles: Sequence[str]
) -> list[dict[str, Any]]:
    """Each pair of judges: on how many samples they reach the same outcome, and Cohen's
    kappa over candidate / base / tie (a position-inconsistent verdict is a tie)."""
    out = []
    for i, j in combinations(range(len(roles)), 2):
        a, b = per_judge[i], per_judge[j]
        ids = [k for k in a if a[k] is not None and b.get(k) is not None]
        x = ["tie" if a[k] == "inconsistent" else str(a[k]) for k in ids]
        y = ["tie" if b[k] == "inconsistent" else str(b[k]) for k in ids]
        out.append({
            "judges": f"{roles[i]} / {roles[j]}", "n": len(ids),
            "agreement": sum(p == q for p, q in zip(x, y, strict=True)) / len(ids) if ids else None,
            "kappa": cohen_kappa(x, y) if ids else None,
        })  # fmt: skip
    return out


def _pairwise_self_preference(
    per_judge: Sequence[Mapping[str, str | None]],
    roles: Sequence[str],
    ids: Sequence[str],
    judge_specs: Mapping[str, Any],
    families: Mapping[str, str | None],
    stats: StatsOptions,
) -> list[SelfPreference]:
    """A judge sharing a declared family with the base or the candidate, with its gap."""
    values = {
        r: np.array(
            [np.nan if o.get(k) is None else _VALUE[str(o[k])] for k in ids], dtype=np.float64
        )
        for r, o in zip(roles, per_judge, strict=True)
    }
    prefs = []
    for r in roles:
        fam = judge_specs[r].family
        for m in ("base", "candidate"):
            if fam is not None and families.get(m) == fam:
                prefs.append(pairwise_self_preference(r, fam, m, values, stats.confidence))
    return prefs


def _pairwise_record(s: JudgeSummary) -> dict[str, Any]:
    return {
        "method": "pairwise, each sample judged twice with positions swapped",
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
    }


def _describe_pairwise(s: JudgeSummary, judges: int) -> str:
    wr = s.win_rate
    trust = (
        "no human labels (unchecked)"
        if s.human is None
        else f"agrees with human labels on {s.human.agreement:.0%} of {s.human.n} "
        f"(kappa {s.human.kappa:.2f}): {'trusted' if s.human.trusted else 'NOT trusted'}"
    )
    who = "judge" if judges == 1 else f"judge panel of {judges}"
    return (
        f"{who} (pairwise, positions swapped, n={s.n}): candidate wins {s.candidate_wins}, "
        f"base wins {s.base_wins}, ties {s.ties} ({s.inconsistent} position-inconsistent); "
        f"candidate win rate {wr.estimate:.3f} [{wr.low:.3f}, {wr.high:.3f}], sign test "
        f"p={s.sign_test_p:.2g}; {trust}."
    )


def _pairwise_warnings(s: JudgeSummary) -> list[str]:
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
            f"(p={s.longer_wins_p:.2g}): it may reward length (see the length-controlled "
            "win rate)"
        )
    if s.unparseable:
        warnings.append(f"judge: no verdict for {s.unparseable} sample(s) (left out, counted)")
    return warnings


def _lc_record(lc: LengthControlled) -> dict[str, Any]:
    return {
        "n": lc.n,
        "raw": lc.raw if math.isfinite(lc.raw) else None,
        "win_rate": None if lc.win_rate is None else interval_record(lc.win_rate).model_dump(),
        "length_slope": lc.slope,
        "length_slope_p": lc.slope_p,
        "reason": lc.reason,
        "method": "fractional logit of the outcome on tanh(length difference / its SD), as "
        "AlpacaEval 2; the win rate at equal length, HC0 delta-method CI",
    }


def _describe_lc(lc: LengthControlled) -> str:
    if lc.win_rate is None:
        return f"Length-controlled win rate: not estimable ({lc.reason})."
    w = lc.win_rate
    return (
        f"Length-controlled win rate {w.estimate:.3f} [{w.low:.3f}, {w.high:.3f}] (raw "
        f"{lc.raw:.3f}; length effect {_fmt(lc.slope)} logits per SD, p={_fmt(lc.slope_p, '.2g')})."
    )


def _describe_rubric(
    tables: Mapping[str, CriterionTable], human: Mapping[str, CriterionAgreement | None]
) -> list[str]:
    out = []
    for name, t in tables.items():
        d = t.delta.delta
        means = ", ".join(f"{m} {_fmt(v)}" for m, (v, _) in t.means.items())
        text = (
            f"Rubric {name} ({_fmt(t.low, 'g')}–{_fmt(t.high, 'g')}): {means}; candidate − base "
            f"{d.estimate:+.2f} [{d.low:+.2f}, {d.high:+.2f}] (n={t.delta.n})"
        )
        if t.share_of_reference is not None:
            s = t.share_of_reference
            text += f"; candidate at {s.estimate:.0%} [{s.low:.0%}, {s.high:.0%}] of the reference"
        a = human.get(name)
        if a is not None:
            text += (
                f"; agrees with people {a.exact:.0%} exactly, {a.within_one:.0%} within one, "
                f"weighted kappa {_fmt(a.kappa)} (n={a.n}): "
                f"{'trusted' if a.trusted else 'NOT trusted'}"
            )
        out.append(text + ".")
    return out


def _injection_record(
    plan: Plan,
    datasets: Datasets,
    gens: Generations,
    judged: Sequence[str],
    warnings: list[str],
    lines: list[str],
) -> dict[str, Any]:
    """Which judged answers addressed the judge or imitated its delimiters (neutralised
    before the judge saw them), per sample."""
    names = ["gold"] + [f"suite:{g.suite}" for g in _judged_suites(plan)]
    flagged = []
    kinds: Counter[str] = Counter()
    by_model: Counter[str] = Counter()
    for name in names:
        ds = datasets.get(name)
        for m in judged if name == "gold" else ("base", "candidate"):
            outs = gens.get(m, name)
            for s in ds.samples:
                g = outs.get(s.id)
                if g is None or not g.ok:
                    continue
                n = neutralise(g.text or "")
                if n.flagged:
                    flagged.append(
                        {"dataset": name, "model": m, "id": s.id, "flags": list(n.flags)}
                    )
                    kinds.update(n.flags)
                    by_model[m] += 1
    if flagged:
        said = ", ".join(f"{m} {n}" for m, n in by_model.items())
        warnings.append(
            f"judge: {len(flagged)} answer(s) addressed the judge or imitated its delimiters "
            f"({said}); neutralised before judging, listed per sample in the report"
        )
        lines.append(
            f"Injection guard: {len(flagged)} answer(s) neutralised ({said}; "
            + ", ".join(f"{k} {v}" for k, v in kinds.items())
            + ")."
        )
    return {
        "flagged": len(flagged),
        "by_model": dict(by_model),
        "kinds": dict(kinds),
        "samples": flagged[:500],
    }


def _cost_record(gens: Generations, roles: Sequence[str]) -> dict[str, Any]:
    outs = [g for r in roles for g in gens.of_role(r)]
    sent = [g for g in outs if not g.cached]

    def total(gs: Sequence[Generation], attr: str) -> float | None:
        vals = [getattr(g, attr) for g in gs if getattr(g, attr) is not None]
        return float(sum(vals)) if vals else None

    return {
        "requests": len(outs),
        "cached": len(outs) - len(sent),
        "sent": len(sent),
        "prompt_tokens_sent": total(sent, "prompt_tokens"),
        "completion_tokens_sent": total(sent, "completion_tokens"),
        "cost_sent": total(sent, "cost"),
        "prompt_tokens_total": total(outs, "prompt_tokens"),
        "completion_tokens_total": total(outs, "completion_tokens"),
        "cost_total": total(outs, "cost"),
    }


def _describe_cost(c: Mapping[str, Any]) -> str:
    tokens = (c["prompt_tokens_sent"] or 0) + (c["completion_tokens_sent"] or 0)
    cost = "" if c["cost_sent"] is None else f", cost {c['cost_sent']:.4f}"
    return (
        f"Judge calls: {c['requests']} ({c['cached']} from the cache, {c['sent']} sent this run: "
        f"{tokens:g} tokens{cost})."
    )
