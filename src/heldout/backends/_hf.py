"""Local transformers models with an optional PEFT adapter (``pip install 'heldout[hf]'``).

Batched generation with left padding (greedy when temperature is 0), the tokenizer's chat
template when it has one, requests batched by tokenized length (longest first, as
lm-evaluation-harness does: padding is then mostly real tokens), a batch that stops once every
row has ended (end of sequence or a stop string), and per-label log-probabilities for
classification (the summed token log-probabilities of each label continuation, used for
calibration).

The adapter trap (lm-evaluation-harness issues #808 and #511): an adapter can load without
changing anything, e.g. when its target modules do not exist in the model or its weights are
zero. Here the adapter's effect is measured on a probe input, with the adapter enabled and
disabled; no change is an error, and the measured difference goes into the run record.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from heldout.backends._base import Generation, OnResult, Request
from heldout.errors import HeldoutError, MissingDependencyError
from heldout.plan import HFModel

__all__ = [
    "HFBackend",
    "directory_fingerprint",
    "format_prompt",
    "hf_identity",
    "hf_paths",
    "length_order",
    "quiet_transformers",
]


def directory_fingerprint(path: Path, *, hash_contents: bool) -> str:
    """sha256 over file names and contents (adapters) or names, sizes and mtimes (models)."""
    digest = hashlib.sha256()
    files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
    for f in files:
        digest.update(str(f.relative_to(path) if path.is_dir() else f.name).encode())
        if hash_contents:
            with f.open("rb") as fh:
                for chunk in iter(lambda: fh.read(1 << 20), b""):
                    digest.update(chunk)
        else:
            st = f.stat()
            digest.update(f"{st.st_size}:{st.st_mtime_ns}".encode())
    return digest.hexdigest()


def quiet_transformers() -> None:
    """The CLI owns the terminal: no progress bars or chatter from transformers."""
    import warnings

    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()  # type: ignore[no-untyped-call]
    hf_logging.set_verbosity_error()  # type: ignore[no-untyped-call]
    # peft calls a transformers API that transformers itself deprecated: not the user's concern
    warnings.filterwarnings(
        "ignore", message=r".*is_gradient_checkpointing.*", category=FutureWarning
    )


def _stop_strings(tokenizer: Any, stops: Sequence[str], prompt_width: int) -> Any:
    """A stopping criterion that ends each row once its new text holds a stop string.

    transformers' own ``stop_strings`` rebuilds the tokenizer's vocabulary and fails on some
    tokenizers (a WordPiece decoder: "substring not found"); decoding the new tokens works for
    any tokenizer, and the text kept is cut at the stop string afterwards either way.
    """
    import torch
    from transformers import StoppingCriteria

    class StopStrings(StoppingCriteria):
        def __call__(self, input_ids: Any, scores: Any, **kwargs: Any) -> Any:
            texts = tokenizer.batch_decode(input_ids[:, prompt_width:], skip_special_tokens=True)
            done = [any(stop in text for stop in stops) for text in texts]
            return torch.tensor(done, dtype=torch.bool, device=input_ids.device)

    return StopStrings()


def hf_paths(spec: HFModel, root: Path) -> tuple[Path, Path | None]:
    """The model's folder (or hub id) and the adapter's folder, checked, relative to ``root``."""
    local = (root / spec.model).resolve()
    model_path = local if local.exists() else Path(spec.model)
    if not local.exists():
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
    adapter_path = (root / spec.adapter).resolve() if spec.adapter else None
    if adapter_path is not None and not adapter_path.is_dir():
        raise HeldoutError(
            f"models: adapter folder not found: {adapter_path} (the adapter path is "
            "relative to the plan's folder)"
        )
    return model_path, adapter_path


def hf_identity(spec: HFModel, root: Path) -> dict[str, Any]:
    """What keys the response cache for a local model, in one process or on Ray actors."""
    model_path, adapter_path = hf_paths(spec, root)
    return {
        "backend": "hf",
        "model": str(model_path),
        "model_fingerprint": directory_fingerprint(model_path, hash_contents=False)
        if model_path.exists()
        else None,
        "adapter": str(adapter_path) if adapter_path else None,
        "adapter_sha256": directory_fingerprint(adapter_path, hash_contents=True)
        if adapter_path
        else None,
        "dtype": spec.dtype,
        "params": spec.params.model_dump(mode="json"),
    }


def format_prompt(tokenizer: Any, prompt: str) -> str:
    """The prompt as the model sees it: in the tokenizer's chat template when it has one."""
    if getattr(tokenizer, "chat_template", None):
        return str(
            tokenizer.apply_chat_template(
                [{"role": "user", "content": prompt}], tokenize=False, add_generation_prompt=True
            )
        )
    return prompt


