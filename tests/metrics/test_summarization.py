"""ROUGE against Google's rouge-score; the faithfulness proxy on hand-made cases."""

from __future__ import annotations

import json
import random
from pathlib import Path

import numpy as np
import pytest
from rouge_score import rouge_scorer

from heldout.errors import MetricInputError
from heldout.metrics import MetricOptions, get_metric
from heldout.metrics.summarization import _lcs_indices, lcs_length, rouge, unsupported_claims

TYPES = ["rouge1", "rouge2", "rougeL", "rougeLsum"]
VOCAB = (
    "the a cat cats running runs ran dog dogs quickly quick happy happily report reports "
    "reported market markets 2024 3.5% Paris, It's well-known! und Ärger naïve"
).split()


def _text(rng: random.Random) -> str:
    sents = []
    for _ in range(rng.randint(0, 4)):
        sents.append(" ".join(rng.choice(VOCAB) for _ in range(rng.randint(0, 14))))
    return "\n".join(sents)


@pytest.mark.parametrize("stem", [False, True])
def test_identical_to_rouge_score(stem: bool) -> None:
    rng = random.Random(int(stem))
    targets = [_text(rng) for _ in range(300)]
    preds = [_text(rng) for _ in range(300)]
    preds[:5] = targets[:5]
    ours = rouge(targets, preds, TYPES, stem=stem)
    scorer = rouge_scorer.RougeScorer(TYPES, use_stemmer=stem)
    for i, (t, p) in enumerate(zip(targets, preds, strict=True)):
        expected = scorer.score(t, p)
        for rt in TYPES:
            np.testing.assert_allclose(ours[rt][i], tuple(expected[rt]), rtol=0, atol=1e-12)


def test_multiple_references_take_the_best() -> None:
    rng = random.Random(5)
    targets = [[_text(rng) for _ in range(3)] for _ in range(100)]
    preds = [_text(rng) for _ in range(100)]
    ours = rouge(targets, preds, TYPES)
    scorer = rouge_scorer.RougeScorer(TYPES)
    for i, (t, p) in enumerate(zip(targets, preds, strict=True)):
        expected = scorer.score_multi(t, p)
        for rt in TYPES:
            np.testing.assert_allclose(ours[rt][i], tuple(expected[rt]), rtol=0, atol=1e-12)


def test_lcs_length_against_dynamic_programming() -> None:
    rng = random.Random(9)
    for _ in range(300):
        a = [rng.choice("abcde") for _ in range(rng.randint(0, 90))]
        b = [rng.choice("abcde") for _ in range(rng.randint(0, 90))]
        table = [[0] * (len(b) + 1) for _ in range(len(a) + 1)]
        for i in range(1, len(a) + 1):
            for j in range(1, len(b) + 1):
                table[i][j] = (
                    table[i - 1][j - 1] + 1
                    if a[i - 1] == b[j - 1]
                    else max(table[i - 1][j], table[i][j - 1])
                )
        assert lcs_length(a, b) == table[-1][-1]


def test_lsum_lcs_walk_is_rouge_scores_on_small_alphabets() -> None:
    """The union-LCS of ROUGE-Lsum depends on which LCS the backtrack picks: the bit-parallel
    rows must reproduce rouge-score's table walk, tie for tie (small alphabets, long rows,
    many ties; sequences longer than 64 tokens cross machine-word boundaries)."""
    from rouge_score.rouge_scorer import _backtrack_norec, _lcs_table

    rng = random.Random(11)
    for _ in range(2000):
        a = [rng.choice("abcd"[: rng.randint(1, 4)]) for _ in range(rng.randint(1, 80))]
        b = [rng.choice("abcd") for _ in range(rng.randint(1, 80))]
        assert _lcs_indices(a, b) == _backtrack_norec(_lcs_table(a, b), a, b), (a, b)


