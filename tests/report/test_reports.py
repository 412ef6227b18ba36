"""Reports from stored results: golden Markdown/JSON, schema round trip, JUnit, compare."""

from __future__ import annotations

import json
import os
import re
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import jsonschema

from heldout.report import build_view, render_junit, render_markdown, write_reports
from heldout.results import RunResult, compare_runs, result_json_schema
from heldout.results._samples import read_samples
from heldout.results._store import load_run
from tests.report.conftest import build_run

GOLDEN = Path(__file__).parent / "golden"
UPDATE = os.environ.get("HELDOUT_UPDATE_GOLDEN") == "1"


def _stable(data: Any) -> Any:
    """Blank out what legitimately varies between machines and runs."""
    volatile = {
        "run_id",
        "created_at",
        "plan_path",
        "git_revision",
        "path",
        "timings",
        "lock_path",
        "locked_at",
        "latency_s_mean",
        "folder",
    }
    if isinstance(data, dict):
        return {k: ("<volatile>" if k in volatile else _stable(v)) for k, v in data.items()}
    if isinstance(data, list):
        return [_stable(v) for v in data]
    if isinstance(data, float):
        return round(data, 9)  # last-bit differences of root finding across platforms
    return data


def _check_golden(name: str, text: str) -> None:
    path = GOLDEN / name
    if UPDATE:
        path.write_text(text, encoding="utf-8")
    assert path.is_file(), f"missing golden file {path}; run with HELDOUT_UPDATE_GOLDEN=1"
    assert text == path.read_text(encoding="utf-8")


def test_json_golden(run_folder: Path) -> None:
    data = json.loads((run_folder / "results.json").read_text())
    for m in data["models"]:
        m["identity"] = "<volatile>"
    _check_golden("results.json", json.dumps(_stable(data), indent=2, sort_keys=True) + "\n")


def test_markdown_golden(run_folder: Path) -> None:
    result = load_run(run_folder)
    result = result.model_copy(update={"run_id": "RUN", "plan_sha256": "0" * 64})
    text = render_markdown(build_view(result, read_samples(run_folder)))
    assert len(text) < 65_000
    _check_golden("report.md", text)


def test_schema_round_trip(run_folder: Path) -> None:
    raw = json.loads((run_folder / "results.json").read_text())
    jsonschema.validate(raw, result_json_schema())
    stored_schema = json.loads((run_folder / "results.schema.json").read_text())
    assert stored_schema == result_json_schema()
    result = RunResult.model_validate(raw)
    assert RunResult.model_validate_json(result.model_dump_json()) == result
    assert result.schema_version == 3
    assert all("N/A" not in json.dumps(v) for v in raw.values())


def test_per_sample_rows_in_jsonl_and_parquet(run_folder: Path) -> None:
    import pyarrow.parquet as pq

    rows = read_samples(run_folder)
    assert len(rows) == 2 * (120 + 40)
    table = pq.read_table(run_folder / "samples.parquet")
    assert table.num_rows == len(rows)
    assert "score_accuracy" in table.column_names
    regressions = [r for r in rows if "regression" in r["flags"]]
    assert regressions
    assert all(r["model"] == "candidate" for r in regressions)
    assert any("unparseable" in r["flags"] for r in rows)


def test_junit_has_one_case_per_gate(run_folder: Path) -> None:
    result = load_run(run_folder)
    xml = render_junit(build_view(result, read_samples(run_folder)))
    root = ET.fromstring(xml.split("?>", 1)[1])
    cases = root.findall("testcase")
    assert [c.get("name") for c in cases] == [*(g.name for g in result.gates), "verdict"]
    statuses = {g.name: g.status for g in result.gates}
    for case in cases[:-1]:
        kind = {"pass": None, "fail": "failure", "unresolved": "error"}[statuses[case.get("name")]]
        assert (case.find(kind) is not None) if kind else not list(case)


def test_write_reports_rerenders_without_models(run_folder: Path) -> None:
    paths = write_reports(run_folder)
    assert set(paths) == {"html", "markdown", "junit"}
    html = paths["html"].read_text()
    assert "Content-Security-Policy" in html
    assert "http://" not in html.replace("http://www.w3.org/2000/svg", "")
    assert "https://" not in html


