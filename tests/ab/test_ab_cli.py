"""``heldout ab`` through its console script: lock, validation errors with lines, assign,
serve refusing an unlocked or changed experiment, analyze's exit codes and reports, export,
and the simulated demo."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from heldout.ab import assign, bucket

from ..cli.test_cli_contract import cli
from ._helpers import ProxyThread, write_exp
from .test_analyze import _events, _exp, _store

pytest.importorskip("duckdb")


def test_validation_names_every_problem_with_its_line(tmp_path: Path) -> None:
    (tmp_path / "ab.yaml").write_text(
        "name: x\nsalt: s\narms:\n  control: {base_url: http://127.0.0.1:1/v1}\n"
        "  treatment: {base_url: http://127.0.0.1:2/v1, modle: m}\n"
        "stages: [0.5, 0.2]\nprimary: {outcome: resolved}\n"
        "guardrails:\n  - {metric: latency_p42, max_increase: 0.1}\n  - {outcome: esc}\n"
    )
    r = cli("ab", "lock", cwd=tmp_path)
    assert r.returncode == 2
    text = " ".join(r.stderr.split())
    assert "arms.treatment.modle: unknown key" in text
    assert "(line 5)" in text
    assert "stages must increase" in text
    assert "(line 6)" in text
    assert "unknown metric 'latency_p42'" in text
    assert "(line 9)" in text
    assert "guardrails[1].max_increase: required" in text
    assert "(line 10)" in text
    assert "Traceback" not in r.stderr
    assert not (tmp_path / "ab.lock").exists()


def test_lock_serve_refuses_changes_and_assign_prints_arms(tmp_path: Path) -> None:
    write_exp(tmp_path, "http://127.0.0.1:9/v1", "http://127.0.0.1:9/v1")
    (tmp_path / "ab.lock").unlink()
    r = cli("ab", "serve", "--port", "1", cwd=tmp_path)
    assert r.returncode == 2
    assert "not locked" in r.stderr
    assert "heldout ab lock" in r.stderr
    r = cli("ab", "lock", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert "locked ab.yaml" in r.stdout
    assert "names no offline run" in r.stderr
    text = (tmp_path / "ab.yaml").read_text().replace("salt-1", "salt-2")
    (tmp_path / "ab.yaml").write_text(text)
    r = cli("ab", "serve", "--port", "1", cwd=tmp_path)
    assert r.returncode == 2
    assert 'salt: "salt-1" → "salt-2"' in r.stderr
    assert "heldout ab lock" in r.stderr
    r = cli("ab", "assign", "alice", "bob", "--share", "0.5", cwd=tmp_path, columns="120")
    assert r.returncode == 0, r.stderr
    for u in ("alice", "bob"):
        line = next(x for x in r.stdout.splitlines() if f" {u} " in x)
        assert str(bucket(u, "salt-2")) in line
        assert assign(u, "salt-2", 0.5) in line


def test_a_second_proxy_on_the_same_store_is_refused_with_the_holder_named(
    tmp_path: Path,
) -> None:
    path = write_exp(tmp_path, "http://127.0.0.1:9/v1", "http://127.0.0.1:9/v1")
    with ProxyThread(path):  # the first proxy holds the store's journal
        r = cli("ab", "serve", "--port", "1", cwd=tmp_path)
    assert r.returncode == 2
    assert f"another heldout ab serve (pid {os.getpid()}) is writing to" in r.stderr
    assert "Traceback" not in r.stderr


def test_analyze_exit_codes_reports_and_apply(tmp_path: Path) -> None:
    req, out, _ = _events(4000, seed=1)
    _exp(tmp_path)
    _store(tmp_path, req, out)
    r = cli("ab", "analyze", "--apply", cwd=tmp_path, columns="200")
    assert r.returncode == 0, r.stderr
    assert "decision: ship" in r.stdout
    assert "applied: treatment share now 100%" in r.stderr
    report = tmp_path / "ab-report"
    body = json.loads((report / "analysis.json").read_text())
    assert body["decision"]["decision"] == "ship"
    assert body["decision"]["exit_code"] == 0
    html = (report / "report.html").read_text()
    assert "<svg" in html
    assert "confidence sequence" in html
    md = (report / "report.md").read_text()
    assert md.startswith("# A/B exp: **SHIP** (stage 50%)")
    r = cli("ab", "analyze", "--json", cwd=tmp_path)
    assert (
        json.loads(r.stdout)["decision"]["reasons"][0] == "already shipped (treatment share 100%)"
    )
    # rollback: a costlier treatment; exit 1 and the report lists the loss first
    req, out, _ = _events(3000, seed=5, cost_t=1.6)
    pq.write_table(pa.Table.from_pylist(req), tmp_path / "r.parquet")
    pq.write_table(pa.Table.from_pylist(out), tmp_path / "o.parquet")
    r = cli("ab", "analyze", "--events", "r.parquet", "--outcomes", "o.parquet", "--out", "rb",
            cwd=tmp_path, columns="200")  # fmt: skip
    assert r.returncode == 1, r.stderr
    assert "decision: rollback" in r.stdout
    md = (tmp_path / "rb" / "report.md").read_text()
    rows = [x for x in md.splitlines() if x.startswith("| ") and "metric" not in x]
    assert rows[0].startswith("| cost_per_request | guardrail | fail |")  # losses first
    # hold: too few units; exit 4
    req, out, _ = _events(300, seed=6)
    pq.write_table(pa.Table.from_pylist(req), tmp_path / "h.parquet")
    r = cli("ab", "analyze", "--events", "h.parquet", cwd=tmp_path)
    assert r.returncode == 4, r.stderr
    assert "decision: hold" in r.stdout
    r = cli("ab", "analyze", "--events", "missing.parquet", cwd=tmp_path)
    assert r.returncode == 2
    assert "missing.parquet: file not found" in r.stderr


def test_hostile_text_is_escaped_in_the_html_report(tmp_path: Path) -> None:
    req, out, _ = _events(1200, seed=7)
    evil = "<script>alert(1)</script>"
    path = _exp(tmp_path, name=f"exp {evil}")
    _store(tmp_path, req, out)
    r = cli("ab", "analyze", "--experiment", str(path), cwd=tmp_path)
    assert r.returncode in (0, 4), r.stderr
    html = (tmp_path / "ab-report" / "report.html").read_text()
    assert evil not in html
    assert "&lt;script&gt;" in html


def test_export_round_trips_through_analyze(tmp_path: Path) -> None:
    req, out, _ = _events(1500, seed=2)
    _exp(tmp_path)
    _store(tmp_path, req, out)
    r = cli("ab", "export", "--out", "x", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert f"wrote {len(req):,} requests and {len(out):,} outcomes" in r.stdout
    a = cli("ab", "analyze", "--json", cwd=tmp_path)
    b = cli("ab", "analyze", "--json", "--events", "x/requests.parquet", "--outcomes",
            "x/outcomes.parquet", cwd=tmp_path)  # fmt: skip
    ea = json.loads(a.stdout)["stages"][0]["metrics"][0]["effect"]
    eb = json.loads(b.stdout)["stages"][0]["metrics"][0]["effect"]
    assert ea["estimate"] == pytest.approx(eb["estimate"], rel=1e-12)
    for k in ("low", "high"):
        assert ea["sequential"][k] == pytest.approx(eb["sequential"][k], rel=1e-12)


def test_ab_demo_runs_the_ramp_in_under_a_minute(tmp_path: Path) -> None:
    t0 = time.perf_counter()
    r = cli("ab", "demo", "--out", "demo", cwd=tmp_path, columns="200")
    took = time.perf_counter() - t0
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith("SIMULATION")
    stages = [x for x in r.stdout.splitlines() if x.startswith("stage ")]
    shares = [x.split()[1] for x in stages]
    assert shares[0] == "5%"
    assert shares[-1] == "50%"
    assert "→ ship:" in stages[-1]
    assert any("→ hold:" in x for x in stages)  # it waits for units before ramping
    assert took < 60
    md = (tmp_path / "demo" / "report" / "report.md").read_text()
    assert "Simulated traffic: not real users." in md
    assert (tmp_path / "demo" / "ab.lock").is_file()


def test_history_shows_the_chain_from_offline_verdict_to_ab_decisions(tmp_path: Path) -> None:
    run = tmp_path / "runs" / "offline"
    run.mkdir(parents=True)
    offline = json.loads(
        (Path(__file__).parents[1] / "report" / "golden" / "results.json").read_text()
    )

    def real(x):  # the golden file masks volatile fields; give them values again
        if isinstance(x, dict):
            fill = {"identity": {}, "timings": {}, "latency_s_mean": 0.0}
            return {k: fill.get(k, "x") if v == "<volatile>" else real(v) for k, v in x.items()}
        return [real(v) for v in x] if isinstance(x, list) else x

    offline = real(offline)
    (run / "results.json").write_text(json.dumps(offline))
    req, out, _ = _events(4000, seed=1)
    _exp(tmp_path, follows="runs/offline")
    _store(tmp_path, req, out)
    r = cli("ab", "analyze", "--apply", cwd=tmp_path, columns="200")
    assert r.returncode == 0, r.stderr
    html = (tmp_path / "ab-report" / "report.html").read_text()
    assert (run / "report.html").resolve().as_uri() in html  # the A/B report links the offline run
    r = cli("history", cwd=tmp_path, columns="250")
    assert r.returncode == 0, r.stderr
    assert (
        f"follows offline run {offline['run_id']} (verdict {offline['verdict']['status']})"
        in " ".join(r.stdout.split())
    )
    lines = [
        x for x in r.stdout.splitlines() if "decision: ship" in x or " ramp " in x or " start " in x
    ]
    assert len(lines) == 3
    assert "start" in lines[0]
    assert "decision: ship" in lines[1]
    assert "ramp 50% → 100% after decision ship" in lines[2]
    body = json.loads(cli("history", "--json", cwd=tmp_path).stdout)
    assert body["ab"]["offline"]["run_id"] == offline["run_id"]
    assert [s["share"] for s in body["ab"]["splits"]] == [0.5, 1.0]
    assert body["ab"]["decisions"][0]["decision"] == "ship"
