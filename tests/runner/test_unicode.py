"""Any Unicode text round-trips: cache, generations, samples, results and every report.

U+2028, U+2029 and U+0085 in an output or a gold input used to crash report writing after a
complete run (``str.splitlines`` split a JSONL record in two), and `heldout report` could not
rebuild. JSONL is split on "\\n" only, everywhere."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from heldout.backends import MockBackend
from heldout.plan import load_plan
from heldout.report import write_reports
from heldout.results._samples import read_samples
from heldout.runner import evaluate

HOSTILE = ["a\u2028b", "c\u2029d", "e\x85f", "g\x1ch\x1di\x1ej", "k\rl", "m\r\nn", "\x0bo\x0cp"]
texts = st.text(st.characters(blacklist_categories=["Cs"]), min_size=1, max_size=40)


def _project(root: Path, inputs: list[str], outputs: list[str]) -> None:
    rows = [{"id": f"s{i}", "input": x, "target": x} for i, x in enumerate(inputs)]
    (root / "gold.jsonl").write_text(
        "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8"
    )
    (root / "heldout.yaml").write_text(
        "name: unicode\ntarget_behavior: t\ntask: {shape: qa, data: gold.jsonl}\n"
        "primary_metric: exact_match\nbaseline: 0.1\nsuccess_threshold: 0.5\n"
        "min_detectable_lift: 0.1\nmodels:\n  base: {backend: mock, name: b}\n"
        "  candidate: {backend: mock, name: c}\nstats: {resamples: 200}\n"
    )


def _round_trip(root: Path, inputs: list[str], outputs: list[str]) -> None:
    _project(root, inputs, outputs)
    loaded = load_plan(root / "heldout.yaml")
    backends = {
        "base": MockBackend("b", outputs={f"s{i}": o for i, o in enumerate(outputs)}),
        "candidate": MockBackend("c", outputs={f"s{i}": x for i, x in enumerate(inputs)}),
    }
    for _ in range(2):  # the second run is answered from the cache
        ran = evaluate(loaded, backends=dict(backends))
        result, folder = ran.result, ran.folder
    rows = read_samples(folder)
    got = {(r["model"], r["id"]): r["output"] for r in rows}
    for i, (x, o) in enumerate(zip(inputs, outputs, strict=True)):
        assert got[("base", f"s{i}")] == o
        assert got[("candidate", f"s{i}")] == x
    gens = [
        json.loads(line)
        for line in (folder / "generations.jsonl").read_text(encoding="utf-8").split("\n")
        if line
    ]
    assert {g["text"] for g in gens if g["model"] == "base"} == set(outputs)
    written = write_reports(folder)  # what `heldout report RUN` does
    assert {p.name for p in written.values()} >= {"report.html", "report.md", "junit.xml"}
    assert result.verdict.status


def test_line_separators_in_outputs_and_inputs(tmp_path: Path) -> None:
    _round_trip(tmp_path, HOSTILE, [h[::-1] for h in HOSTILE])


@settings(
    max_examples=15,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    st.lists(
        st.tuples(texts.filter(lambda t: t.strip() != ""), texts),  # an empty input is refused
        min_size=2,
        max_size=6,
        unique_by=lambda t: t[0],
    )
)
def test_arbitrary_unicode_round_trips(tmp_path: Path, pairs: list[tuple[str, str]]) -> None:
    case = Path(tempfile.mkdtemp(dir=tmp_path))
    _round_trip(case, [p[0] for p in pairs], [p[1] for p in pairs])