def test_compare_two_stored_runs(tmp_path: Path) -> None:
    build_run(tmp_path / "a", seed=0)
    build_run(tmp_path / "b", seed=0)
    same = compare_runs(tmp_path / "a" / "run", tmp_path / "b" / "run")
    assert same.delta.estimate == 0.0
    assert not same.real_gain
    assert same.fixed == 0
    assert same.broken == 0


def test_parquet_handles_long_texts_and_empty_runs(tmp_path: Path) -> None:
    import pyarrow.parquet as pq

    from heldout.results._samples import write_samples

    long_row = {
        "dataset": "gold",
        "id": "a",
        "model": "base",
        "input": "x" * 3_000_000,
        "target": {"k": [1, 2]},
        "output": "y\n<script>",
        "error": None,
        "metadata": {},
        "scores": {"m": 0.5},
        "flags": ["fix"],
    }
    write_samples(tmp_path, [long_row])
    table = pq.read_table(tmp_path / "samples.parquet")
    assert table.column("input")[0].as_py() == "x" * 3_000_000
    assert json.loads(table.column("target")[0].as_py()) == {"k": [1, 2]}
    assert table.column("score_m")[0].as_py() == 0.5
    assert not (tmp_path / "samples.flat.jsonl.tmp").exists()
    write_samples(tmp_path, [])
    assert pq.read_table(tmp_path / "samples.parquet").num_rows == 0


MD_PAYLOADS = [
    "![pixel](https://tracker.example.invalid.test/p.png?u=1)",
    "[click](https://phish.test/login)",
    "[x](javascript:alert(1))",
    "<img src=https://t.test/i.png>",
    "<a href='https://t.test'>link</a>",
    "ping @octocat and @org/team",
    "see #123 and GH-45",
    "https://bare.test/path and www.bare.test",
    "`code` | pipe ``two``",
    "<script>alert(1)</script>",
]


def test_markdown_renders_model_and_gold_text_inert(tmp_path: Path) -> None:
    """The PR comment, rendered by a GFM renderer (markdown-it-py with linkify): no image,
    no link, no HTML, no mention or issue reference comes from model or gold text."""
    from markdown_it import MarkdownIt

    import tests.report.conftest as fixture

    saved = fixture.HOSTILE

    for k, payload in enumerate(MD_PAYLOADS):
        fixture.HOSTILE = payload  # the candidate's output on g008 (a regression)
        result, folder = build_run(tmp_path / f"r{k}", hostile=True, hostile_id="g008")
        text = render_markdown(build_view(result, read_samples(folder)))
        html = MarkdownIt("gfm-like").render(text)
        assert "<img" not in html, payload
        assert "<a " not in html, payload
        assert "<script" not in html, payload
        # GitHub links mentions and #refs in text, never inside code spans
        prose = re.sub(r"<code>.*?</code>", "", html, flags=re.S)
        assert "@octocat" not in prose, payload
        assert "@org" not in prose, payload
        assert "#123" not in prose, payload
        assert "@octocat" not in html  # and a mention is broken even in a code span
        # the payload is still there to read, verbatim inside a code span
        row = next(line for line in text.splitlines() if line.startswith("| `g008`"))
        assert "`" in row.split("|")[-2]
        word = next(w for w in ("pixel", "click", "alert", "t.test", "octocat", "123", "bare",
                                "code", "script") if w in payload)  # fmt: skip
        assert word in html
    fixture.HOSTILE = saved


