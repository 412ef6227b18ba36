"""The datasets a run evaluates (the gold set and each suite), their requests and scores."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from heldout.backends import Generation, Request
from heldout.data import FieldMap, Sample, load_samples, render
from heldout.errors import FailedGenerationsError, HeldoutError
from heldout.metrics import MetricOptions, MetricSpec, get_metric, metric_names
from heldout.metrics.classification import parse_labels
from heldout.plan import LoadedPlan, SuiteGuardrail, task_metric_options
from heldout.suites import builtin_suite

__all__ = [
    "Dataset",
    "calibration_data",
    "external_metric",
    "gold_dataset",
    "lm_eval_datasets",
    "outputs",
    "read_sample_ids",
    "requests_for",
    "secondary_metrics",
    "subset",
    "suite_dataset",
    "train_dataset",
]


@dataclass(slots=True)
class Dataset:
    """One evaluated set: the gold set or a suite, with its template, metric and options."""

    name: str
    path: Path
    samples: list[Sample]
    template: str
    spec: MetricSpec
    options: MetricOptions
    #: lm-eval tasks (``heldout.harness.HarnessGuard``): lm-eval builds the requests and
    #: scores them; one sample per document.
    harness: Any = None
    targets: tuple[Any, ...] = field(init=False)

    def __post_init__(self) -> None:
        self.targets = tuple(s.target for s in self.samples)

    @property
    def kind(self) -> str:
        """ "gold", "suite", "lm_eval" or "train": what the dataset is, from its name."""
        return self.name.split(":", 1)[0]

    def sha256(self) -> str:
        """The content's fingerprint: the file's sha256, or for lm-eval tasks the sha256 of
        each task's fingerprint (version, config and documents used)."""
        if self.harness is not None:
            import hashlib

            parts = [json.dumps(t.lock_entry(), sort_keys=True) for t in self.harness.tasks]
            return hashlib.sha256("\n".join(parts).encode()).hexdigest()
        from heldout.plan import sha256_file

        return sha256_file(self.path)


def gold_dataset(loaded: LoadedPlan) -> Dataset:
    plan = loaded.plan
    task = plan.task
    schema = None
    if task.schema_file:
        schema = json.loads(loaded.resolve(task.schema_file).read_text(encoding="utf-8"))
    samples = loaded.samples or load_samples(loaded.resolve(task.data), loaded.fields)
    labels = tuple(task.labels) if task.labels else None
    if task.shape == "classification" and labels is None:
        labels = tuple(sorted({str(s.target) for s in samples}))
    options: MetricOptions = task_metric_options(
        task, labels=labels, schema=schema, inputs=tuple(s.input for s in samples)
    )
    return Dataset(
        "gold",
        loaded.resolve(task.data),
        samples,
        loaded.template,
        get_metric(plan.primary_metric),
        options,
    )


def suite_dataset(loaded: LoadedPlan, g: SuiteGuardrail) -> Dataset:
    path = loaded.resolve(g.data) if g.data else builtin_suite(g.suite).path
    fields = FieldMap(require_target=not g.judge)  # a judged suite needs only prompts
    samples = loaded.suite_samples.get(g.suite) or load_samples(path, fields)
    if g.judge:
        spec = external_metric(f"judge[{', '.join(g.judge)}]", "the judge", bounds=(0.0, 1.0))
        options = MetricOptions(inputs=tuple(s.input for s in samples))
        return Dataset(f"suite:{g.suite}", path, samples, g.template, spec, options)
    spec = get_metric(g.metric)
    labels = None
    if "classification" in spec.shapes:
        labels = tuple(sorted({str(s.target) for s in samples}))
    options = MetricOptions(labels=labels, inputs=tuple(s.input for s in samples))
    return Dataset(f"suite:{g.suite}", path, samples, g.template, spec, options)


def external_metric(
    name: str,
    by: str,
    *,
    higher_is_better: bool = True,
    bounds: tuple[float, float] | None = None,
    binary: bool = False,
) -> MetricSpec:
    """The spec of a per-sample score that another part computes (lm-eval, the judge):
    compared as a mean; calling its function is an error."""

    def computed_elsewhere(y_true: Any, y_pred: Any, *, options: MetricOptions) -> Any:
        raise HeldoutError(f"{name} is computed by {by}, not by a heldout metric")

    return MetricSpec(
        name=name,
        fn=computed_elsewhere,
        shapes=frozenset({"open"}),
        higher_is_better=higher_is_better,
        bounds=bounds,
        mean_of_samples=True,
        description=f"{by}'s per-sample {name}",
        binary=binary,
    )


