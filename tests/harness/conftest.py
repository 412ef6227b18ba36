"""lm-eval tasks on data committed in tests/fixtures/lm_eval, a tiny GPT-2 built here, and a
project folder whose plan guards with them. Nothing is downloaded."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

pytest.importorskip("lm_eval")
torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")
tokenizers = pytest.importorskip("tokenizers")
peft = pytest.importorskip("peft")

FIXTURE = Path(__file__).parents[1] / "fixtures" / "lm_eval"
WORDS = "the a cat dog sat ran on mat is yes no : .".split()


@pytest.fixture(scope="session")
def tiny_lm(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 2-layer GPT-2 over the tasks' words (random weights) and a LoRA adapter on it."""
    root = tmp_path_factory.mktemp("tiny-lm")
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
        n_positions=128,
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
    return root


def lm_eval_project(
    root: Path, lm: Path, *, guardrail: str, base: str | None = None, candidate: str | None = None
) -> Path:
    """A plan folder: the fixture's task folder, a 30-sample qa gold set, hf models."""
    shutil.copytree(FIXTURE / "tasks", root / "tasks")
    rows = [{"id": f"g{i}", "input": "the cat is", "target": "mat"} for i in range(30)]
    (root / "gold.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    base = (
        base or f"{{backend: hf, model: {lm / 'base'}, batch_size: 4, params: {{max_tokens: 8}}}}"
    )
    candidate = candidate or (
        f"{{backend: hf, model: {lm / 'base'}, adapter: {lm / 'adapter'}, batch_size: 4, params: {{max_tokens: 8}}}}"
    )
    (root / "heldout.yaml").write_text(
        f"""name: lm-eval-guardrail
target_behavior: answer with the animal
task: {{shape: qa, data: gold.jsonl}}
primary_metric: exact_match
baseline: 0.1
success_threshold: 0.2
min_detectable_lift: 0.1
models:
  base: {base}
  candidate: {candidate}
guardrails:
  - {guardrail}
""",
        encoding="utf-8",
    )
    return root