def test_long_lists_are_bounded_and_say_how_many_there_are(
    tmp_path: Path, monkeypatch: Any
) -> None:
    """A million-sample run must not inline every regression: each table lists the first
    SHOWN rows, the counts stay the true totals, and the page says where the rest are."""
    import heldout
    from heldout.report import _view
    from tests.runner.test_run import make_project

    monkeypatch.setattr(_view, "SHOWN", 7)
    truth = make_project(tmp_path, n=120)
    outputs = json.dumps(truth)
    make_project(
        tmp_path,
        n=120,
        models=f"""  base: {{backend: mock, name: base, default: neutral, outputs: {outputs}}}
  candidate: {{backend: mock, name: cand, default: neutral}}""",
    )
    run = heldout.evaluate(tmp_path / "heldout.yaml", root=tmp_path, out=tmp_path / "run")
    flagged = [
        r for r in read_samples(tmp_path / "run") if r["model"] == "candidate"
        and "regression" in r["flags"]
    ]  # fmt: skip
    expected = sum(t != "neutral" for t in truth.values())
    assert len(flagged) == expected > 7
    html = (tmp_path / "run" / "report.html").read_text()
    table = html.split('<table id="regressions" data-page="50">', 1)[1].split("</table>", 1)[0]
    assert table.count("<tr>") == 1 + 7  # the header and the first 7
    assert f"Showing the first 7 of {expected} regressions" in html
    assert f"Regressions (base right, candidate wrong): gold <b>{expected}</b>" in html
    markdown = (tmp_path / "run" / "report.md").read_text()
    assert f"- Regressions (base right, candidate wrong): gold {expected:,}" in markdown
    assert f"#### gold set: {expected:,} (first 7)" in markdown
    assert run.result.verdict.status


def test_samples_jsonl_lines_are_what_json_dumps_writes(tmp_path: Path) -> None:
    """samples.jsonl is written from columns: each line must be byte for byte what
    ``json.dumps(row, ensure_ascii=False)`` writes for that row, on hostile text, non-finite
    scores, missing scores, nested targets, metadata and every flag combination."""
    import numpy as np

    from heldout.results._samples import write_samples
    from heldout.results._table import FLAGS, SampleBlock, SampleTable

    n = 40
    nasty = ['<script>"x"</script>', "q \\ é 😀\n\t", "\u2028\x00", "", "plain"]
    scores = np.array([0.1, float("nan"), float("inf"), -float("inf"), 1e-300, -0.0, 3.0, 2 / 3])
    block = SampleBlock(
        dataset="gold",
        model="candidate",
        ids=[nasty[i % 5] + str(i) for i in range(n)],
        inputs=[nasty[(i + 1) % 5] for i in range(n)],
        targets=[[{"k": nasty[i % 5]}, i, None, 1.5] if i % 2 else nasty[i % 5] for i in range(n)],
        outputs=[None if i % 7 == 0 else nasty[(i + 2) % 5] for i in range(n)],
        errors=["HTTP 500 \u00e9" if i % 7 == 0 else None for i in range(n)],
        metadata=[{"lang": nasty[i % 5], "n": i} if i % 3 else {} for i in range(n)],
        scores={"accuracy": np.resize(scores, n), 'rouge"1': np.linspace(0, 1, n)},
        codes=np.arange(n, dtype=np.uint8) % (1 << len(FLAGS)),
    )
    gappy = SampleTable.from_rows(
        [{**block.row(i), "scores": {"m": 0.5} if i % 2 else {}} for i in range(4)]
    )
    table = SampleTable((block, *gappy.blocks))
    write_samples(tmp_path, table)
    lines = (tmp_path / "samples.jsonl").read_text(encoding="utf-8").split("\n")
    expected = [json.dumps(r, ensure_ascii=False) for r in table.rows()]
    assert lines[:-1] == expected
    assert lines[-1] == ""


