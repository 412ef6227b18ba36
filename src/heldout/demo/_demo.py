"""``heldout demo``: a real fine-tune, evaluated end to end on a laptop CPU.

1. Build a tiny character-level GPT-2 (nothing downloaded) and pre-train it on a mix of skills:
   sentiment labelling, upper-casing words and JSON records. That is the **base model**.
2. Write a pre-registered plan for a new behaviour (extract {name, city} as JSON), with a
   frozen gold set, the base model's *measured* baseline, a bar and guardrails on the base
   skills (sentiment accuracy and calibration, upper-casing); check the training data for leaks;
   lock the plan.
3. Fine-tune two candidates: a LoRA adapter with sane settings, and an aggressive full
   fine-tune (high learning rate, many steps, no replay) that tends to forget the base skills.
4. Run heldout on both through the real hf backend and write the reports.

Whatever the numbers say is reported; the demo never forces an outcome.
"""

from __future__ import annotations

import json
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from heldout.demo._data import extraction, json_record, sentiment, uppercase
from heldout.demo._train import PROMPTS, build_tokenizer, new_model, train
from heldout.errors import MissingDependencyError

__all__ = ["DemoConfig", "DemoResult", "run_demo"]

Progress = Callable[[str, int, int], None]


@dataclass(frozen=True, slots=True)
class DemoConfig:
    """Sizes and training settings; the defaults fit in about a minute on two CPU cores."""

    seed: int = 0
    gold: int = 200
    suite: int = 300
    pretrain_steps: int = 450
    lora_steps: int = 400
    lora_lr: float = 1e-2
    lora_rank: int = 8
    replay: float = 0.6
    full_steps: int = 200
    full_lr: float = 5e-3
    threads: int = 1


@dataclass(slots=True)
class DemoResult:
    folder: Path
    baseline: float
    runs: dict[str, tuple[Any, Path]] = field(default_factory=dict)  # name → (RunResult, dir)
    leaks: int = 0
    seconds: dict[str, float] = field(default_factory=dict)


