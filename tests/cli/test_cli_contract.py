"""What scripts and CI jobs rely on: python -m heldout, completion, both plan-path forms,
smoke runs, --json with a schema, and logs that are readable when stdout is not a terminal."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import jsonschema
import pytest

from heldout.cli._progress import PlainLines

HELDOUT = shutil.which("heldout", path=str(Path(sys.executable).parent))


def cli(
    *args: str, cwd: Path, columns: str | None = None, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """The console script as a CI job runs it: not a terminal, no COLUMNS unless given."""
    assert HELDOUT
    full = {**os.environ, "NO_COLOR": "1", **(env or {})}
    full.pop("COLUMNS", None)
    if columns is not None:
        full["COLUMNS"] = columns
    return subprocess.run(
        [HELDOUT, *args], cwd=cwd, capture_output=True, text=True, env=full, timeout=120
    )


def test_python_dash_m_heldout(tmp_path: Path) -> None:
    from heldout import __version__

    r = subprocess.run(
        [sys.executable, "-m", "heldout", "--version"],
        cwd=tmp_path, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == f"heldout {__version__}"
    r = subprocess.run(
        [sys.executable, "-m", "heldout", "plan", "validate", "nope.yaml"],
        cwd=tmp_path, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert r.returncode == 2
    assert "nope.yaml: plan file not found" in r.stderr


def test_shell_completion(tmp_path: Path) -> None:
    r = cli(
        cwd=tmp_path, env={"_HELDOUT_COMPLETE": "complete_bash", "COMP_WORDS": "heldout pl",
                           "COMP_CWORD": "1"},
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["plan"]
    r = cli(
        cwd=tmp_path, env={"_HELDOUT_COMPLETE": "complete_bash",
                           "COMP_WORDS": "heldout plan v", "COMP_CWORD": "2"},
    )  # fmt: skip
    assert r.stdout.split() == ["validate", "verify"]
    r = cli("--help", cwd=tmp_path)
    assert "--install-completion" in r.stdout


def test_plan_path_as_argument_or_option(project: Path) -> None:
    (project / "plans").mkdir()
    shutil.move(project / "heldout.yaml", project / "plans" / "heldout.yaml")
    text = (project / "plans" / "heldout.yaml").read_text()
    for key in ("data/gold.jsonl", "prompts/", "suites/", "predictions/"):
        text = text.replace(key, "../" + key)
    (project / "plans" / "heldout.yaml").write_text(text)
    for args in (["plans/heldout.yaml"], ["-p", "plans/heldout.yaml"]):
        r = cli("plan", "validate", *args, cwd=project)
        assert r.returncode == 0, r.stderr
        assert "ok plans/heldout.yaml: plan 'support-sentiment-v1' is valid" in r.stdout
    r = cli("plan", "lock", "plans/heldout.yaml", cwd=project)
    assert r.returncode == 0, r.stderr
    assert (project / "plans" / "heldout.lock").is_file()
    r = cli("plan", "verify", "plans/heldout.yaml", cwd=project)
    assert r.returncode == 0
    assert "unchanged" in r.stdout
    r = cli("plan", "validate", "plans/heldout.yaml", "-p", "other.yaml", cwd=project)
    assert r.returncode == 2
    assert "two plan files given: plans/heldout.yaml and --plan other.yaml; give one" in r.stderr


def test_smoke_run_through_the_cli(project: Path) -> None:
    r = cli("run", "--limit", "3", cwd=project)
    assert r.returncode == 1, r.stderr
    assert "smoke run: not a verdict" in r.stdout
    assert "smoke run: not a verdict (3 of 12 gold samples, --limit 3)" in " ".join(
        r.stdout.split()
    )
    assert r.stdout.strip().splitlines()[-1] == (
        "heldout: verdict smoke; exit 1 (a smoke run is never a verdict)"
    )
    r = cli("history", "--json", cwd=project)
    (listed,) = json.loads(r.stdout)["runs"]
    assert listed["verdict"] == "smoke"
    assert listed["run_id"].endswith("-smoke")
    r = cli("run", cwd=project)
    full = json.loads(cli("history", "--json", cwd=project).stdout)["runs"][-1]["run_id"]
    r = cli("compare", listed["run_id"], full, cwd=project)
    assert r.returncode == 2
    assert "is a smoke run (3 of 12 gold samples): compare two full runs" in r.stderr
    (project / "ids.txt").write_text("g02\ng09\n")
    r = cli("run", "--sample-ids", "ids.txt", cwd=project)
    assert r.returncode == 1
    assert "2 of 12 gold samples, --sample-ids ids.txt" in " ".join(r.stdout.split())


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["--limit", "0"],
            "Invalid value for '--limit': Input should be greater than or equal to 1",
        ),
        (["--limit", "many"], "Invalid value for '--limit': Input should be a valid integer"),
        (["--sample-ids", "missing.txt"], "--sample-ids missing.txt: file not found"),
        (["--sample-ids", "data/gold.jsonl"], "id(s) not in the gold set gold.jsonl"),
    ],
)
def test_bad_smoke_options_exit_2(project: Path, args: list[str], message: str) -> None:
    r = cli("run", *args, cwd=project)
    assert r.returncode == 2, r.stdout
    assert message in " ".join(r.stderr.split())
    assert "Traceback" not in r.stderr


def test_the_run_log_in_ci(project: Path) -> None:
    """Not a terminal: a first line at once, a start and an end line per model and dataset,
    stage lines, no value cut with an ellipsis, and a last line with the exit code's
    meaning, at the default width and at 60 columns."""
    for columns in (None, "60"):
        r = cli("run", "--no-cache", cwd=project, columns=columns)
        assert r.returncode == 1
        err_lines = r.stderr.splitlines()
        assert err_lines[0] == "heldout run: heldout.yaml"
        for model in ("base", "candidate"):
            for ds, n in (("gold", 12), ("suite:general", 6), ("suite:safety", 4)):
                assert f"{model} · {ds}: {n:,} to do" in err_lines
                assert any(x.startswith(f"{model} · {ds}: done {n}/{n} in ") for x in err_lines)
        for stage in ("load: ", "score: ", "compare: ", "write: "):
            assert any(x.startswith(stage) for x in err_lines)
        assert "…" not in r.stdout + r.stderr
        assert "mcnemar-score" in r.stdout.replace("\n", "").replace("│", "").replace(" ", "")
        last = r.stdout.strip().splitlines()[-1]
        assert last == (
            "heldout: verdict inconclusive; exit 1 (the verdict is inconclusive: do not ship "
            "on this evidence)"
        )
        if columns == "60":
            # tables and messages fit; the verdict line and the two paths stay one line each,
            # whatever their length (a path broken across lines cannot be copied)
            lines = r.stdout.splitlines()[:-1]
            paths = [x for x in lines if x.startswith(("results: ", "report:  "))]
            assert len(paths) == 2
            assert all(Path(x.split(maxsplit=1)[1]).is_file() for x in paths)
            assert max(len(x) for x in lines if x not in paths) <= 60


def test_plain_progress_lines_are_paced() -> None:
    """Every 10% of a fast phase, every 10 s of a slow one, and once at the end."""
    lines: list[str] = []
    now = [0.0]
    plain = PlainLines(lines.append, already="from the cache", clock=lambda: now[0])
    plain("candidate · gold", 200, 1200)  # 200 cached
    for done in range(201, 1201):
        now[0] += 0.001
        plain("candidate · gold", done, 1200)
    assert lines[0] == "candidate · gold: 1,200 to do, 200 from the cache"
    assert lines[-1].startswith("candidate · gold: done 1,200/1,200 in 00:01")
    assert len(lines) == 1 + 8 + 1  # a line per 120 responses (10%), and the end
    lines.clear()
    slow = PlainLines(lines.append, clock=lambda: now[0])
    for done in range(31):  # one response every 3 s
        slow("judge · gold", done, 1000)
        now[0] += 3.0
    progress = lines[1:]
    assert len(progress) == 7  # at 12, 24, ... 84 s: never silent for more than 10 s
    assert all("/1,000 (" in x and "elapsed" in x for x in progress)
    plain_all_cached = PlainLines(lines.append, already="from the cache")
    lines.clear()
    plain_all_cached("base · gold", 50, 50)
    assert lines == [
        "base · gold: 50 to do, 50 from the cache",
        "base · gold: done 50/50 (all from the cache)",
    ]


def _schema(name: str, cwd: Path) -> dict[str, object]:
    r = cli("schema", name, cwd=cwd)
    assert r.returncode == 0, r.stderr
    schema: dict[str, object] = json.loads(r.stdout)
    jsonschema.Draft202012Validator.check_schema(schema)
    return schema


def test_json_outputs_follow_their_schemas(project: Path) -> None:
    from heldout.metrics import metric_names
    from heldout.suites import BUILTIN_SUITES

    for _ in range(2):
        assert cli("run", cwd=project).returncode == 1
    docs: dict[str, dict[str, object]] = {}
    r = cli("history", "--json", cwd=project)
    docs["history"] = json.loads(r.stdout)
    runs = docs["history"]["runs"]
    assert isinstance(runs, list)
    assert len(runs) == 2
    folder = Path(runs[0]["folder"])
    stored = json.loads((folder / "results.json").read_text())
    assert runs[0]["gates"] == [{"name": g["name"], "status": g["status"]} for g in stored["gates"]]
    r = cli("compare", runs[0]["run_id"], runs[1]["run_id"], "--json", cwd=project)
    assert r.returncode == 0, r.stderr
    docs["compare"] = json.loads(r.stdout)
    text = cli("compare", runs[0]["run_id"], runs[1]["run_id"], cwd=project).stdout
    assert docs["compare"]["conclusion"] in text  # same runs, same outputs: no difference
    assert docs["compare"]["delta"]["estimate"] == 0.0
    docs["power"] = json.loads(cli("power", "--json", cwd=project).stdout)
    table = cli("power", cwd=project, columns="200").stdout
    assert f"│ {docs['power']['n_needed']:,} " in table
    docs["suites"] = json.loads(cli("suites", "--json", cwd=project).stdout)
    assert [s["name"] for s in docs["suites"]["suites"]] == list(BUILTIN_SUITES)
    docs["metrics"] = json.loads(cli("metrics", "--json", cwd=project).stdout)
    names = {m["name"] for m in docs["metrics"]["metrics"]}
    # the registry as a fresh process has it (tests elsewhere register plugin metrics here)
    fresh = subprocess.run(
        [sys.executable, "-c", "from heldout.metrics import metric_names; print(*metric_names())"],
        capture_output=True, text=True, check=True,
    ).stdout.split()  # fmt: skip
    assert set(metric_names()) >= set(fresh)
    assert set(fresh) <= names
    assert "recall[LABEL]" in names
    r = cli("leak", "--train", "data/train.jsonl", "--json", cwd=project)
    docs["leak"] = json.loads(r.stdout)
    assert r.returncode == (1 if docs["leak"]["hits"] else 0)
    assert docs["leak"] == json.loads((project / "leak.json").read_text())
    for name, doc in docs.items():
        assert doc["kind"] == name
        assert doc["schema_version"] == 1
        jsonschema.validate(doc, _schema(name, project))
    jsonschema.validate(stored, _schema("results", project))
    r = cli("schema", "nope", cwd=project)
    assert r.returncode == 2
    assert "unknown schema 'nope'; known: plan, results" in r.stderr


def test_history_json_without_runs(tmp_path: Path) -> None:
    r = cli("history", "--json", cwd=tmp_path)
    assert r.returncode == 0
    assert json.loads(r.stdout)["runs"] == []


def test_every_command_group_has_its_own_small_module() -> None:
    import heldout.cli as pkg

    folder = Path(pkg.__file__).parent
    sizes = {p.name: len(p.read_text().splitlines()) for p in folder.glob("_*.py")}
    assert {"_plan.py", "_run.py", "_history.py", "_catalog.py", "_leak.py", "_demo.py"} <= set(
        sizes
    )
    assert max(sizes.values()) < 300, sizes
    assert re.search(r"def main\(", (folder / "_app.py").read_text())


def test_terminal_at_80_columns_losses_first_nothing_cut_verdict_last(tmp_path: Path) -> None:
    """At 80 columns every metric and guardrail name and every number of the comparison
    table is printed whole (cells wrap, never cut with an ellipsis), "what got worse" comes
    before the comparisons, and the one-line verdict is the last line."""
    from tests.runner.test_calibration_run import _project

    _project(tmp_path)
    plan = tmp_path / "heldout.yaml"
    # a candidate that is worse: the base's file as the reference of truth, swapped
    plan.write_text(
        plan.read_text()
        .replace("base.jsonl", "TMP")
        .replace("cand.csv", "base.jsonl")
        .replace("TMP", "cand.csv")
    )
    r = cli("run", cwd=tmp_path, columns="80")
    assert r.returncode == 1, r.stderr
    lines = r.stdout.splitlines()
    # the paths and the verdict are one line each (for copying and grepping); the rest fits
    whole = [x for x in lines if not x.startswith(("results: ", "report:  ", "heldout: "))]
    assert all(len(line) <= 80 for line in whole), max(whole, key=len)
    assert "…" not in r.stdout
    assert lines[-1].startswith("heldout: verdict ")
    (folder,) = (tmp_path / ".heldout" / "runs").iterdir()
    assert f"results: {folder / 'results.json'}" in lines
    worse = next(i for i, x in enumerate(lines) if "what got worse" in x)
    table = next(i for i, x in enumerate(lines) if "comparisons (losses first)" in x)
    assert worse < table
    result = json.loads((folder / "results.json").read_text())
    flat = " ".join(r.stdout.replace("│", " ").split())
    for c in result["comparisons"]:
        assert c["metric"] in flat
        for value in (c["base"]["estimate"], c["other"]["estimate"], c["delta"]["low"]):
            assert f"{value:.4f}" in flat, value
    for g in result["gates"]:
        assert all(word in flat for word in g["name"].split())