def length_order(tokenizer: Any, requests: Sequence[Request]) -> list[int]:
    """Request indices, longest prompt (in tokens, as formatted) first; ties keep file order.
    Batches cut from this order pad little, and the longest batch runs first, so a batch
    size too big for the device fails at once rather than at the end."""
    if len(requests) <= 1:
        return list(range(len(requests)))
    ids = tokenizer([format_prompt(tokenizer, r.prompt) for r in requests])["input_ids"]
    return sorted(range(len(requests)), key=lambda i: -len(ids[i]))


def _cut(text: str, stops: Sequence[str]) -> str:
    """The text before the first of ``stops`` (each cut in turn, as lm-eval does)."""
    for stop in stops:
        pos = text.find(stop)
        if pos >= 0:
            text = text[:pos]
    return text


class HFBackend:
    """Generates with a local causal LM (+ optional LoRA adapter)."""

    def __init__(self, spec: HFModel, *, root: Path) -> None:
        try:
            import torch
            import transformers
        except ImportError:
            raise MissingDependencyError("torch and transformers", "hf") from None
        self.spec = spec
        self._torch = torch
        quiet_transformers()
        self.root = root
        self.model_path, self.adapter_path = hf_paths(spec, root)
        self.device = self._pick_device(spec.device)
        dtype = {
            "auto": None,
            "float32": torch.float32,
            "float16": torch.float16,
            "bfloat16": torch.bfloat16,
        }[spec.dtype]
        self.tokenizer = transformers.AutoTokenizer.from_pretrained(str(self.model_path))
        self.tokenizer.padding_side = "left"
        if self.tokenizer.pad_token is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        kwargs: dict[str, Any] = {}
        if dtype is not None:
            kwargs["dtype"] = dtype
        model: Any = transformers.AutoModelForCausalLM.from_pretrained(
            str(self.model_path), **kwargs
        )
        self.record: dict[str, Any] = {"model": str(self.model_path), "device": self.device}
        if self.adapter_path is not None:
            try:
                import peft
            except ImportError:
                raise MissingDependencyError("peft", "hf") from None
            model = peft.PeftModel.from_pretrained(model, str(self.adapter_path))
        self.model = model.to(self.device).eval()
        if self.adapter_path is not None:
            self.record.update(self._verify_adapter())

    def _pick_device(self, wanted: str) -> str:
        if wanted != "auto":
            return wanted
        if self._torch.cuda.is_available():
            return "cuda"
        return "cpu"

    def _verify_adapter(self) -> dict[str, Any]:
        torch = self._torch
        probe = self.tokenizer(["heldout adapter probe: the quick brown fox"], return_tensors="pt")
        probe = probe.to(self.device)
        with torch.inference_mode():
            with_adapter = self.model(**probe).logits
            with self.model.disable_adapter():
                without = self.model(**probe).logits
        diff = float((with_adapter - without).abs().max())
        if not diff > 0:
            raise HeldoutError(
                f"the adapter at {self.adapter_path} loaded but does not change the model's "
                "outputs (max logit difference 0): its target modules may not exist in this "
                "model, or its weights are zero. Check the adapter's target_modules and that "
                "training saved its weights."
            )
        return {
            "adapter": str(self.adapter_path),
            "adapter_applied": True,
            "adapter_max_logit_change": diff,
        }

    def identity(self) -> dict[str, Any]:
        return hf_identity(self.spec, self.root)

    def _format(self, prompt: str) -> str:
        return format_prompt(self.tokenizer, prompt)

    def generate_texts(self, prompts: Sequence[str]) -> list[str]:
        """Generate for ``prompts`` in one padded batch; returns the new text only."""
        return [text for text, _ in self.generate_batch(prompts)]

    def generate_batch(
        self,
        prompts: Sequence[str],
        *,
        stop: Sequence[str] | None = None,
        max_tokens: int | None = None,
        raw: bool = False,
    ) -> list[tuple[str, str]]:
        """Each prompt's new text and why it ended, as an OpenAI server says it: ``stop``
        (the end-of-sequence token or a stop string) or ``length`` (cut at max_tokens).
        ``stop``/``max_tokens`` replace the sampling parameters' (an lm-eval task's
        ``until``/``max_gen_toks``); ``raw`` prompts get no chat template and are cut from
        the left to fit the context window with ``max_tokens`` to spare, as lm-eval does."""
        torch = self._torch
        p = self.spec.params
        stops = list(p.stop if stop is None else stop)
        limit = p.max_tokens if max_tokens is None else max_tokens
        texts_in = list(prompts) if raw else [self._format(x) for x in prompts]
        if raw:
            room = max(1, self.max_length - limit)
            ids = [self.tokenizer(t)["input_ids"][-room:] for t in texts_in]
            width = max(len(i) for i in ids)
            pad = self.tokenizer.pad_token_id
            enc = {
                "input_ids": torch.tensor([[pad] * (width - len(i)) + i for i in ids]),
                "attention_mask": torch.tensor(
                    [[0] * (width - len(i)) + [1] * len(i) for i in ids]
                ),
            }
            enc = {k: v.to(self.device) for k, v in enc.items()}
        else:
            enc = self.tokenizer(texts_in, return_tensors="pt", padding=True).to(self.device)
        gen_kwargs: dict[str, Any] = {
            "max_new_tokens": limit,
            "pad_token_id": self.tokenizer.pad_token_id,
            "do_sample": p.temperature > 0,
        }
        if stops:  # each row stops at a stop string; the batch when every row has stopped
            gen_kwargs["stopping_criteria"] = [
                _stop_strings(self.tokenizer, stops, enc["input_ids"].shape[1])
            ]
        if p.temperature > 0:
            gen_kwargs.update(temperature=p.temperature, top_p=p.top_p)
            if p.seed is not None:
                torch.manual_seed(p.seed)
        with torch.inference_mode():
            out = self.model.generate(**enc, **gen_kwargs)
        new = out[:, enc["input_ids"].shape[1] :]
        texts = self.tokenizer.batch_decode(new, skip_special_tokens=True)
        eos = self.tokenizer.eos_token_id
        full = new.shape[1] >= limit  # the batch ran to the limit: some row did not end
        reasons = [
            "length"
            if full and (eos is None or eos not in row) and not any(s in text for s in stops)
            else "stop"
            for row, text in zip(new.tolist(), texts, strict=True)
        ]
        return [(_cut(t, stops), r) for t, r in zip(texts, reasons, strict=True)]

    @property
    def max_length(self) -> int:
        """The model's context window in tokens (as lm-eval's HFLM reads it; 2048 if the
        config names none)."""
        config = getattr(self.model, "config", None)
        for attr in ("n_positions", "max_position_embeddings", "n_ctx"):
            value = getattr(config, attr, None)
            if isinstance(value, int) and value > 0:
                return value
        return 2048

    def loglikelihoods(self, pairs: Sequence[tuple[str, str]]) -> list[tuple[float, bool]]:
        """log P(continuation | context) and whether greedy decoding gives the continuation,
        per pair, tokenised exactly as lm-evaluation-harness's HFLM does: the context's
        trailing whitespace moves to the continuation, the pair is encoded whole and split at
        the context's length, an empty context is conditioned on the BOS (else EOS) token,
        and the input is cut from the left to the context window."""
        torch = self._torch
        tok = self.tokenizer
        rows: list[tuple[list[int], int]] = []
        targets: list[list[int]] = []
        for context, continuation in pairs:
            if context == "":
                cont = tok(continuation, add_special_tokens=False)["input_ids"]
                prefix = tok.bos_token_id if tok.bos_token_id is not None else tok.eos_token_id
                ctx, cont = ([prefix], cont) if prefix != cont[0] else (cont[:1], cont[1:])
            else:
                spaces = len(context) - len(context.rstrip())
                if spaces:
                    continuation = context[-spaces:] + continuation
                    context = context[:-spaces]
                whole = tok(context + continuation)["input_ids"]
                ctx = tok(context)["input_ids"]
                cont = whole[len(ctx) :]
            rows.append(((ctx + cont)[-(self.max_length + 1) :][:-1], len(cont)))
            targets.append(cont)
        out: list[tuple[float, bool]] = []
        size = self.spec.batch_size
        for start in range(0, len(rows), size):
            chunk = rows[start : start + size]
            width = max(len(r) for r, _ in chunk)
            ids = torch.tensor([r + [0] * (width - len(r)) for r, _ in chunk], device=self.device)
            with torch.inference_mode():  # right padding: no earlier position sees it
                logp = torch.log_softmax(self.model(input_ids=ids).logits.float(), dim=-1)
            for k, (r, n) in enumerate(chunk):
                want = torch.tensor(targets[start + k], device=self.device)
                span = logp[k, len(r) - n : len(r)]
                total = float(span.gather(-1, want[:, None]).sum())
                greedy = bool((span.argmax(dim=-1) == want).all())
                out.append((total, greedy))
        return out

    def choice_logprobs(self, prompt: str, choices: Sequence[str]) -> dict[str, float]:
        """log P(choice | prompt) for each choice: summed token log-probabilities.

        As in lm-evaluation-harness, the choice follows the prompt after one space unless the
        prompt already ends with whitespace.
        """
        torch = self._torch
        context = self._format(prompt)
        ctx_ids = self.tokenizer(context, add_special_tokens=True)["input_ids"]
        delimiter = "" if not context or context[-1].isspace() else " "
        seqs, spans = [], []
        for choice in choices:
            text = context + (choice if choice[:1].isspace() else delimiter + choice)
            full = self.tokenizer(text, add_special_tokens=True)["input_ids"]
            # tokens after the shared prefix belong to the choice
            k = 0
            while k < min(len(ctx_ids), len(full)) and ctx_ids[k] == full[k]:
                k += 1
            seqs.append(full)
            spans.append((k, len(full)))
        width = max(len(s) for s in seqs)
        pad = self.tokenizer.pad_token_id
        ids = torch.tensor([[pad] * (width - len(s)) + s for s in seqs], device=self.device)
        mask = torch.tensor(
            [[0] * (width - len(s)) + [1] * len(s) for s in seqs], device=self.device
        )
        with torch.inference_mode():
            logits = self.model(input_ids=ids, attention_mask=mask).logits.float()
        logp = torch.log_softmax(logits, dim=-1)
        out: dict[str, float] = {}
        for row, (choice, (start, end)) in enumerate(zip(choices, spans, strict=True)):
            offset = width - len(seqs[row])
            total = 0.0
            for pos in range(start, end):
                token = seqs[row][pos]
                total += float(logp[row, offset + pos - 1, token])
            out[choice] = total
        return out

    def length_order(self, requests: Sequence[Request]) -> list[int]:
        return length_order(self.tokenizer, requests)

    async def generate(self, requests: Sequence[Request], on_result: OnResult) -> None:
        import time

        size = self.spec.batch_size
        scored = [r for r in requests if r.kind == "loglikelihood"]
        for start in range(0, len(scored), size * 8):
            batch = scored[start : start + size * 8]
            t0 = time.perf_counter()
            try:
                values = self.loglikelihoods([(r.prompt, r.continuation or "") for r in batch])
            except Exception as exc:  # a model error fails this batch, recorded per sample
                for r in batch:
                    on_result(Generation(r.sample_id, None, f"{type(exc).__name__}: {exc}"))
                continue
            per = (time.perf_counter() - t0) / len(batch)
            for r, (ll, greedy) in zip(batch, values, strict=True):
                on_result(
                    Generation(r.sample_id, "", latency_s=per, loglikelihood=ll, is_greedy=greedy)
                )
            await asyncio.sleep(0)
        # generations with the same stop strings and limits batch together
        groups: dict[tuple[Any, ...], list[Request]] = {}
        for r in requests:
            if r.kind == "generate":
                groups.setdefault((r.stop, r.max_tokens, r.raw), []).append(r)
        for (stop, max_tokens, raw), group in groups.items():
            order = self.length_order(group)  # results are reported per sample, in any order
            for start in range(0, len(order), size):
                await self._generate_one_batch(
                    [group[i] for i in order[start : start + size]], on_result,
                    stop=stop, max_tokens=max_tokens, raw=raw,
                )  # fmt: skip

    async def _generate_one_batch(
        self,
        batch: list[Request],
        on_result: OnResult,
        *,
        stop: Sequence[str] | None,
        max_tokens: int | None,
        raw: bool,
    ) -> None:
        import time

        t0 = time.perf_counter()
        try:
            done = self.generate_batch(
                [r.prompt for r in batch], stop=stop, max_tokens=max_tokens, raw=raw
            )
            lps = [self.choice_logprobs(r.prompt, r.choices) if r.choices else None for r in batch]
        except Exception as exc:  # a model error fails this batch, recorded per sample
            for r in batch:
                on_result(Generation(r.sample_id, None, f"{type(exc).__name__}: {exc}"))
            return
        per = (time.perf_counter() - t0) / len(batch)
        for r, (text, why), lp in zip(batch, done, lps, strict=True):
            on_result(
                Generation(
                    r.sample_id, text, latency_s=per, choice_logprobs=lp,
                    extra={"finish_reason": why},
                )
            )  # fmt: skip
        await asyncio.sleep(0)  # let the runner commit this batch before the next one

    async def close(self) -> None:
        return None