def test_single_sentence_lsum_equals_rouge_score_with_repeated_tokens() -> None:
    """One sentence each takes the ROUGE-L shortcut: it must still be rouge-score's Lsum,
    also where repeated tokens would make count clipping matter."""
    rng = random.Random(12)
    words = ["ran", "ran", "the", "the", "a", "cat", ".", "x"]
    targets = [" ".join(rng.choice(words) for _ in range(rng.randint(0, 30))) for _ in range(500)]
    preds = [" ".join(rng.choice(words) for _ in range(rng.randint(0, 30))) for _ in range(500)]
    ours = rouge(targets, preds, ["rougeLsum"])["rougeLsum"]
    scorer = rouge_scorer.RougeScorer(["rougeLsum"])
    expected = np.array(
        [tuple(scorer.score(t, p)["rougeLsum"]) for t, p in zip(targets, preds, strict=True)]
    )
    np.testing.assert_allclose(ours, expected, rtol=0, atol=1e-12)


@pytest.mark.parametrize("stem", [False, True])
def test_long_texts_and_the_64_token_lane_edge_match_rouge_score(stem: bool) -> None:
    """ROUGE-L runs on 64-bit lanes where one side has at most 64 tokens and on Python
    integers where both are longer: lengths around 64 on either side, long texts with
    newlines (Lsum's union LCS), repeated tokens, rouge3, all through the tuple path that
    a run takes (shared by every registered ROUGE metric) and against rouge-score."""
    rng = random.Random(21 + int(stem))
    words = [*VOCAB[:8], "running", "ran"]

    def text(n: int, lines: bool) -> str:
        toks = [rng.choice(words) for _ in range(n)]
        if lines:
            return "\n".join(" ".join(toks[i : i + 20]) for i in range(0, n, 20))
        return " ".join(toks)

    lengths = [1, 7, 63, 64, 65, 66, 120, 200]
    pairs = [(a, b) for a in lengths for b in lengths] * 3
    targets = tuple(text(a, k % 3 == 0) for k, (a, _) in enumerate(pairs))
    preds = tuple(text(b, k % 5 == 0) for k, (_, b) in enumerate(pairs))
    types = ["rouge1", "rouge2", "rouge3", "rougeL", "rougeLsum"]
    ours = rouge(targets, preds, types, stem=stem)
    scorer = rouge_scorer.RougeScorer(types, use_stemmer=stem)
    expected = [scorer.score(t, p) for t, p in zip(targets, preds, strict=True)]
    for rt in types:
        np.testing.assert_allclose(
            ours[rt], [tuple(e[rt]) for e in expected], rtol=0, atol=1e-12, err_msg=rt
        )
    opts = MetricOptions(extra={"stem": stem})
    for name in ("rougeL", "rougeLsum_recall", "rouge2_precision"):
        got = get_metric(name)(targets, preds, options=opts).per_sample
        kind, _, part = name.partition("_")
        column = {"": 2, "precision": 0, "recall": 1}[part]
        np.testing.assert_allclose(got, [e[kind][column] for e in expected], rtol=0, atol=1e-12)


def test_ngram_ids_renumbered_when_packing_would_overflow(monkeypatch: pytest.MonkeyPatch) -> None:
    """Token ids are packed into one int64 per n-gram; where that would overflow they are
    renumbered first. Forcing the renumbering on every step must not change a score."""
    from heldout.metrics import summarization

    rng = random.Random(4)
    targets = [_text(rng) for _ in range(200)]
    preds = [_text(rng) for _ in range(200)]
    types = ["rouge1", "rouge2", "rouge4"]
    before = rouge(targets, preds, types)
    monkeypatch.setattr(summarization, "_KEY_LIMIT", 2)
    after = rouge(targets, preds, types)
    scorer = rouge_scorer.RougeScorer(types)
    for rt in types:
        np.testing.assert_array_equal(before[rt], after[rt])
        expected = [tuple(scorer.score(t, p)[rt]) for t, p in zip(targets, preds, strict=True)]
        np.testing.assert_allclose(after[rt], expected, rtol=0, atol=1e-12)


