"""A corpus of malformed inputs through the real `heldout` entry point.

Every case asserts its documented exit code, that the message names the file, line or field
(and, where the case has one, how to fix it), that no traceback reaches the terminal and that
it finishes in under 10 s. Families: plan YAML, gold sets (JSONL, CSV, Parquet), prediction
files (JSONL, CSV, lm-eval, Inspect), CLI arguments, damaged databases and server answers.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest

HELDOUT = shutil.which("heldout", path=str(Path(sys.executable).parent))

PLAN = """name: bad
target_behavior: answer questions
task: {shape: qa, data: gold.jsonl}
primary_metric: exact_match
baseline: 0.2
success_threshold: 0.5
min_detectable_lift: 0.1
models:
  base: {backend: mock, name: b, default: ok}
  candidate: {backend: mock, name: c, default: ok}
stats: {resamples: 200}
"""
GOLD = "".join(
    json.dumps({"id": f"q{i}", "input": f"q {i}", "target": "ok"}) + "\n" for i in range(6)
)


@dataclass
class Case:
    name: str
    files: dict[str, str | bytes] = field(default_factory=dict)
    args: tuple[str, ...] = ("plan", "validate")
    code: int = 2
    says: tuple[str, ...] = ()
    setup: Callable[[Path], None] | None = None


def _plan(old: str, new: str) -> dict[str, str | bytes]:
    assert old in PLAN, old
    return {"heldout.yaml": PLAN.replace(old, new), "gold.jsonl": GOLD}


def _set(line: str, value: str) -> dict[str, str | bytes]:
    """Replace the value of a top-level ``line`` key in the plan."""
    key = line.split(":")[0]
    text = "\n" + PLAN
    start = text.index(f"\n{key}:") + 1
    end = text.index("\n", start)
    return {"heldout.yaml": (text[:start] + f"{key}: {value}" + text[end:])[1:], "gold.jsonl": GOLD}


CASES: list[Case] = []
add = CASES.append

# ------------------------------------------------------------------ plan YAML: values
for key, value, says in [
    ("baseline", "false", "baseline"),
    ("baseline", "'0.3'", "baseline"),
    ("baseline", "[0.3]", "baseline"),
    ("baseline", "{a: 1}", "baseline"),
    ("baseline", "null", "baseline"),
    ("baseline", "1.5", "baseline"),
    ("baseline", "-0.2", "baseline"),
    ("baseline", ".nan", "baseline"),
    ("success_threshold", "true", "success_threshold"),
    ("success_threshold", "0.1", "success_threshold"),
    ("success_threshold", "2", "success_threshold"),
    ("success_threshold", "'high'", "success_threshold"),
    ("min_detectable_lift", "0", "min_detectable_lift"),
    ("min_detectable_lift", "-0.1", "min_detectable_lift"),
    ("min_detectable_lift", "'a'", "min_detectable_lift"),
    ("min_detectable_lift", "5", "min_detectable_lift"),
    ("primary_metric", "acuracy", "primary_metric"),
    ("primary_metric", "rouge1", "primary_metric"),
    ("primary_metric", "recall[x]", "primary_metric"),
    ("primary_metric", "42", "primary_metric"),
    ("name", "''", "name"),
    ("target_behavior", "''", "target_behavior"),
    ("task", "{shape: poem, data: gold.jsonl}", "task.shape"),
    ("task", "{shape: qa}", "task.data"),
    ("task", "{shape: qa, data: missing.jsonl}", "missing.jsonl"),
    ("task", "{shape: qa, data: gold.jsonl, prompt: nope.txt}", "nope.txt"),
    ("task", "{shape: qa, data: gold.jsonl, template: 'Q: {question}'}", "question"),
    ("task", "{shape: qa, data: gold.jsonl, labels: [a, b]}", "task.labels"),
    ("task", "{shape: qa, data: gold.jsonl, aliases: {x: y}}", "task.aliases"),
    ("task", "{shape: qa, data: gold.jsonl, label_match: mention}", "task.label_match"),
    ("task", "{shape: qa, data: gold.jsonl, span_match: partial}", "task.span_match"),
    ("task", "{shape: qa, data: gold.jsonl, use_stemmer: true}", "task.use_stemmer"),
    ("task", "{shape: qa, data: gold.jsonl, secondary_metrics: [nope]}", "secondary_metrics"),
    ("task", "{shape: qa, data: gold.jsonl, extract_json: true}", "task.extract_json"),
    ("task", "{shape: qa, data: gold.jsonl, lables: [a]}", "did you mean 'labels'"),
    ("task", "[qa, gold.jsonl]", "task"),
    ("stats", "{confidence: 1.5}", "stats.confidence"),
    ("stats", "{confidence: 0.3}", "stats.confidence"),
    ("stats", "{resamples: 10}", "stats.resamples"),
    ("stats", "{resamples: 1e9}", "stats.resamples"),
    ("stats", "{resamples: 'many'}", "stats.resamples"),
    ("stats", "{seed: -1}", "stats.seed"),
    ("stats", "{power: 2}", "stats.power"),
    ("stats", "{bar_rule: maybe}", "stats.bar_rule"),
    ("stats", "{discordance: 0}", "stats.discordance"),
    ("stats", "{paired_sd: -1}", "stats.paired_sd"),
    ("stats", "{seeed: 1}", "did you mean 'seed'"),
    ("stats", "7", "stats"),
]:
    add(Case(f"plan {key}={value}", _set(key, value), says=(says,)))

for old, new, says in [
    ("backend: mock, name: b, default: ok", "backend: vllm", "unknown backend 'vllm'"),
    ("backend: mock, name: b, default: ok", "model: x", "'backend' is required"),
    ("  base: {backend: mock, name: b, default: ok}\n", "", "models.base"),
    (
        "backend: mock, name: b, default: ok",
        "backend: openai, model: m, timeout_s: 1e300",
        "models.base.timeout_s",
    ),
    (
        "backend: mock, name: b, default: ok",
        "backend: openai, model: m, max_retries: 1000000000",
        "models.base.max_retries",
    ),
    (
        "backend: mock, name: b, default: ok",
        "backend: openai, model: m, concurrency: 0",
        "models.base.concurrency",
    ),
    (
        "backend: mock, name: b, default: ok",
        "backend: openai, model: m, params: {temperature: -1}",
        "models.base.params.temperature",
    ),
    (
        "backend: mock, name: b, default: ok",
        "backend: openai, model: m, params: {top_p: 0}",
        "models.base.params.top_p",
    ),
    (
        "backend: mock, name: b, default: ok",
        "backend: openai, model: m, params: {max_tokens: 0}",
        "models.base.params.max_tokens",
    ),
    (
        "backend: mock, name: b, default: ok",
        "backend: openai, model: m, max_response_bytes: 5",
        "models.base.max_response_bytes",
    ),
    (
        "backend: mock, name: b, default: ok",
        "backend: openai, model: m, max_retry_wait_s: -1",
        "models.base.max_retry_wait_s",
    ),
    (
        "backend: mock, name: b, default: ok",
        "backend: openai, model: m, base_url: 'http://u:p@127.0.0.1:9/v1'",
        "holds credentials",
    ),
    (
        "backend: mock, name: b, default: ok",
        "backend: openai, model: m, api_key: sk-123",
        "models.base.api_key",
    ),
    (
        "backend: mock, name: b, default: ok",
        "backend: file, path: nope.jsonl",
        "nope.jsonl",
    ),
    (
        "backend: mock, name: b, default: ok",
        "backend: file, path: p.jsonl, format: xml",
        "models.base.format",
    ),
    (
        "backend: mock, name: b, default: ok",
        "backend: hf, model: m, dtype: float8",
        "models.base.dtype",
    ),
    (
        "backend: mock, name: b, default: ok",
        "backend: openai, model: m, endpoint: completions, system_prompt: x",
        "need endpoint: chat",
    ),
    (
        "backend: mock, name: b, default: ok",
        "backend: openai, model: m, messages: [{role: user, content: hi}]",
        "no message contains '{prompt}'",
    ),
    (
        "backend: mock, name: b, default: ok",
        "backend: openai, model: m, extra_body: {model: x}",
        "extra_body must not set model",
    ),
    (
        "backend: mock, name: b, default: ok",
        "backend: openai, model: m, requests_per_minute: 0",
        "models.base.requests_per_minute",
    ),
    (
        "backend: mock, name: b, default: ok",
        "backend: openai, model: m, endpoint: chat, messages: [{role: bot, content: '{prompt}'}]",
        "models.base.messages",
    ),
    (
        "backend: mock, name: b, default: ok",
        "backend: file, path: p.jsonl, missing: maybe",
        "models.base.missing",
    ),
    (
        "backend: mock, name: b, default: ok",
        "backend: file, path: p.jsonl, epoch: 0",
        "models.base.epoch",
    ),
    ("name: c, default: ok", "name: b, default: ok", "identical to models.base"),
]:
    add(Case(f"plan models {new[:40]}", _plan(old, new), says=(says,)))

for guard, says in [
    ("{max_drop: 0.1}", "a guardrail needs one of the keys"),
    ("{suite: nosuch, max_drop: 0.1}", "unknown suite 'nosuch'"),
    ("{suite: general, max_drop: -1}", "guardrails[0].max_drop"),
    ("{suite: general, max_drop: 2}", "guardrails[0].max_drop"),
    ("{suite: general, max_drop: '5%'}", "guardrails[0].max_drop"),
    ("{suite: general, metric: accuracy, max_drop: 0.1}", "guardrails[0].metric"),
    ("{suite: mine, data: nope.jsonl, max_drop: 0.1}", "nope.jsonl"),
    ("{suite: mine, data: gold.jsonl, metric: nope, max_drop: 0.1}", "guardrails[0].metric"),
    ("{slices: [], max_drop: 0.1}", "guardrails[0].slices"),
    ("{slices: [lang], max_drop: 0.1, min_size: 0}", "guardrails[0].min_size"),
    ("{calibration: mce, max_increase: 0.1}", "guardrails[0].calibration"),
    ("{calibration: ece, max_increase: 0.1}", "guardrails[0].calibration"),
    ("{calibration: ece, max_increase: 0.1, bins: 1}", "guardrails[0].bins"),
    ("{metric: 'rouge1', max_drop: 0.1}", "guardrails[0].metric"),
    ("{metric: 'recall[*]', max_drop: 0.1}", "guardrails[0].metric"),
    ("{suite: general, max_drop: 0.1, unresolved: ignore}", "guardrails[0].unresolved"),
    ("{suite: general, max_drop: 0.1, fail_when: never}", "guardrails[0].fail_when"),
    ("{suite: general, max_dorp: 0.1}", "did you mean 'max_drop'"),
]:
    add(
        Case(
            f"plan guardrail {guard}",
            {"heldout.yaml": PLAN + f"guardrails:\n  - {guard}\n", "gold.jsonl": GOLD},
            says=(says,),
        )
    )

add(
    Case(
        "plan guardrails not a list",
        {"heldout.yaml": PLAN + "guardrails: general\n"},
        says=("guardrails",),
    )
)
add(
    Case(
        "plan unknown top-level key",
        {"heldout.yaml": PLAN + "sucess_threshold: 0.9\n"},
        says=("did you mean 'success_threshold'",),
    )
)
add(
    Case(
        "plan duplicate key",
        {"heldout.yaml": PLAN + "baseline: 0.3\n"},
        says=("key appears twice", "line"),
    )
)
add(
    Case(
        "plan YAML syntax",
        {"heldout.yaml": PLAN + "stats: {resamples: [\n"},
        says=("YAML syntax error",),
    )
)
add(
    Case(
        "plan tab indentation",
        {"heldout.yaml": PLAN.replace("  base:", "\tbase:")},
        says=("YAML syntax error",),
    )
)
add(Case("plan empty file", {"heldout.yaml": ""}, says=("the plan is empty", "heldout init")))
add(Case("plan only a comment", {"heldout.yaml": "# nothing\n"}, says=("the plan is empty",)))
add(Case("plan a list", {"heldout.yaml": "- a\n- b\n"}, says=("must be a mapping",)))
add(Case("plan a scalar", {"heldout.yaml": "hello\n"}, says=("must be a mapping",)))
add(
    Case(
        "plan invalid UTF-8",
        {"heldout.yaml": PLAN.encode() + b"# \xff\xfe\n"},
        says=("not valid UTF-8",),
    )
)
add(Case("plan missing", {}, says=("plan file not found", "heldout init")))
add(
    Case(
        "plan alias bomb",
        {
            "heldout.yaml": 'a: &a ["x","x","x","x","x","x","x","x","x"]\n'
            + "".join(
                f"{c}: &{c} [{','.join('*' + p for _ in range(9))}]\n"
                for p, c in zip("abcdefgh", "bcdefghi", strict=True)
            )
        },
        says=("alias bomb",),
    )
)
add(
    Case(
        "plan deep flow nesting",
        {"heldout.yaml": "a: " + "[" * 5000 + "]" * 5000 + "\n"},
        says=("nested deeper than 64",),
    )
)
add(
    Case(
        "plan deep block nesting",
        {"heldout.yaml": "".join("  " * i + f"k{i}:\n" for i in range(3000)) + "  " * 3000 + "v\n"},
        says=("nested deeper than 64",),
    )
)
add(
    Case(
        "plan python tag",
        {"heldout.yaml": "name: !!python/object/apply:os.system ['id']\n"},
        says=("Python tags",),
    )
)
add(
    Case(
        "plan python name tag",
        {"heldout.yaml": "a: !!python/name:os.system\n"},
        says=("Python tags",),
    )
)
add(Case("plan plugin missing", {"heldout.yaml": PLAN + "plugins: [nope.py]\n"}, says=("nope.py",)))
add(
    Case(
        "plan plugin syntax error",
        {"heldout.yaml": PLAN + "plugins: [bad.py]\n", "bad.py": "def (:\n"},
        says=("bad.py",),
    )
)


# ------------------------------------------------------------------ gold sets
def _gold(text: str | bytes, name: str = "gold.jsonl") -> dict[str, str | bytes]:
    files: dict[str, str | bytes] = {name: text}
    if name != "gold.jsonl":
        files["heldout.yaml"] = PLAN.replace("data: gold.jsonl", f"data: {name}")
    else:
        files["heldout.yaml"] = PLAN
    return files


ROW = '{"id": "q9", "input": "x", "target": "ok"}'
for label, text, says in [
    ("malformed line", GOLD + '{"id": "x", "input": \n', "gold.jsonl:7"),
    ("NaN constant", GOLD + '{"id": "x", "input": "a", "target": NaN}\n', "gold.jsonl:7"),
    ("Infinity constant", GOLD + '{"id": "x", "input": "a", "target": Infinity}\n', "gold.jsonl:7"),
    (
        "duplicate key",
        GOLD + '{"id": "x", "id": "y", "input": "a", "target": "b"}\n',
        "duplicate key",
    ),
    ("duplicate id", GOLD + GOLD.splitlines()[0] + "\n", "q0"),
    ("missing id", GOLD + '{"input": "a", "target": "b"}\n', "gold.jsonl:7"),
    ("missing input", GOLD + '{"id": "x", "target": "b"}\n', "input"),
    ("missing target", GOLD + '{"id": "x", "input": "b"}\n', "target"),
    ("id is a list", GOLD + '{"id": [1], "input": "a", "target": "b"}\n', "gold.jsonl:7"),
    ("id is a bool", GOLD + '{"id": true, "input": "a", "target": "b"}\n', "gold.jsonl:7"),
    ("id is null", GOLD + '{"id": null, "input": "a", "target": "b"}\n', "gold.jsonl:7"),
    ("empty input", GOLD + '{"id": "x", "input": "  ", "target": "b"}\n', "input is empty"),
    ("input is a number", GOLD + '{"id": "x", "input": 5, "target": "b"}\n', "gold.jsonl:7"),
    ("line is an array", GOLD + "[1, 2]\n", "gold.jsonl:7"),
    ("line is a number", GOLD + "42\n", "gold.jsonl:7"),
    (
        "deeply nested JSON",
        GOLD + '{"id": "x", "input": ' + "[" * 100_000 + "]" * 100_000 + "}\n",
        "nested too deeply",
    ),
    ("empty file", "", "file is empty"),
    ("whitespace only", "\n\n  \n", "gold.jsonl"),
]:
    add(Case(f"gold jsonl {label}", _gold(text), says=(says,)))
add(
    Case(
        "gold jsonl invalid UTF-8",
        _gold(GOLD.encode() + b'{"id": "\xff"}\n'),
        says=("gold.jsonl:7", "invalid UTF-8"),
    )
)
add(
    Case(
        "gold unsupported extension",
        _gold(GOLD, "gold.txt"),
        says=("unsupported extension '.txt'",),
    )
)
add(Case("gold .json extension", _gold(GOLD, "gold.json"), says=("unsupported extension '.json'",)))
add(Case("gold is a directory", {"heldout.yaml": PLAN, "gold.jsonl/x": "a"}, says=("gold.jsonl",)))
CSV = "id,input,target\n" + "".join(f"q{i},q {i},ok\n" for i in range(6))
for label, text, says in [
    ("NUL byte", CSV + "q9,a\x00b,ok\n", "NUL byte"),
    ("no header", "", "gold.csv"),
    ("empty header column", "id,,target\nq1,a,b\n", "gold.csv:1"),
    ("repeated header", "id,id,target\nq1,a,b\n", "gold.csv:1"),
    ("ragged row", CSV + "q9,a,b,c\n", "gold.csv"),
    ("unclosed quote", CSV + 'q9,"abc,ok\n', "gold.csv"),
    ("missing id column", "key,input,target\nq1,a,b\n", "id"),
    ("duplicate id", CSV + "q0,again,ok\n", "q0"),
]:
    add(Case(f"gold csv {label}", _gold(text, "gold.csv"), says=(says,)))
add(
    Case(
        "gold csv invalid UTF-8",
        _gold(CSV.encode() + b"q9,\xff,ok\n", "gold.csv"),
        says=("gold.csv", "invalid UTF-8"),
    )
)
add(
    Case(
        "gold parquet garbage",
        _gold(b"PAR1 not really parquet", "gold.parquet"),
        says=("gold.parquet",),
    )
)
add(Case("gold parquet empty", _gold(b"", "gold.parquet"), says=("gold.parquet",)))
add(Case("gold tsv ragged", _gold("id\tinput\ttarget\nq1\ta\n", "gold.tsv"), says=("gold.tsv",)))


# ------------------------------------------------------------------ prediction files (run)
def _preds(name: str, content: str | bytes, fmt: str = "") -> dict[str, str | bytes]:
    extra = f", format: {fmt}" if fmt else ""
    plan = PLAN.replace(
        "backend: mock, name: b, default: ok", f"backend: file, path: {name}{extra}"
    )
    return {"heldout.yaml": plan, "gold.jsonl": GOLD, name: content}


PRED = "".join(json.dumps({"id": f"q{i}", "output": "ok"}) + "\n" for i in range(6))
RUN = ("run",)
for label, name, content, fmt, says in [
    (
        "missing ids",
        "p.jsonl",
        PRED.split("\n", 3)[-1],
        "",
        "no prediction for 3 of 6 samples (first ids 'q0', 'q1', 'q2')",
    ),
    ("duplicate id", "p.jsonl", PRED + PRED.splitlines()[0] + "\n", "", "duplicate id"),
    ("output is a number", "p.jsonl", PRED + '{"id": "q9", "output": 5}\n', "", "no output text"),
    (
        "output is null",
        "p.jsonl",
        PRED.replace('"output": "ok"}', '"output": null}', 1),
        "",
        "no output text",
    ),
    ("no id", "p.jsonl", PRED + '{"output": "x"}\n', "", "no usable sample id"),
    (
        "confidence out of range",
        "p.jsonl",
        PRED.replace('"ok"}', '"ok", "confidence": 1.5}', 1),
        "",
        "confidence must be a number in [0, 1]",
    ),
    (
        "confidence a word",
        "p.jsonl",
        PRED.replace('"ok"}', '"ok", "confidence": "high"}', 1),
        "",
        "confidence must be a number",
    ),
    (
        "probabilities do not sum to 1",
        "p.jsonl",
        PRED.replace('"ok"}', '"ok", "probabilities": {"a": 0.9, "b": 0.9}}', 1),
        "",
        "must sum to 1",
    ),
    (
        "probabilities a list",
        "p.jsonl",
        PRED.replace('"ok"}', '"ok", "probabilities": [0.5, 0.5]}', 1),
        "",
        "probabilities must be an object",
    ),
    ("malformed line", "p.jsonl", PRED + "{not json\n", "", "p.jsonl:7"),
    ("csv missing output column", "p.csv", "id,text\nq0,ok\n", "", "no output text"),
    ("lm-eval malformed", "samples_t.jsonl", "{bad\n", "", "samples_t.jsonl:1"),
    (
        "lm-eval duplicate doc",
        "samples_t.jsonl",
        (json.dumps({"doc_id": 0, "doc": {}, "filtered_resps": ["ok"]}) + "\n") * 2,
        "",
        "duplicate id 0",
    ),
    ("lm-eval named .json", "samples_t.json", "{bad\n", "lm-eval", "samples_t.json:1"),
    ("inspect malformed json", "log.json", "{not json", "inspect", "log.json"),
    ("inspect eval not a zip", "log.eval", b"not a zip at all", "inspect", "log.eval"),
    ("predictions missing file", "gone.jsonl", None, "", "gone.jsonl"),
]:
    files = _preds(name, content if content is not None else "", fmt)
    if content is None:
        del files[name]
    add(Case(f"predictions {label}", files, args=RUN, says=(says,)))

# ------------------------------------------------------------------ CLI arguments
for label, args, code, says in [
    ("unknown command", ("frobnicate",), 2, ("No such command",)),
    ("unknown option", ("plan", "validate", "--frob"), 2, ("No such option",)),
    ("plan option without value", ("plan", "validate", "--plan"), 2, ("requires an argument",)),
    ("power bad number", ("power", "--base-rate", "high"), 2, ("base-rate",)),
    (
        "power out of range",
        ("power", "--base-rate", "1.5", "--lift", "0.1"),
        2,
        ("base rate must be in [0, 1]",),
    ),
    (
        "power negative lift",
        ("power", "--base-rate", "0.5", "--lift", "-0.1"),
        2,
        ("lift must be > 0",),
    ),
    (
        "power no question",
        ("power", "--base-rate", "0.5", "-p", "none.yaml"),
        2,
        ("give --lift, --n or both",),
    ),
    (
        "power zero sd",
        ("power", "--sd", "0", "--lift", "0.1", "-p", "none.yaml"),
        2,
        ("must be > 0",),
    ),
    ("report missing run", ("report", "nope"), 2, ("nope",)),
    ("compare missing runs", ("compare", "a", "b"), 2, ("'a'",)),
    ("leak missing train", ("leak", "--train", "nope.jsonl"), 2, ("nope.jsonl",)),
    ("metrics unknown shape", ("metrics", "--shape", "poem"), 2, ("poem",)),
    ("run missing plan", ("run", "-p", "nope.yaml"), 2, ("plan file not found",)),
    ("verify without lock", ("plan", "verify"), 2, ("heldout plan lock",)),
]:
    add(
        Case(
            f"cli {label}",
            {"heldout.yaml": PLAN, "gold.jsonl": GOLD},
            args=args,
            code=code,
            says=says,
        )
    )
add(Case("cli init over a file", {"x": "file"}, args=("init", "x"), says=("x",)))
add(Case("cli init existing", {"heldout.yaml": PLAN}, args=("init", "."), says=("--force",)))
add(
    Case(
        "cli run --out unwritable",
        {"heldout.yaml": PLAN, "gold.jsonl": GOLD},
        args=("run", "--out", "/proc/heldout-run"),
        says=("/proc/heldout-run", "--out"),
    )
)


# ------------------------------------------------------------------ damaged databases
def _damage(name: str) -> Callable[[Path], None]:
    def setup(root: Path) -> None:
        (root / ".heldout").mkdir(exist_ok=True)
        (root / ".heldout" / name).write_bytes(b"this is not a database" * 100)

    return setup


add(
    Case(
        "damaged cache.sqlite",
        {"heldout.yaml": PLAN, "gold.jsonl": GOLD},
        args=RUN,
        says=("cache.sqlite is damaged", "mv"),
        setup=_damage("cache.sqlite"),
    )
)
add(
    Case(
        "damaged runs.sqlite on history",
        {"heldout.yaml": PLAN, "gold.jsonl": GOLD},
        args=("history",),
        says=("runs.sqlite is damaged",),
        setup=_damage("runs.sqlite"),
    )
)
add(
    Case(
        "damaged runs.sqlite on run",
        {"heldout.yaml": PLAN, "gold.jsonl": GOLD},
        args=RUN,
        code=1,
        says=("runs.sqlite is damaged",),
        setup=_damage("runs.sqlite"),
    )
)

# ------------------------------------------------------------------ server answers
SERVER_FAULTS = {
    "not-json": "malformed response: not JSON",
    "not-utf8": "body is not UTF-8",
    "no-choices": "malformed response (KeyError('choices')",
    "truncated": "Payload",
    "html": "malformed response: an HTML page",
    "huge": "(max_response_bytes)",
    "echo-auth": "HTTP 401",
    "500": "HTTP 500",
    "503": "HTTP 503",
    "429": "HTTP 429",
    "drop": "Disconnected",
}
for fault, reason in SERVER_FAULTS.items():
    says = ("request(s) failed after all retries", "--failed-as-wrong", "sample 'q", reason)
    add(Case(f"server always {fault}", args=RUN, says=says, files={"fault": fault}))
add(Case("server api key unset", args=RUN, says=("HELDOUT_NO_SUCH_KEY",), files={"fault": "key"}))


def _server_case(case: Case, root: Path, server_url: str) -> None:
    fault = str(case.files.pop("fault"))
    model = f"backend: openai, base_url: '{server_url}', model: m, max_retries: 1, max_response_bytes: 100000"
    if fault == "key":
        model += ", api_key_env: HELDOUT_NO_SUCH_KEY"
    case.files["heldout.yaml"] = PLAN.replace("backend: mock, name: b, default: ok", model)
    case.files["gold.jsonl"] = GOLD


def _write(root: Path, files: dict[str, str | bytes]) -> None:
    for name, content in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content, encoding="utf-8")


#: Words that tell the user what to do: the constraint to meet ("must be ≤ 1"), the known
#: values ("known: ..."), the action ("rerun", "remove", "re-save", "move it aside" ...).
FIX_CUES = (
    "must",
    "known",
    "did you mean",
    "use ",
    "remove",
    "rerun",
    "re-save",
    "move it aside",
    "keep one",
    "give ",
    "pass ",
    "write ",
    "run 'heldout",
    "heldout init",
    "heldout plan lock",
    "only applies",
    "is not one of",
    "applies to",
    "check the path",
    "try '",
    "expected",
    "set ",
    "export ",
    "relative to",
    "wait for",
    "add ",
    "quote ",
    "--help",
)


def test_the_corpus_has_at_least_150_inputs() -> None:
    assert len(CASES) >= 150
    assert len({c.name for c in CASES}) == len(CASES)


@pytest.fixture(scope="module")
def fault_server() -> object:
    from heldout.testing import FakeOpenAIServer, ServerScript

    prompts = [f"q {i}" for i in range(6)]
    server = FakeOpenAIServer(ServerScript(answer=lambda p: "ok", huge_bytes=300_000))
    server.start()
    yield server, prompts
    server.stop()


@pytest.mark.skipif(HELDOUT is None, reason="the heldout console script is not installed")
@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_bad_input(case: Case, tmp_path: Path, fault_server: object) -> None:
    case = Case(case.name, dict(case.files), case.args, case.code, case.says, case.setup)
    if "fault" in case.files:
        server, prompts = fault_server  # type: ignore[misc]
        fault = str(case.files["fault"])
        if fault != "key":
            server.script.faults = {p: [fault] * 10 for p in prompts}
            server.requests.clear()
        _server_case(case, tmp_path, server.base_url)
    _write(tmp_path, case.files)
    if case.setup is not None:
        case.setup(tmp_path)
    env = {k: v for k, v in os.environ.items() if k != "HELDOUT_NO_SUCH_KEY"}
    env |= {"COLUMNS": "200", "NO_COLOR": "1"}
    start = time.monotonic()
    r = subprocess.run(
        [str(HELDOUT), *case.args], cwd=tmp_path, capture_output=True, text=True, env=env,
        timeout=30,
    )  # fmt: skip
    took = time.monotonic() - start
    said = " ".join((r.stdout + r.stderr).split())
    assert "Traceback" not in said, said[-3000:]
    assert r.returncode == case.code, said[-3000:]
    for part in case.says:
        assert part in said, (part, said[-3000:])
    if case.code == 2:  # a bad input: the message must also say how to fix it
        assert any(cue in said.lower() for cue in FIX_CUES), said[-3000:]
    assert took < 10, took