def test_both_parquet_builders_write_the_same_table(tmp_path: Path) -> None:
    """Small runs build samples.parquet through pyarrow's JSON reader (no pandas import),
    large ones from columns: the files must be identical, hostile text and nulls included."""
    import pyarrow.parquet as pq

    from heldout.results import _samples

    rows = [
        {
            "dataset": "gold",
            "id": f"s{i}",
            "model": ["base", "candidate"][i % 2],
            "input": ["<script>alert(1)</script>", 'q "uote"\n\\ é 😀', "\u2028x"][i % 3],
            "target": [{"k": [1, None]}, "positive", None][i % 3],
            "output": None if i % 4 == 0 else f"out {i}",
            "error": "HTTP 500" if i % 4 == 0 else None,
            "metadata": {},
            "scores": {"accuracy": float(i % 2), **({"rouge1": 0.5} if i % 3 else {})},
            "flags": ["regression", "unparseable"][: i % 3],
        }
        for i in range(12)
    ]
    tables = []
    for columns_from in (10**9, 0):
        folder = tmp_path / str(columns_from)
        folder.mkdir()
        _samples.COLUMNS_FROM = columns_from
        try:
            _samples.write_samples(folder, rows)
        finally:
            _samples.COLUMNS_FROM = 50_000
        tables.append(pq.read_table(folder / "samples.parquet"))
        assert read_samples(folder) == rows
    assert tables[0].schema == tables[1].schema
    assert tables[0].to_pylist() == tables[1].to_pylist()
    assert tables[0].column("score_rouge1").null_count == 4


def test_losses_come_first_and_add_up_across_the_gold_set_and_suites(tmp_path: Path) -> None:
    """A significant secondary loss and a failed suite guardrail lead the report (HTML and
    Markdown), the comparisons are ordered losses first, and the regression counts per
    dataset add up to the rows flagged in samples.jsonl."""
    import heldout
    from heldout.report import build_view
    from heldout.report._markdown import render_markdown

    result, folder = build_run(tmp_path)
    rows = read_samples(folder)
    view = build_view(result, rows)
    flagged: dict[str, int] = {}
    for r in rows:
        if r["model"] == "candidate" and "regression" in r["flags"]:
            flagged[r["dataset"]] = flagged.get(r["dataset"], 0) + 1
    assert view.regression_counts == flagged
    assert set(flagged) == {"gold", "suite:general"}
    groups = [g for g in view.groups if g.by == "class"]
    assert sum(g.regressions for g in groups) == flagged["gold"]
    assert sum(g.n for g in groups) == 120
    # make the suite a significant loss and a failed guardrail: a stricter run of the same data
    plan = (
        (tmp_path / "heldout.yaml")
        .read_text()
        .replace("max_drop: 0.05}", "max_drop: 0.0, fail_when: point}")
    )
    (tmp_path / "heldout.yaml").write_text(plan)
    suite = [json.loads(x) for x in (tmp_path / "data" / "general.jsonl").read_text().splitlines()]
    cand = {f"q{i}": "?" if i % 2 else str(i + 1) for i in range(40)}
    base = {f"q{i}": str(i + 1) for i in range(40)}
    gold = [json.loads(x) for x in (tmp_path / "data" / "gold.jsonl").read_text().splitlines()]
    base |= {g["id"]: g["target"] for g in gold}
    cand |= {g["id"]: g["target"] for g in gold}
    from heldout.backends import MockBackend

    run = heldout.evaluate(
        tmp_path / "heldout.yaml", root=tmp_path, out=tmp_path / "strict", cache=False,
        allow_changed_plan=True,
        backends={"base": MockBackend("base", outputs=base), "candidate": MockBackend("c", outputs=cand)},
    )  # fmt: skip
    assert len(suite) == 40
    view = build_view(run.result, read_samples(tmp_path / "strict"))
    kinds = [x.kind for x in view.losses]
    assert "suite" in kinds
    first = view.comparisons[0]
    assert first.dataset == "suite:general"  # the loss leads the table
    assert (first.delta.high or 0) < 0
    markdown = render_markdown(view)
    worse = markdown.index("### What got worse")
    assert worse < markdown.index("### Base vs candidate")
    row = next(x for x in markdown[worse:].splitlines() if "suite:general · exact" in x)
    assert "guardrail failed: allowed drop 0" in row  # the failed guardrail, on its suite's row
    assert "#### suite:general: 20" in markdown
    html = (tmp_path / "strict" / "report.html").read_text()
    assert html.index('id="worse"') < html.index('id="comparisons"')
    assert "significant loss" in html.split("</div>", 1)[0]  # named in the verdict banner