def _write_jsonl(path: Path, rows: list[dict[str, Any]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(
        "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8"
    )


SCHEMA = {
    "type": "object",
    "properties": {"name": {"type": "string"}, "city": {"type": "string"}},
    "required": ["name", "city"],
    "additionalProperties": False,
}


def _yaml_str(text: str) -> str:
    return json.dumps(text)  # a JSON string is a valid double-quoted YAML scalar


def _plan(baseline: float, candidate: str, cfg: DemoConfig) -> str:
    threshold = max(0.5, round(baseline + 0.1, 2))
    extraction_prompt = _yaml_str(PROMPTS["extraction"])
    sentiment_prompt = _yaml_str(PROMPTS["sentiment"])
    upper_prompt = _yaml_str(PROMPTS["uppercase"])
    return f"""\
# Written by heldout demo before fine-tuning, then locked.
name: demo-extract-name-city
target_behavior: Extract the person's name and city from a sentence as JSON
task:
  shape: structured
  data: data/gold.jsonl
  template: {extraction_prompt}
  schema: schema.json
primary_metric: field_accuracy
baseline: {baseline:.4f}          # measured on the base model before training
success_threshold: {threshold}
min_detectable_lift: 0.2
models:
  base: {{backend: hf, model: models/base, batch_size: 64, device: cpu,
          params: {{max_tokens: 40, stop: ["\\n"]}}}}
  candidate: {{{candidate}, batch_size: 64, device: cpu,
          params: {{max_tokens: 40, stop: ["\\n"]}}}}
guardrails:
  - {{suite: sentiment, data: suites/sentiment.jsonl, metric: accuracy,
     template: {sentiment_prompt}, max_drop: 0.1}}
  - {{suite: uppercase, data: suites/uppercase.jsonl, metric: exact_match,
     template: {upper_prompt}, max_drop: 0.1}}
  - {{calibration: ece, suite: sentiment, max_increase: 0.1}}
stats: {{confidence: 0.95, resamples: 2000, seed: {cfg.seed}}}
"""


def run_demo(
    folder: Path, cfg: DemoConfig | None = None, progress: Progress | None = None
) -> DemoResult:
    """Build, train and evaluate everything under ``folder``; deterministic for a seed."""
    try:
        import peft
        import torch
        from transformers import GPT2LMHeadModel
    except ImportError:
        raise MissingDependencyError("torch, transformers and peft", "hf") from None
    from heldout.backends._hf import quiet_transformers
    from heldout.data import find_leaks, iter_train_texts, load_samples
    from heldout.plan import load_plan, write_lock
    from heldout.runner import ProgressEvent, evaluate

    quiet_transformers()
    cfg = cfg or DemoConfig()
    torch.set_num_threads(cfg.threads)
    t_start = time.perf_counter()
    seconds: dict[str, float] = {}
    folder.mkdir(parents=True, exist_ok=True)
    rng = random.Random(cfg.seed)

    # -- data ------------------------------------------------------------------------------
    gold_rows: list[dict[str, Any]] = []
    seen: set[str] = set()
    while len(gold_rows) < cfg.gold:
        text, target = extraction(rng)
        if text in seen:
            continue
        seen.add(text)
        gold_rows.append({"id": f"x{len(gold_rows):03d}", "input": text, "target": target})
    train_extract: list[tuple[str, str]] = []
    while len(train_extract) < 600:
        text, target = extraction(rng)
        if text not in seen:  # the gold set is never trained on
            train_extract.append(
                (PROMPTS["extraction"].format(input=text), " " + json.dumps(target))
            )
    suites = {
        "sentiment": [sentiment(rng) for _ in range(cfg.suite)],
        "uppercase": [uppercase(rng) for _ in range(cfg.suite)],
    }
    _write_jsonl(folder / "data" / "gold.jsonl", gold_rows)
    for name, items in suites.items():
        _write_jsonl(
            folder / "suites" / f"{name}.jsonl",
            [
                {"id": f"{name[:3]}{i:03d}", "input": x, "target": y}
                for i, (x, y) in enumerate(items)
            ],
        )
    _write_jsonl(
        folder / "data" / "train.jsonl", [{"prompt": p, "completion": a} for p, a in train_extract]
    )
    (folder / "schema.json").write_text(json.dumps(SCHEMA, indent=2), encoding="utf-8")

    pretrain: list[tuple[str, str]] = []
    for _ in range(3000):
        kind = rng.random()
        if kind < 0.4:
            x, y = sentiment(rng)
            pretrain.append((PROMPTS["sentiment"].format(input=x), " " + y))
        elif kind < 0.7:
            x, y = uppercase(rng)
            pretrain.append((PROMPTS["uppercase"].format(input=x), y))
        else:
            x, y = json_record(rng)
            pretrain.append((PROMPTS["json"].format(input=x), " " + y))

    # -- base model ----------------------------------------------------------------------------
    models = folder / "models"
    tok = build_tokenizer(models / "base")
    t0 = time.perf_counter()
    base = new_model(len(tok), cfg.seed)
    train(
        base,
        tok,
        pretrain,
        steps=cfg.pretrain_steps,
        lr=3e-3,
        batch_size=32,
        seed=cfg.seed,
        answer_only=False,
        label="pre-train base",
        progress=progress,
    )
    base.save_pretrained(models / "base")
    seconds["pretrain"] = time.perf_counter() - t0

    # -- measure the baseline on the base model, then pre-register and lock ----------------------
    t0 = time.perf_counter()
    (folder / "heldout.yaml").write_text(
        _plan(0.0, "backend: hf, model: models/base, adapter: models/lora", cfg), encoding="utf-8"
    )
    baseline = _measure_baseline(folder, gold_rows)
    (folder / "heldout.yaml").write_text(
        _plan(baseline, "backend: hf, model: models/base, adapter: models/lora", cfg),
        encoding="utf-8",
    )
    leaks = find_leaks(
        load_samples(folder / "data" / "gold.jsonl"),
        iter_train_texts(folder / "data" / "train.jsonl"),
    )
    seconds["baseline"] = time.perf_counter() - t0

    # -- candidates --------------------------------------------------------------------------
    t0 = time.perf_counter()
    torch.manual_seed(cfg.seed)  # LoRA's random A matrices: seeded here, not by chance
    lora_model = peft.get_peft_model(
        GPT2LMHeadModel.from_pretrained(models / "base"),
        peft.LoraConfig(
            r=cfg.lora_rank,
            lora_alpha=2 * cfg.lora_rank,
            target_modules=["c_attn", "c_proj", "c_fc"],
            fan_in_fan_out=True,
            lora_dropout=0.0,
        ),
    )
    # sane settings: a small share of replay data keeps the base skills practised
    n_replay = int(len(train_extract) * cfg.replay / (1 - cfg.replay))
    lora_data = train_extract + rng.sample(pretrain, n_replay)
    train(
        lora_model,
        tok,
        lora_data,
        steps=cfg.lora_steps,
        lr=cfg.lora_lr,
        batch_size=32,
        seed=cfg.seed + 1,
        answer_only=True,
        label="LoRA fine-tune",
        progress=progress,
    )
    lora_model.save_pretrained(str(models / "lora"))
    seconds["lora"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    full = GPT2LMHeadModel.from_pretrained(models / "base")
    train(
        full,
        tok,
        train_extract,
        steps=cfg.full_steps,
        lr=cfg.full_lr,
        batch_size=32,
        seed=cfg.seed + 2,
        answer_only=True,
        label="full fine-tune",
        progress=progress,
    )
    full.save_pretrained(models / "full")
    tok.save_pretrained(models / "full")
    seconds["full"] = time.perf_counter() - t0

    # -- evaluate ------------------------------------------------------------------------------
    result = DemoResult(folder=folder, baseline=baseline, leaks=len(leaks.hits))
    write_lock(load_plan(folder / "heldout.yaml"))
    for name, candidate in (
        ("lora", "backend: hf, model: models/base, adapter: models/lora"),
        ("full", "backend: hf, model: models/full"),
    ):
        t0 = time.perf_counter()
        (folder / "heldout.yaml").write_text(_plan(baseline, candidate, cfg), encoding="utf-8")

        def report(event: ProgressEvent, name: str = name) -> None:
            if progress and event.stage == "generate":
                progress(f"heldout run ({name}): {event.label}", event.done, event.total)

        # the candidate is not locked: the plan must still match its lock
        run = evaluate(folder / "heldout.yaml", out=folder / "runs" / name, progress=report)
        result.runs[name] = (run.result, run.folder)
        seconds[f"run_{name}"] = time.perf_counter() - t0
    seconds["total"] = time.perf_counter() - t_start
    result.seconds = seconds
    return result


def _measure_baseline(folder: Path, gold_rows: list[dict[str, Any]]) -> float:
    """The base model's primary metric on the gold set with the plan's prompt ("measure this
    FIRST"), through the same backend and metric the run will use."""
    import asyncio

    from heldout.backends import Generation, Request, make_backend
    from heldout.data import render
    from heldout.metrics import MetricOptions, get_metric
    from heldout.plan import load_plan

    loaded = load_plan(folder / "heldout.yaml")
    backend = make_backend(loaded.plan.models.base, root=folder)
    reqs = [
        Request(r["id"], render(loaded.template, {"input": r["input"]}, sample_id=r["id"]))
        for r in gold_rows
    ]
    out: dict[str, Generation] = {}

    async def go() -> None:
        await backend.generate(reqs, lambda g: out.__setitem__(g.sample_id, g))

    asyncio.run(go())
    preds = [out[r["id"]].text or "" for r in gold_rows]
    spec = get_metric(loaded.plan.primary_metric)
    return spec([r["target"] for r in gold_rows], preds, options=MetricOptions()).aggregate
