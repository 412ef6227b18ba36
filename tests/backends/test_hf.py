"""The hf backend on a tiny model built in the test (random init, tokenizer built in code)."""

from __future__ import annotations

import asyncio
import math
from pathlib import Path
from typing import Any

import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")
peft = pytest.importorskip("peft")
tokenizers = pytest.importorskip("tokenizers")

from heldout.backends import Generation, Request  # noqa: E402
from heldout.backends._hf import HFBackend  # noqa: E402
from heldout.errors import HeldoutError  # noqa: E402
from heldout.plan import HFModel  # noqa: E402

WORDS = "the a cat dog sat ran on mat positive negative neutral is label : . yes no".split()


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("tiny")
    vocab = {"<pad>": 0, "<eos>": 1, "<unk>": 2, **{w: i + 3 for i, w in enumerate(WORDS)}}
    tok = tokenizers.Tokenizer(tokenizers.models.WordLevel(vocab, unk_token="<unk>"))
    tok.pre_tokenizer = tokenizers.pre_tokenizers.WhitespaceSplit()
    tok.decoder = tokenizers.decoders.WordPiece(prefix="##")
    fast = transformers.PreTrainedTokenizerFast(
        tokenizer_object=tok, pad_token="<pad>", eos_token="<eos>", unk_token="<unk>"
    )
    torch.manual_seed(0)
    config = transformers.GPT2Config(
        vocab_size=len(vocab),
        n_positions=64,
        n_embd=32,
        n_layer=2,
        n_head=2,
        bos_token_id=1,
        eos_token_id=1,
        pad_token_id=0,
    )
    model = transformers.GPT2LMHeadModel(config)
    model.save_pretrained(root / "base")
    fast.save_pretrained(root / "base")
    lora = peft.get_peft_model(
        model,
        peft.LoraConfig(
            r=4, target_modules=["c_attn"], fan_in_fan_out=True, init_lora_weights=False
        ),
    )
    lora.save_pretrained(root / "adapter")
    zero = peft.get_peft_model(
        transformers.GPT2LMHeadModel(config),
        peft.LoraConfig(r=4, target_modules=["c_attn"], fan_in_fan_out=True),
    )
    zero.save_pretrained(root / "zero-adapter")  # default init: B = 0, changes nothing
    return root


def _gen(backend: HFBackend, reqs: list[Request]) -> dict[str, Generation]:
    out: dict[str, Generation] = {}
    asyncio.run(backend.generate(reqs, lambda g: out.__setitem__(g.sample_id, g)))
    return out


PROMPTS = ["the cat sat on", "a dog", "the mat is label :", "dog ran on the mat . the"]


def _spec(**kw: object) -> HFModel:
    base = {"backend": "hf", "model": "base", "params": {"max_tokens": 6}}
    return HFModel.model_validate({**base, **kw})


def test_batched_equals_unbatched(tiny: Path) -> None:
    reqs = [Request(f"s{i}", p) for i, p in enumerate(PROMPTS)]
    batched = _gen(HFBackend(_spec(batch_size=4), root=tiny), reqs)
    single = _gen(HFBackend(_spec(batch_size=1), root=tiny), reqs)
    assert {k: v.text for k, v in batched.items()} == {k: v.text for k, v in single.items()}
    assert all(g.ok for g in batched.values())


def test_adapter_changes_outputs_and_is_recorded(tiny: Path) -> None:
    reqs = [Request(f"s{i}", p) for i, p in enumerate(PROMPTS)]
    plain = HFBackend(_spec(), root=tiny)
    tuned = HFBackend(_spec(adapter="adapter"), root=tiny)
    assert tuned.record["adapter_applied"] is True
    assert tuned.record["adapter_max_logit_change"] > 0
    assert tuned.identity()["adapter_sha256"] != plain.identity()["adapter_sha256"]
    lp_plain = plain.choice_logprobs("the cat is", ["positive", "negative"])
    lp_tuned = tuned.choice_logprobs("the cat is", ["positive", "negative"])
    assert lp_plain != lp_tuned
    texts_plain = {k: g.text for k, g in _gen(plain, reqs).items()}
    texts_tuned = {k: g.text for k, g in _gen(tuned, reqs).items()}
    assert texts_plain != texts_tuned


