"""The leak check finds planted exact and near duplicates and leaves unrelated texts alone."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from heldout.data import LeakOptions, Sample, find_leaks, iter_train_texts, normalize
from heldout.data._leak import lsh_shape
from heldout.errors import DataError, HeldoutError
from tests.conftest import write_jsonl

WORDS = (
    "alpha bravo charlie delta echo foxtrot golf hotel india juliet kilo lima mike november "
    "oscar papa quebec romeo sierra tango uniform victor whiskey xray yankee zulu amber basil "
    "cedar dune ember fjord grove harbor island jasper kettle lantern meadow nectar orchard"
).split()


def _text(rng: random.Random, n: int) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(n)).capitalize() + "."


def _exact_jaccard(a: str, b: str, n: int = 5) -> float:
    ta, tb = normalize(a), normalize(b)
    sa = {ta[i : i + n] for i in range(len(ta) - n + 1)}
    sb = {tb[i : i + n] for i in range(len(tb) - n + 1)}
    return len(sa & sb) / len(sa | sb)


@pytest.fixture
def corpus() -> tuple[list[Sample], list[tuple[str, list[str]]]]:
    rng = random.Random(7)
    gold = [Sample(f"g{i}", _text(rng, 30), "t") for i in range(60)]
    gold.append(Sample("short", "Ana moved to Porto in May.", "t"))
    train = [(f"train:{i}", [_text(rng, 40)]) for i in range(600)]
    # exact duplicate after normalisation (case, punctuation, whitespace)
    train.append(("train:exact", ["  " + gold[3].input.upper().replace(".", " !") + "  "]))
    # gold input embedded in a longer chat row: 13-gram containment
    train.append(
        ("train:chat", ["system: be brief", f"user: Summarise this. {gold[10].input} Thanks", "ok"])
    )
    # near duplicate: two words changed in a 30-word text
    words = gold[20].input.split()
    words[5], words[25] = "zzz", "yyy"
    train.append(("train:near", [" ".join(words)]))
    # short text, one word changed: only Jaccard on shingles can see it
    train.append(("train:short", ["Ana moved to Porto in June."]))
    return gold, train


def test_planted_duplicates_are_found(
    corpus: tuple[list[Sample], list[tuple[str, list[str]]]],
) -> None:
    gold, train = corpus
    report = find_leaks(gold, train)
    by_row = {h.train_where: h for h in report.hits}
    assert by_row["train:exact"].gold_id == "g3"
    assert by_row["train:exact"].kind == "exact"
    assert by_row["train:chat"].gold_id == "g10"
    assert by_row["train:chat"].kind == "ngram"
    assert by_row["train:chat"].similarity == 1.0
    assert by_row["train:near"].gold_id == "g20"
    assert by_row["train:short"].gold_id == "short"
    assert by_row["train:short"].kind == "jaccard"
    assert by_row["train:short"].similarity == pytest.approx(
        _exact_jaccard("Ana moved to Porto in May.", "Ana moved to Porto in June.")
    )
    # nothing unrelated is flagged
    assert report.flagged == ["g10", "g20", "g3", "short"]
    assert report.n_train == len(train)


def test_jaccard_similarity_is_exact_not_estimated(
    corpus: tuple[list[Sample], list[tuple[str, list[str]]]],
) -> None:
    gold, train = corpus
    report = find_leaks(gold, train, LeakOptions(ngram_threshold=1.0, jaccard_threshold=0.3))
    near = [h for h in report.hits if h.train_where == "train:near" and h.kind == "jaccard"]
    assert near
    assert near[0].similarity == _exact_jaccard(gold[20].input, train[-2][1][0])


def test_unrelated_texts_are_not_flagged() -> None:
    rng = random.Random(1)
    gold = [Sample(f"g{i}", _text(rng, 25), "t") for i in range(100)]
    train = [(f"t{i}", [_text(rng, 25)]) for i in range(1000)]
    assert find_leaks(gold, train).hits == []


def test_deterministic_for_a_seed(
    corpus: tuple[list[Sample], list[tuple[str, list[str]]]],
) -> None:
    gold, train = corpus
    assert find_leaks(gold, train).hits == find_leaks(gold, train).hits


def test_train_rows_from_files(tmp_path: Path) -> None:
    path = write_jsonl(
        tmp_path / "train.jsonl",
        [{"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "yo"}]}],
    )
    assert list(iter_train_texts(path)) == [(f"{path}:1", ["user", "hi", "assistant", "yo"])]
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"a": 1}\n{oops\n')
    with pytest.raises(DataError, match=r"bad\.jsonl:2: malformed JSON"):
        list(iter_train_texts(bad))


def test_lsh_shape_meets_recall_floor() -> None:
    for t in (0.3, 0.4, 0.5, 0.8):
        bands, rows = lsh_shape(t, 128, 0.995)
        assert bands * rows <= 128
        assert 1 - (1 - t**rows) ** bands >= 0.995
        # one more row per band would miss the floor
        more = 128 // (rows + 1)
        assert 1 - (1 - t ** (rows + 1)) ** more < 0.995


def test_lsh_recall_at_threshold() -> None:
    """Pairs at or just above the threshold are found (LSH only proposes; Jaccard decides)."""
    rng = random.Random(3)
    gold, train, expected = [], [], {}
    for i in range(300):
        words = [rng.choice(WORDS) + str(rng.randrange(50)) for _ in range(12)]
        edited = list(words)
        for j in rng.sample(range(12), 2):
            edited[j] = "edit" + str(j)
        sim = _exact_jaccard(" ".join(words), " ".join(edited))
        gold.append(Sample(f"g{i}", " ".join(words), "t"))
        train.append((f"t{i}", [" ".join(edited)]))
        expected[f"g{i}"] = sim
    opts = LeakOptions(ngram_threshold=1.0, jaccard_threshold=0.4)
    found = {h.gold_id for h in find_leaks(gold, train, opts).hits}
    should = {g for g, sim in expected.items() if sim >= 0.4}
    assert len(should) > 100
    assert found <= set(expected)
    assert len(found & should) >= 0.99 * len(should)


def test_bad_options() -> None:
    with pytest.raises(HeldoutError, match="ngram_threshold: must be in"):
        LeakOptions(ngram_threshold=0)


def _jaccard_brute_force(gold: list[Sample], train: list[tuple[str, list[str]]]) -> set[tuple]:
    """All pairs, by the definition: Jaccard of character 5-gram sets of normalised text."""

    def chars(text: str) -> set[str]:
        return {text[i : i + 5] for i in range(len(text) - 4)} if len(text) >= 5 else {text}

    g = [chars(normalize(s.input)) for s in gold]
    hits = set()
    for where, texts in train:
        t = chars(" ".join(normalize(x) for x in texts))
        for s, a in zip(gold, g, strict=True):
            sim = len(a & t) / len(a | t)
            if sim >= 0.5:
                hits.add((s.id, where, round(sim, 12)))
    return hits


@pytest.mark.parametrize("templated", [True, False])
def test_templated_text_takes_the_exact_dense_path_with_brute_force_hits(
    templated: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A 26-word vocabulary (templated prompts) makes LSH propose most pairs; the dense
    product must then be chosen and find exactly the brute-force hits; varied text keeps LSH."""
    from heldout.data import _leak

    rng = random.Random(4)
    words = (
        "apple river stone cloud tiger maple ocean piano lemon candle forest silver rocket "
        "garden pepper marble velvet harbor jungle copper falcon meadow quartz saddle timber "
        "violet"
    ).split()
    if not templated:
        words = [f"{w}{i}" for w in words for i in range(300)]
    gold = [Sample(f"g{i}", " ".join(rng.choices(words, k=30)), "t") for i in range(200)]
    train = [(f"t{i}", [" ".join(rng.choices(words, k=30))]) for i in range(500)]
    for k in range(60):  # near duplicates, 0 to 11 words changed: similarities 1 down to ~0.4
        src = gold[k * 3].input.split()
        for pos in rng.sample(range(len(src)), k % 12):
            src[pos] = rng.choice(words)
        train[k * 8] = (f"t{k * 8}", [" ".join(src).upper() + "!"])
    used: list[bool] = []
    real = _leak._DenseJaccard.when_cheaper

    def spy(*args: object, **kwargs: object) -> object:
        dense = real(*args, **kwargs)  # type: ignore[arg-type]
        used.append(dense is not None)
        return dense

    monkeypatch.setattr(_leak._DenseJaccard, "when_cheaper", staticmethod(spy))
    report = find_leaks(gold, train, LeakOptions(ngram_threshold=1.0))
    assert used == [templated]
    expected = {(g, t): sim for g, t, sim in _jaccard_brute_force(gold, train)}
    assert len(expected) >= 40
    assert sum(0.5 <= sim < 0.6 for sim in expected.values()) >= 3  # near the threshold
    ours = {(h.gold_id, h.train_where): h for h in report.hits}
    for pair, sim in expected.items():  # every brute-force pair, with its exact similarity
        hit = ours[pair]
        assert (hit.kind, round(hit.similarity, 12)) in {("jaccard", sim), ("exact", 1.0)}
    for pair, hit in ours.items():  # and no Jaccard hit that the definition does not give
        if hit.kind == "jaccard":
            assert expected[pair] == round(hit.similarity, 12)