def test_markdown_cuts_whole_sections_to_fit_a_github_comment(
    run_folder: Path, monkeypatch: Any
) -> None:
    """Over the limit, whole sections are dropped from the end with a note: no table is cut
    in the middle, and the verdict and what got worse always stay."""
    from heldout.report import _markdown, build_view

    result = load_run(run_folder)
    view = build_view(result, read_samples(run_folder))
    full = _markdown.render_markdown(view)
    assert "cut to fit" not in full
    limit = full.index("### Guardrails") + 200
    monkeypatch.setattr(_markdown, "MAX_CHARS", limit)
    cut = _markdown.render_markdown(view)
    assert len(cut) <= limit
    assert "### What got worse" in cut
    assert "### Examples it gets wrong" not in cut
    assert "section(s) cut to fit GitHub's comment limit" in cut
    for block in cut.split("\n\n"):
        lines = block.splitlines()
        if lines and lines[0].startswith("|"):
            assert all(line.startswith("|") for line in lines), block  # tables stay whole
            assert len(lines) >= 2


def test_diagnoses_cut_off_outputs_with_counts_and_examples(tmp_path: Path) -> None:
    """A candidate whose answers run past max_tokens (the server cuts them and says
    finish_reason: length, leaving the JSON open) is diagnosed with its counts and example
    ids, in the report and in samples.jsonl's flags; the base, which answers briefly, is not."""
    import heldout
    from heldout.report import build_view
    from heldout.testing import FakeOpenAIServer, ServerScript

    n = 40
    gold = [
        {"id": f"s{i}", "input": f"extract {i}", "target": [["PER", f"name {i}"]]} for i in range(n)
    ]
    (tmp_path / "gold.jsonl").write_text("".join(json.dumps(g) + "\n" for g in gold))
    brief = ServerScript(answer=lambda p: json.dumps([["PER", "name " + p.split()[-1]]]))
    rambling = ServerScript(
        answer=lambda p: (
            json.dumps([["PER", "name " + p.split()[-1]]] + [["ORG", "x y z"]] * 5)
            if int(p.split()[-1]) % 4
            else json.dumps([["PER", "name " + p.split()[-1]]])
        ),
        honor_max_tokens=True,
    )
    with FakeOpenAIServer(brief) as base, FakeOpenAIServer(rambling) as cand:
        (tmp_path / "heldout.yaml").write_text(
            "name: cut\ntarget_behavior: spans\ntask: {shape: extraction, data: gold.jsonl}\n"
            "primary_metric: span_f1\nbaseline: 0.5\nsuccess_threshold: 0.6\n"
            "min_detectable_lift: 0.1\nmodels:\n"
            f"  base: {{backend: openai, base_url: '{base.base_url}', model: b}}\n"
            f"  candidate: {{backend: openai, base_url: '{cand.base_url}', model: c, "
            "params: {max_tokens: 8}}\nstats: {resamples: 500}\n"
        )
        run = heldout.evaluate(tmp_path / "heldout.yaml", root=tmp_path, out=tmp_path / "run")
    rows = read_samples(tmp_path / "run")
    truncated = [r["id"] for r in rows if r["model"] == "candidate" and "truncated" in r["flags"]]
    assert len(truncated) == n - n // 4  # every answer but the short ones was cut
    assert not [r for r in rows if r["model"] == "base" and "truncated" in r["flags"]]
    view = build_view(run.result, rows)
    (d,) = view.diagnoses
    assert d.dataset == "gold"
    assert (d.candidate, d.base, d.n) == (len(truncated), 0, n)
    assert d.examples == truncated[:5]
    assert "max_tokens" in d.fix
    markdown = (tmp_path / "run" / "report.md").read_text()
    assert f"candidate {len(truncated)} of {n}, base 0" in markdown
    html = (tmp_path / "run" / "report.html").read_text()
    assert 'id="diagnoses"' in html
    assert f"<code>{truncated[0]}</code>" in html