def _lm_eval_metric(name: str, higher_is_better: bool) -> MetricSpec:
    """A per-document lm-eval score: the score itself always comes from lm-eval."""
    from heldout.harness import LM_EVAL_BINARY

    binary = name in LM_EVAL_BINARY
    return external_metric(
        name, "lm-eval", higher_is_better=higher_is_better,
        bounds=(0.0, 1.0) if binary else None, binary=binary,
    )  # fmt: skip


def lm_eval_datasets(loaded: LoadedPlan) -> list[Dataset]:
    """One dataset per task or group an lm-eval guardrail names: a sample per document (id
    ``task/index``, the task in its metadata), its first prompt as input, lm-eval's target."""
    from heldout.harness import harness_guards

    out = []
    for guard in harness_guards(loaded):
        samples = []
        for t in guard.tasks:
            for i in t.indices:
                prompt = t.prompts.get(i, "")
                if t.choices.get(i):
                    prompt += "\n[choices: " + " | ".join(c.strip() for c in t.choices[i]) + "]"
                samples.append(
                    Sample(
                        id=t.doc_id(i), input=prompt, target=t.targets[i], metadata={"task": t.name}
                    )
                )
        first = guard.tasks[0].task
        source = (first.dump_config().get("metadata") or {}).get("config_source")
        path = Path(source) if isinstance(source, str) else loaded.root
        spec = _lm_eval_metric(guard.metric, guard.higher_is_better)
        out.append(
            Dataset(f"lm_eval:{guard.name}", path, samples, "{input}", spec, MetricOptions(), guard)
        )
    return out


def train_dataset(loaded: LoadedPlan, gold: Dataset) -> Dataset | None:
    """The plan's ``train_sample``: a seeded sample of training rows, prompted and scored
    exactly as the gold set (same template, metric and options). Rows without an id are
    named by their line (``train-<line>``); every unreadable row is reported together."""
    from heldout.data import iter_records
    from heldout.errors import DataError, Problem

    spec = loaded.plan.train_sample
    if spec is None:
        return None
    path = loaded.resolve(spec.data)
    problems: list[Problem] = []
    rows: list[Sample] = []
    for k, (where, rec) in enumerate(iter_records(path)):
        if isinstance(rec, Problem):
            problems.append(rec)
            continue
        text, target = rec.get(spec.input_field), rec.get(spec.target_field)
        if not isinstance(text, str) or not text.strip():
            problems.append(
                Problem(
                    f"{where}: field {spec.input_field!r}",
                    "no input text; set train_sample.input_field to the column holding it",
                )
            )
            continue
        if target is None:
            problems.append(
                Problem(
                    f"{where}: field {spec.target_field!r}",
                    "no reference; set train_sample.target_field to the column holding it",
                )
            )
            continue
        sid = rec.get("id")
        sid = str(sid) if isinstance(sid, str | int) and not isinstance(sid, bool) else None
        meta = {
            key: v for key, v in rec.items() if key not in (spec.input_field, spec.target_field)
        }
        rows.append(Sample(id=f"train-{sid or k + 1}", input=text, target=target, metadata=meta))
    if problems:
        raise DataError(problems[:50], source=str(path), more=max(0, len(problems) - 50))
    if not rows:
        raise DataError([Problem(str(path), "no training rows; train_sample needs some")])
    seen: set[str] = set()
    for row in rows:
        if row.id in seen:
            raise DataError([Problem(str(path), f"duplicate id {row.id!r}; ids must be unique")])
        seen.add(row.id)
    rng = np.random.default_rng(spec.seed)
    keep = np.sort(rng.choice(len(rows), size=min(spec.n, len(rows)), replace=False))
    chosen = [rows[i] for i in keep.tolist()]
    return subset(replace(gold, name="train", path=path, samples=chosen), chosen)


def subset(ds: Dataset, samples: list[Sample]) -> Dataset:
    """The same dataset on fewer samples (a smoke run); labels and options are kept, so the
    prompts and the parsing are those of the full run."""
    inputs = tuple(s.input for s in samples) if ds.options.inputs is not None else None
    options = replace(ds.options, inputs=inputs)
    return Dataset(ds.name, ds.path, samples, ds.template, ds.spec, options, ds.harness)