def test_unsupported_claims_edge_cases() -> None:
    """Capitalised spans behind opening punctuation, an all-lower-case summary (no spans at
    all), non-ASCII case folding, and a source shared by two models (parsed once)."""
    source = "the strasse near İzmir had 12 cafés. “Nova Labs” opened there."
    claims, total = unsupported_claims("“Nova Labs” opened near İzmir, with 12 Cafés.", source)
    assert claims["entities"] == []
    assert claims["numbers"] == []
    assert total > 0
    claims, _ = unsupported_claims("(Orbit Inc) opened in 1999", source)
    assert claims["entities"] == ["Orbit Inc"]
    assert claims["numbers"] == ["1999"]
    lower, _ = unsupported_claims("orbit inc opened near the straße", source)
    assert lower["entities"] == []
    assert ("straße",) not in lower["bigrams"]
    assert ("inc", "opened") in lower["bigrams"]
    sources = (source, source)
    metric = get_metric("unsupported_rate")
    a = metric(
        ("x", "x"), ("Nova Labs opened", "Orbit opened"), options=MetricOptions(inputs=sources)
    )
    b = metric(
        ("x", "x"), ("Orbit opened", "Nova Labs opened"), options=MetricOptions(inputs=sources)
    )
    assert a.per_sample.tolist() == b.per_sample.tolist()[::-1]
    assert a.per_sample[0] == 0.0


def test_registered_rouge_metric() -> None:
    r = get_metric("rougeL")(["a b c d"], ["a c d e"], options=MetricOptions())
    assert r.aggregate == pytest.approx(0.75)
    assert r.details["stemmed"] is False
    stemmed = get_metric("rouge1")(
        ["cats running"], ["cat runs"], options=MetricOptions(extra={"stem": True})
    )
    assert stemmed.aggregate == 1.0


def test_unsupported_claims() -> None:
    source = "Acme Corp reported revenue of 3.5 million in 2023, up from 2.1 million."
    faithful = "Acme Corp reported revenue of 3.5 million in 2023."
    invented = "Globex reported revenue of 4 million in 2023."
    # 2 numbers, 1 entity (Acme Corp), 4 content bigrams (acme corp ... revenue million)
    assert unsupported_claims(faithful, source) == (
        {"numbers": [], "entities": [], "bigrams": []},
        7,
    )
    bad, _ = unsupported_claims(invented, source)
    assert bad["numbers"] == ["4"]
    assert bad["entities"] == ["Globex"]
    assert ("globex", "reported") in bad["bigrams"]
    r = get_metric("unsupported_rate")(
        ["x", "x"], [faithful, invented], options=MetricOptions(inputs=[source, source])
    )
    assert r.per_sample[0] == 0.0
    assert 0 < r.per_sample[1] < 1
    assert r.details["examples"][0]["index"] == 1


def test_bad_inputs() -> None:
    with pytest.raises(MetricInputError, match="needs the source texts"):
        get_metric("unsupported_rate")(["x"], ["y"], options=MetricOptions())
    with pytest.raises(MetricInputError, match="unknown ROUGE type 'rougeX'"):
        rouge(["a"], ["a"], ["rougeX"])
    with pytest.raises(MetricInputError, match="prediction 0 is NoneType"):
        rouge(["a"], [None])  # type: ignore[list-item]