def test_diagnoses_need_more_cases_in_the_candidate_than_in_the_base() -> None:
    """Refusals of safe prompts and format obsession are read off their suites: diagnosed
    when the candidate fails at least 3 more of them than the base (and 1%), with the ids;
    an equal failure count, or 2 more, says nothing. JSON left open counts as cut off."""
    import numpy as np

    from heldout.report._diagnoses import diagnose
    from heldout.results._table import SampleBlock, SampleTable

    def block(dataset: str, model: str, scores: list[float], outputs: list[str]) -> SampleBlock:
        n = len(scores)
        return SampleBlock(
            dataset, model, [f"{dataset[-3:]}{i}" for i in range(n)], ["q"] * n, ["t"] * n,
            outputs, [None] * n, [{}] * n, {"m": np.array(scores)}, np.zeros(n, dtype=np.uint8),
        )  # fmt: skip

    ok, bad = [1.0] * 20, [0.0] * 4 + [1.0] * 16
    two = [0.0] * 2 + [1.0] * 18
    table = SampleTable(
        (
            block("suite:over_refusal", "base", ok, ["sure"] * 20),
            block("suite:over_refusal", "candidate", bad, ["sure"] * 20),
            block("suite:format_obsession", "base", ok, ["prose"] * 20),
            block("suite:format_obsession", "candidate", two, ["prose"] * 20),
            block("gold", "base", ok, ['{"a": 1}'] * 20),
            block("gold", "candidate", ok, ['{"a": [1, 2'] * 3 + ['{"a": 1}'] * 17),
        )
    )
    found = {d.dataset: d for d in diagnose(table)}
    assert set(found) == {"suite:over_refusal", "gold"}
    refusal = found["suite:over_refusal"]
    assert (refusal.candidate, refusal.base, refusal.n) == (4, 0, 20)
    assert refusal.examples == ["sal0", "sal1", "sal2", "sal3"]
    assert "safe questions" in refusal.fix
    assert found["gold"].candidate == 3
    assert "cut off" in found["gold"].symptom


def test_a_judge_preferring_the_base_is_a_loss(run_folder: Path) -> None:
    """The judge's win rate for the candidate with its whole interval below 0.5 is listed as
    a loss (oriented: rate - 0.5); one whose interval reaches 0.5 is not."""
    from heldout.report._view import significant_losses

    result = load_run(run_folder)

    def judged(low: float, high: float) -> list[str]:
        rate = {"estimate": (low + high) / 2, "low": low, "high": high}
        judge = {"win_rate": rate, "n": 120, "description": "pairwise"}
        return [x.kind for x in significant_losses(result.model_copy(update={"judge": judge}))]

    assert "judge" in judged(0.30, 0.45)
    assert "judge" not in judged(0.40, 0.52)
    assert "judge" not in [x.kind for x in significant_losses(result)]


def test_a_failed_slice_guardrail_is_said_on_the_slices_that_failed_it(tmp_path: Path) -> None:
    """A candidate that breaks one slice: that slice is a loss row naming the failed
    guardrail, and the guardrail gets no second row of its own."""
    import heldout
    from heldout.backends import MockBackend
    from heldout.report import build_view

    build_run(tmp_path)
    gold = [json.loads(x) for x in (tmp_path / "data" / "gold.jsonl").read_text().splitlines()]
    suite = [json.loads(x) for x in (tmp_path / "data" / "general.jsonl").read_text().splitlines()]
    base = {g["id"]: g["target"] for g in gold + suite}
    cand = {g["id"]: g["target"] if g.get("lang") != "fr" else "dunno" for g in gold + suite}
    run = heldout.evaluate(
        tmp_path / "heldout.yaml", root=tmp_path, out=tmp_path / "broken", cache=False,
        backends={"base": MockBackend("b", outputs=base), "candidate": MockBackend("c", outputs=cand)},
    )  # fmt: skip
    (gate,) = [g for g in run.result.gates if g.kind == "slice"]
    assert gate.status == "fail"
    view = build_view(run.result, read_samples(tmp_path / "broken"))
    rows = [x for x in view.losses if x.kind == "slice"]
    assert [x.name for x in rows] == ["lang=fr · accuracy"]
    assert gate.name in rows[0].note
    assert not [x for x in view.losses if x.name == f"guardrail · {gate.name}"]
    assert view.losses[0].kind == "primary"  # the gold-set loss leads