def test_adapter_that_changes_nothing_is_an_error(tiny: Path) -> None:
    with pytest.raises(HeldoutError, match="does not change the model's outputs"):
        HFBackend(_spec(adapter="zero-adapter"), root=tiny)
    with pytest.raises(HeldoutError, match="adapter folder not found"):
        HFBackend(_spec(adapter="nope"), root=tiny)


def test_label_logprobs_are_a_sensible_distribution(tiny: Path) -> None:
    backend = HFBackend(_spec(), root=tiny)
    labels = ["positive", "negative", "neutral"]
    lp = backend.choice_logprobs("the cat is label :", labels)
    assert set(lp) == set(labels)
    assert all(v < 0 for v in lp.values())
    # single-token labels: their probabilities are part of one next-token distribution
    assert sum(math.exp(v) for v in lp.values()) < 1.0
    everything = backend.choice_logprobs("the cat is label :", ["<pad>", "<eos>", *WORDS, "<unk>"])
    assert sum(math.exp(v) for v in everything.values()) == pytest.approx(1.0, abs=1e-4)
    out = _gen(backend, [Request("s", "the cat is label :", choices=tuple(labels))])
    assert out["s"].choice_logprobs == pytest.approx(lp)


def test_batches_are_cut_by_length_and_outputs_equal_one_at_a_time(
    tiny: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import random

    rng = random.Random(3)
    prompts = [" ".join(rng.choice(WORDS) for _ in range(rng.randint(1, 30))) for _ in range(25)]
    reqs = [Request(f"s{i}", p) for i, p in enumerate(prompts)]
    backend = HFBackend(_spec(batch_size=4), root=tiny)
    seen: list[list[str]] = []
    real = backend.generate_batch

    def spy(batch: list[str], **overrides: Any) -> list[tuple[str, str]]:
        seen.append(list(batch))
        return real(batch, **overrides)

    monkeypatch.setattr(backend, "generate_batch", spy)
    batched = _gen(backend, reqs)
    lengths = [[len(p.split()) for p in batch] for batch in seen]
    flat = [n for batch in lengths for n in batch]
    assert flat == sorted(flat, reverse=True)  # longest first, in batches of 4
    assert [len(b) for b in seen] == [4] * 6 + [1]
    single = _gen(HFBackend(_spec(batch_size=1), root=tiny), reqs)
    assert {k: g.text for k, g in batched.items()} == {k: g.text for k, g in single.items()}
    assert set(batched) == {r.sample_id for r in reqs}


def test_stop_strings_end_rows_early_and_keep_the_same_text(tiny: Path) -> None:
    reqs = [Request(f"s{i}", p) for i, p in enumerate(PROMPTS)]
    free = _gen(HFBackend(_spec(batch_size=4, params={"max_tokens": 12}), root=tiny), reqs)
    word = next(w for g in free.values() for w in (g.text or "").split()[1:])  # a generated word
    stopped = _gen(
        HFBackend(_spec(batch_size=4, params={"max_tokens": 12, "stop": [word]}), root=tiny), reqs
    )
    for sid, g in free.items():
        text = g.text or ""
        cut = text[: text.find(word)] if word in text else text
        assert stopped[sid].text == cut


def test_finish_reason_says_whether_the_model_would_have_gone_on(tiny: Path) -> None:
    """``length`` exactly where one more allowed token changes the text (the model was cut
    off), ``stop`` where it does not (it ended, or hit a stop string): the same finish_reason
    an OpenAI-compatible server reports, checked against generation itself."""
    reqs = [Request(f"s{i}", p) for i, p in enumerate(PROMPTS)]
    at = {
        k: _gen(HFBackend(_spec(batch_size=1, params={"max_tokens": k}), root=tiny), reqs)
        for k in (6, 7)
    }
    reasons = {sid: g.extra["finish_reason"] for sid, g in at[6].items()}
    assert set(reasons.values()) <= {"length", "stop"}
    for sid, why in reasons.items():
        went_on = at[7][sid].text != at[6][sid].text
        assert went_on == (why == "length"), (sid, why, at[6][sid].text, at[7][sid].text)
    word = next(w for g in at[6].values() for w in (g.text or "").split()[1:])
    stopped = _gen(
        HFBackend(_spec(batch_size=1, params={"max_tokens": 6, "stop": [word]}), root=tiny), reqs
    )
    for sid, g in stopped.items():
        if word in (at[6][sid].text or ""):
            assert g.extra["finish_reason"] == "stop"