def read_sample_ids(path: Path) -> list[str]:
    """Sample ids, one per line (blank lines and ``#`` comments ignored)."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise HeldoutError(
            f"--sample-ids {path}: file not found; give a file of sample ids, one per line"
        ) from None
    except UnicodeDecodeError as exc:
        raise HeldoutError(
            f"--sample-ids {path}: not valid UTF-8 at byte {exc.start}; re-save it as UTF-8"
        ) from None
    ids = [line.strip() for line in text.splitlines()]
    ids = [i for i in ids if i and not i.startswith("#")]
    if not ids:
        raise HeldoutError(f"--sample-ids {path}: no sample id in the file; write one id per line")
    return ids


def requests_for(ds: Dataset, with_choices: bool) -> list[Request]:
    if ds.harness is not None:  # lm-eval's requests for these documents
        return list(ds.harness.requests({s.id for s in ds.samples}))
    choices = ds.options.labels if with_choices else None
    return [
        Request(s.id, render(ds.template, s.template_fields(), sample_id=s.id), choices)
        for s in ds.samples
    ]


def outputs(ds: Dataset, gens: dict[str, Generation], failed_as_wrong: bool) -> tuple[str, ...]:
    """Each sample's output text, in the dataset's order (a tuple: the metrics of one family
    share one parse of it); a failed request is "" with ``failed_as_wrong``."""
    preds = []
    for s in ds.samples:
        g = gens[s.id]
        if g.ok:
            preds.append(g.text or "")
        elif failed_as_wrong:
            preds.append("")  # counted and reported by the caller
        else:
            raise FailedGenerationsError(f"sample {s.id!r} has no output")
    return tuple(preds)


@dataclass(frozen=True, slots=True)
class CalibrationData:
    """Per sample: the model's confidence in the answer it gave, and whether that answer (the
    parsed output; unparseable or failed = wrong) is correct. ``missing`` counts samples
    without any probability (then the data cannot be used: ``usable`` is False)."""

    confidence: np.ndarray
    correct: np.ndarray
    missing: int
    source: str

    @property
    def usable(self) -> bool:
        return self.missing == 0 and self.confidence.size > 0


def calibration_data(ds: Dataset, gens: dict[str, Generation]) -> CalibrationData:
    """Confidence from the label probabilities when the backend gave them (the probability of
    the label the output names; of the most probable label when the output names none), else
    from a per-sample ``confidence`` (a file's column)."""
    labels = ds.options.labels or ()
    texts = [gens[s.id].text or "" for s in ds.samples]
    parsed = parse_labels(texts, labels, ds.options.aliases, match=ds.options.label_match)
    conf, correct, missing, sources = [], [], 0, set()
    for s, label in zip(ds.samples, parsed, strict=True):
        g = gens[s.id]
        lp = g.choice_logprobs
        values = (
            np.array([lp.get(lab, -math.inf) for lab in labels], dtype=np.float64)
            if lp and labels
            else None
        )
        if values is not None and np.isfinite(values).any():
            probs = np.exp(values - values[np.isfinite(values)].max())
            probs /= probs.sum()
            k = labels.index(label) if label is not None else int(np.argmax(probs))
            conf.append(float(probs[k]))
            sources.add("label probabilities")
        elif g.confidence is not None:
            conf.append(float(g.confidence))
            sources.add("stated confidence")
        else:
            missing += 1
            continue
        correct.append(float(g.ok and label is not None and label == s.target))
    return CalibrationData(
        np.array(conf, dtype=np.float64),
        np.array(correct, dtype=np.float64),
        missing,
        " and ".join(sorted(sources)),
    )


def secondary_metrics(shape: str, gold: Dataset, listed: list[str] | None = None) -> list[str]:
    """Metrics reported beside the primary one (not gated): the plan's ``secondary_metrics``
    (plugins included) when it lists them, else the shape's built-in defaults, leaving out
    model-based metrics (embeddings, BERTScore) and those needing inputs the plan lacks."""
    if listed is not None:
        return [name for name in listed if name != gold.spec.name]
    names = []
    for name in metric_names(shape):
        spec = get_metric(name)
        if name == gold.spec.name or not spec.fn.__module__.startswith("heldout.metrics."):
            continue
        if name in ("embedding_similarity", "bertscore_f1") or not spec.default_secondary:
            continue
        if name == "schema_valid_rate" and gold.options.schema is None:
            continue
        names.append(name)
    return names
