"""base_url as a list of replicas: least-outstanding balancing, ejection and failover.

The servers are real local processes and threads on 127.0.0.1; one is killed with SIGKILL
in the middle of a run, which is what a crashed vLLM replica looks like to a client.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

import heldout
from heldout.backends import Generation, Request
from heldout.backends._fleet import Fleet
from heldout.backends._openai import OpenAIBackend
from heldout.errors import PlanError
from heldout.plan import OpenAIModel, load_plan
from heldout.testing import FakeOpenAIServer, ServerScript
from tests.backends._collect import collect
from tests.runner.test_run import make_project


def _spec(urls: list[str], **kw: object) -> OpenAIModel:
    return OpenAIModel.model_validate({"backend": "openai", "base_url": urls, "model": "m", **kw})


def _kill_at(out: list[Generation], n: int, proc: subprocess.Popen[str]) -> None:
    if len(out) == n:
        proc.send_signal(signal.SIGKILL)


def _server_process(delay: float) -> tuple[subprocess.Popen[str], str]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "heldout.testing", "--port", "0", "--delay", str(delay)],
        stdout=subprocess.PIPE,
        text=True,
    )
    line = proc.stdout.readline() if proc.stdout else ""
    return proc, f"http://127.0.0.1:{int(line.split()[-1])}/v1"


def test_requests_go_to_the_replica_with_fewest_in_flight() -> None:
    fast = FakeOpenAIServer(ServerScript(answer=lambda p: "fast " + p, delay_s=0.002)).start()
    slow = FakeOpenAIServer(ServerScript(answer=lambda p: "slow " + p, delay_s=0.05)).start()
    try:
        backend = OpenAIBackend(_spec([fast.base_url, slow.base_url], concurrency=8))
        reqs = [Request(f"s{i}", f"p{i}") for i in range(300)]
        gens = collect(backend, reqs)
        record = backend.record["replicas"]
    finally:
        fast.stop()
        slow.stop()
    assert sorted(g.sample_id for g in gens) == sorted(r.sample_id for r in reqs)
    assert all(g.ok for g in gens)
    by_replica = Counter(g.extra["replica"] for g in gens)
    for g in gens:  # the answer came from the replica the record names
        assert g.text is not None
        assert g.text.startswith("fast" if g.extra["replica"] == fast.base_url else "slow")
    # least outstanding: the slow replica holds requests 25x longer, so it gets far fewer
    # (round-robin would give each 150)
    assert by_replica[fast.base_url] > 4 * by_replica[slow.base_url] > 0
    assert record[fast.base_url]["answered"] == by_replica[fast.base_url]
    assert record[slow.base_url]["answered"] == by_replica[slow.base_url]
    assert sum(r["sent"] for r in record.values()) == 300


@pytest.mark.slow
def test_a_replica_killed_mid_run_loses_no_sample_and_answers_none_twice() -> None:
    n = 600
    doomed, doomed_url = _server_process(0.01)
    survivor, survivor_url = _server_process(0.01)
    try:
        backend = OpenAIBackend(
            _spec([doomed_url, survivor_url], concurrency=16, max_retries=3),
            backoff_base_s=0.05,
        )
        reqs = [Request(f"s{i}", f"prompt number {i:05d}") for i in range(n)]
        gens = collect(backend, reqs, then=lambda out: _kill_at(out, 150, doomed))
        record = backend.record
    finally:
        for proc in (doomed, survivor):
            proc.kill()
            proc.wait(10)
            if proc.stdout:
                proc.stdout.close()
    ids = Counter(g.sample_id for g in gens)
    assert len(ids) == n
    assert set(ids.values()) == {1}
    assert all(g.ok for g in gens), [g.error for g in gens if not g.ok][:3]
    for g in gens:  # each answer is the right one for its prompt
        assert g.text == "answer: " + f"prompt number {g.sample_id[1:].zfill(5)}"[-8:]
    replicas = record["replicas"]
    assert sum(r["answered"] for r in replicas.values()) == n  # one answer per sample
    assert replicas[doomed_url]["ejections"] >= 1
    assert 0 < replicas[doomed_url]["answered"] < n / 2  # it answered until it died
    assert replicas[survivor_url]["answered"] > n / 2
    after_kill = [g.extra["replica"] for g in gens[200:]]
    assert set(after_kill) == {survivor_url}  # once out, the dead replica gets nothing
    retried = record["retries_by_reason"]
    assert retried.get("failover to another replica", 0) >= 1
    assert json.dumps(record)  # the record is plain JSON for results.json


def test_eject_after_failures_in_a_row_then_return_after_cooldown() -> None:
    now = [0.0]
    fleet = Fleet(["http://a/v1", "http://b/v1"], cooldown_s=2.0, clock=lambda: now[0])
    a, b = fleet.replicas
    for _ in range(2):  # two failures in a row: still in
        assert fleet.acquire() is a  # fewest in flight, then fewest sent (b was sent none)
        fleet.release(a, ok=False)
        b.sent += 1
    assert a.out_until == 0.0
    assert fleet.acquire() is a
    fleet.release(a, ok=False)  # the third in a row (eject_after=3): out for 2 s
    assert (a.out_until, a.ejections) == (2.0, 1)
    assert all(fleet.acquire() is b for _ in range(5))  # b has 5 in flight, a is still out
    now[0] = 2.5
    assert fleet.acquire() is a  # back after the cool-down
    fleet.release(a, ok=False, refused=True)  # refused: out at once, twice as long
    assert a.out_until == 2.5 + 4.0
    b.out_until = 10.0  # both out: the one back first is asked anyway
    assert fleet.acquire() is a
    fleet.release(a, ok=True)
    assert a.failing_in_a_row == 0
    assert a.answered == 1


def test_a_single_url_is_never_ejected() -> None:
    fleet = Fleet(["http://a/v1"])
    r = fleet.acquire()
    fleet.release(r, ok=False, refused=True)
    assert r.out_until == 0.0
    assert fleet.acquire() is r


def test_the_cache_key_is_the_first_replica_so_adding_replicas_keeps_the_cache() -> None:
    one = OpenAIBackend(_spec(["http://127.0.0.1:1/v1/"]))
    single = OpenAIBackend(
        OpenAIModel.model_validate(
            {"backend": "openai", "base_url": "http://127.0.0.1:1/v1", "model": "m"}
        )
    )
    two = OpenAIBackend(_spec(["http://127.0.0.1:1/v1", "http://127.0.0.1:2/v1"]))
    assert one.identity() == single.identity() == two.identity()


@pytest.mark.parametrize(
    ("urls", "message"),
    [
        ([], "the list of replicas is empty; give at least one URL"),
        (
            ["http://127.0.0.1:1/v1", "http://127.0.0.1:1/v1/"],
            "lists 'http://127.0.0.1:1/v1' twice",
        ),
    ],
)
def test_bad_replica_lists_are_refused(urls: list[str], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        _spec(urls)


def test_credentials_in_any_replica_url_are_refused(tmp_path: Path) -> None:
    make_project(
        tmp_path,
        models="""  base: {backend: openai, model: b,
         base_url: ["http://127.0.0.1:1/v1", "http://u:pw@127.0.0.1:2/v1"]}
  candidate: {backend: openai, base_url: "http://127.0.0.1:1/v1", model: c}""",
    )
    with pytest.raises(PlanError, match=r"models\.base\.base_url.*credentials"):
        load_plan(tmp_path / "heldout.yaml")


def test_a_run_records_which_replica_answered_each_sample(tmp_path: Path) -> None:
    servers = [FakeOpenAIServer(ServerScript(answer=lambda p: "neutral")).start() for _ in "ab"]
    try:
        urls = json.dumps([s.base_url for s in servers])
        make_project(
            tmp_path,
            n=60,
            models=f"""  base: {{backend: openai, base_url: {urls}, model: b, concurrency: 4}}
  candidate: {{backend: openai, base_url: {urls}, model: c, concurrency: 4}}""",
        )
        run = heldout.evaluate(tmp_path / "heldout.yaml", root=tmp_path, out=tmp_path / "run")
        rerun = heldout.evaluate(tmp_path / "heldout.yaml", root=tmp_path, out=tmp_path / "re")
    finally:
        for s in servers:
            s.stop()
    rows = [
        json.loads(x) for x in (tmp_path / "run" / "generations.jsonl").read_text().splitlines()
    ]
    gold = [r for r in rows if r.get("dataset", "gold") == "gold"]
    assert gold
    assert all(r["extra"]["replica"] in {s.base_url for s in servers} for r in gold)
    records = {m.role: m for m in run.result.models}
    for role in ("base", "candidate"):
        replicas = records[role].record["replicas"]
        assert set(replicas) == {s.base_url for s in servers}
        assert sum(r["answered"] for r in replicas.values()) == records[role].requests
    # the client's start-up is reported apart from generation, and only when it was paid
    assert run.result.timings["startup_base_s"] > 0
    assert "startup_base_s" not in rerun.result.timings  # every answer came from the cache
    assert all(m.cached == m.requests for m in rerun.result.models)