def test_plan_options_stemmer_precision_recall_and_plugin_secondaries(tmp_path: Path) -> None:
    """task.use_stemmer reaches ROUGE (oracle: RougeScorer(use_stemmer=True)); ROUGE precision
    and recall and a plugin metric are secondary metrics, compared paired in results.json."""
    from heldout.backends import MockBackend
    from heldout.plan import load_plan
    from heldout.runner import evaluate

    rng = random.Random(3)
    words = "cats running dogs barked quickly slowly walking talked houses".split()
    rows = [
        {"id": f"d{i}", "input": f"doc {i}", "target": " ".join(rng.choices(words, k=6))}
        for i in range(40)
    ]
    (tmp_path / "gold.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (tmp_path / "length_metric.py").write_text(
        "import numpy as np\nimport heldout\n\n"
        "@heldout.metric('short_enough', shapes=['summarization'], higher_is_better=True)\n"
        "def short_enough(y_true, y_pred, *, options):\n"
        "    v = np.array([float(len(p.split()) <= 6) for p in y_pred])\n"
        "    return heldout.MetricResult('short_enough', float(v.mean()), v)\n"
    )
    (tmp_path / "heldout.yaml").write_text(
        "name: summ\ntarget_behavior: summarise\n"
        "task: {shape: summarization, data: gold.jsonl, use_stemmer: true,\n"
        "       secondary_metrics: [rougeL_precision, rougeL_recall, short_enough]}\n"
        "primary_metric: rougeL\nbaseline: 0.2\nsuccess_threshold: 0.5\n"
        "min_detectable_lift: 0.05\nplugins: [length_metric.py]\nmodels:\n"
        "  base: {backend: mock, name: b}\n  candidate: {backend: mock, name: c}\n"
        "stats: {resamples: 500}\n"
    )
    base = {r["id"]: " ".join(rng.choices(words, k=5)) for r in rows}
    cand = {r["id"]: r["target"].replace("cats", "cat") for r in rows}
    loaded = load_plan(tmp_path / "heldout.yaml")
    backends = {"base": MockBackend("b", outputs=base), "candidate": MockBackend("c", outputs=cand)}
    ran = evaluate(loaded, backends=dict(backends))
    result, _ = ran.result, ran.folder
    by_metric = {c.metric: c for c in result.comparisons if c.dataset == "gold"}
    assert set(by_metric) == {"rougeL", "rougeL_precision", "rougeL_recall", "short_enough"}
    scorer = rouge_scorer.RougeScorer(["rougeL"], use_stemmer=True)
    for role, outputs in (("base", base), ("candidate", cand)):
        scores = [scorer.score(r["target"], outputs[r["id"]])["rougeL"] for r in rows]
        for metric, attr in (("rougeL", 2), ("rougeL_precision", 0), ("rougeL_recall", 1)):
            rec = by_metric[metric]
            got = rec.base.estimate if role == "base" else rec.other.estimate
            assert got == pytest.approx(sum(s[attr] for s in scores) / len(rows), abs=1e-12)
    # "cats" → "cat" is a perfect match only with the stemmer
    assert by_metric["rougeL"].other.estimate == pytest.approx(1.0)


def test_secondary_metrics_are_validated(tmp_path: Path) -> None:
    from heldout.errors import PlanError
    from heldout.plan import load_plan

    (tmp_path / "gold.jsonl").write_text('{"id": "a", "input": "x", "target": "y"}\n')
    (tmp_path / "heldout.yaml").write_text(
        "name: s\ntarget_behavior: t\n"
        "task: {shape: qa, data: gold.jsonl, use_stemmer: true,\n"
        "       secondary_metrics: [rougeL_recall, no_such_metric]}\n"
        "primary_metric: exact_match\nbaseline: 0.2\nsuccess_threshold: 0.5\n"
        "min_detectable_lift: 0.05\nmodels:\n"
        "  base: {backend: mock, name: b}\n  candidate: {backend: mock, name: c}\n"
    )
    with pytest.raises(PlanError) as info:
        load_plan(tmp_path / "heldout.yaml")
    problems = {p.where: p.message for p in info.value.problems}
    assert problems["task.use_stemmer"] == "only applies to shape summarization"
    assert problems["task.secondary_metrics[0]"] == "rougeL_recall applies to summarization, not qa"
    assert problems["task.secondary_metrics[1]"].startswith("unknown metric 'no_such_metric'")
