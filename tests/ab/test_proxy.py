"""The routing proxy against real local upstreams: routing by assignment, bodies and SSE
passed through unchanged, one committed event per request, auth forwarded and never stored,
a failing treatment counted against treatment (never retried on control), outcomes, a live
ramp and rollback, and kill -9 losing no acknowledged event."""

from __future__ import annotations

import json
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from heldout.ab import assign
from heldout.ab._store import EventStore
from heldout.testing import FakeOpenAIServer, ServerScript

from ._helpers import ProxyThread, chat, post, write_exp


def _rows(path: Path) -> list[dict[str, object]]:
    with sqlite3.connect(path) as db:
        db.row_factory = sqlite3.Row
        return [dict(r) for r in db.execute("SELECT * FROM requests ORDER BY ts")]


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_routes_by_assignment_and_logs_one_event_per_request(tmp_path: Path) -> None:
    with (
        FakeOpenAIServer(ServerScript(answer=lambda p: "from control")) as ctl,
        FakeOpenAIServer(ServerScript(answer=lambda p: "from treatment two")) as trt,
    ):
        path = write_exp(tmp_path, ctl.base_url, trt.base_url)
        with ProxyThread(path) as px:
            want = {}
            for i in range(60):
                unit = f"user-{i}"
                if i % 2:
                    status, headers, body = post(f"{px.url}/v1/chat/completions", chat(f"q{i}"),
                                                 {"X-Heldout-Unit": unit})  # fmt: skip
                else:
                    status, headers, body = post(f"{px.url}/v1/chat/completions",
                                                 chat(f"q{i}", user=unit))  # fmt: skip
                assert status == 200
                arm = assign(unit, "salt-1", 0.5)
                assert headers["X-Heldout-Arm"] == arm
                text = json.loads(body)["choices"][0]["message"]["content"]
                assert text == ("from treatment two" if arm == "treatment" else "from control")
                want[headers["X-Heldout-Request-Id"]] = (unit, arm)
            time.sleep(0.05)
        rows = _rows(tmp_path / "events.sqlite")
    assert len(rows) == 60
    assert {r["id"]: (r["unit"], r["arm"]) for r in rows} == want
    arms = {r["arm"] for r in rows}
    assert arms == {"control", "treatment"}
    assert sum(r["arm"] == "treatment" for r in rows) == trt.completed.total()
    assert sum(r["arm"] == "control" for r in rows) == ctl.completed.total()
    assert {b["model"] for b in ctl.bodies} == {"base"}  # the arm's model is written in
    assert {b["model"] for b in trt.bodies} == {"lora"}
    for r in rows:
        assert r["status"] == 200
        assert r["prompt"] is None  # no prompt text unless sampling is switched on
        assert r["prompt_tokens"] == 1
        words = 3 if r["arm"] == "treatment" else 2
        assert r["completion_tokens"] == words
        price = 4.0 if r["arm"] == "treatment" else 2.0
        assert r["cost"] == pytest.approx((1 * 1.0 + words * price) / 1e6)
        assert r["latency_ms"] > 0


def test_bodies_and_server_sent_events_pass_through_unchanged(tmp_path: Path) -> None:
    with FakeOpenAIServer(ServerScript(answer=lambda p: "a b c d")) as up:
        path = write_exp(tmp_path, up.base_url, up.base_url,
                         arms={"control": {"base_url": up.base_url},
                               "treatment": {"base_url": up.base_url}})  # fmt: skip
        body = chat("stream me", stream=True, stream_options={"include_usage": True})
        direct = post(f"{up.base_url}/chat/completions", body)
        with ProxyThread(path) as px:
            via = post(f"{px.url}/v1/chat/completions", body, {"X-Heldout-Unit": "u1"})
            plain = post(f"{px.url}/v1/chat/completions", chat("plain"), {"X-Heldout-Unit": "u1"})
            plain_direct = post(f"{up.base_url}/chat/completions", chat("plain"))
        rows = _rows(tmp_path / "events.sqlite")
    assert via[0] == 200
    assert via[1]["Content-Type"].startswith("text/event-stream")
    assert via[2] == direct[2]  # byte for byte
    assert via[2].endswith(b"data: [DONE]\n\n")
    a, b = json.loads(plain[2]), json.loads(plain_direct[2])
    a.pop("created"), b.pop("created")
    assert a == b
    streamed = next(r for r in rows if r["stream"] == 1)
    assert streamed["completion_tokens"] == 4  # from the usage chunk
    assert streamed["status"] == 200


def test_httpx_as_the_openai_sdk_uses_it_streams_and_reuses_one_connection(tmp_path: Path) -> None:
    httpx = pytest.importorskip("httpx")  # the OpenAI SDK's HTTP client
    with FakeOpenAIServer(ServerScript(answer=lambda p: "a b c")) as up:
        path = write_exp(tmp_path, up.base_url, up.base_url)
        body = chat("s", stream=True, stream_options={"include_usage": True})
        with ProxyThread(path) as px, httpx.Client(base_url=f"{px.url}/v1", timeout=20) as client:
            ports = set()
            for i in range(20):
                resp = client.post("/chat/completions", json=chat(f"q{i}", user=f"u{i}"))
                assert resp.status_code == 200
                assert resp.json()["choices"][0]["message"]["content"] == "a b c"
                ports.add(resp.extensions["network_stream"].get_extra_info("client_addr"))
            with client.stream("POST", "/chat/completions", json=body) as streamed:
                lines = [line for line in streamed.iter_lines() if line]
            assert len(ports) == 1  # kept alive
            assert None not in ports
        assert lines[-1] == "data: [DONE]"
        assert streamed.headers["content-type"].startswith("text/event-stream")
    rows = _rows(tmp_path / "events.sqlite")
    assert len(rows) == 21
    assert {r["status"] for r in rows} == {200}


def test_auth_is_forwarded_and_never_stored(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    secret = "sk-live-SECRET-0123456789"
    arm_key = "sk-arm-KEY-9876543210"
    monkeypatch.setenv("TREATMENT_KEY", arm_key)
    with FakeOpenAIServer() as ctl, FakeOpenAIServer() as trt:
        path = write_exp(tmp_path, ctl.base_url, trt.base_url, arms={
            "control": {"base_url": ctl.base_url},
            "treatment": {"base_url": trt.base_url, "api_key_env": "TREATMENT_KEY"}})  # fmt: skip
        with ProxyThread(path) as px:
            for i in range(20):
                status, _, _ = post(f"{px.url}/v1/chat/completions", chat(f"q{i}", user=f"u{i}"),
                                    {"Authorization": f"Bearer {secret}"})  # fmt: skip
                assert status == 200
    assert ctl.headers
    assert trt.headers
    assert all(h["Authorization"] == f"Bearer {secret}" for h in ctl.headers)
    assert all(h["Authorization"] == f"Bearer {arm_key}" for h in trt.headers)
    blob = b"".join(p.read_bytes() for p in tmp_path.glob("events.sqlite*"))
    assert secret.encode() not in blob
    assert arm_key.encode() not in blob


def test_a_failing_treatment_counts_against_treatment_and_is_never_retried(tmp_path: Path) -> None:
    dead = f"http://127.0.0.1:{_closed_port()}/v1"
    with FakeOpenAIServer() as ctl:
        path = write_exp(tmp_path, ctl.base_url, dead)
        with ProxyThread(path) as px:
            got = {}
            for i in range(40):
                unit = f"user-{i}"
                status, headers, body = post(
                    f"{px.url}/v1/chat/completions", chat(f"q{i}", user=unit)
                )
                got[unit] = (status, headers["X-Heldout-Arm"], body)
    treated = [u for u in got if assign(u, "salt-1", 0.5) == "treatment"]
    assert treated
    for u, (status, arm, body) in got.items():
        if u in treated:
            assert (status, arm) == (502, "treatment")
            assert json.loads(body)["error"]["type"] == "upstream_error"
        else:
            assert (status, arm) == (200, "control")
    assert ctl.completed.total() == 40 - len(treated)  # nothing retried on control
    rows = _rows(tmp_path / "events.sqlite")
    assert sorted(r["status"] for r in rows if r["arm"] == "treatment") == [502] * len(treated)
    assert all("ConnectionRefusedError" in str(r["error"]) for r in rows if r["arm"] == "treatment")


def test_upstream_errors_and_broken_streams_are_logged_as_they_happened(tmp_path: Path) -> None:
    script = ServerScript(answer=lambda p: "one two three", fail={"boom": [500]},
                          faults={"cut": ["stream-drop"]})  # fmt: skip
    with FakeOpenAIServer(script) as up:
        path = write_exp(tmp_path, up.base_url, up.base_url)
        with ProxyThread(path) as px:
            s500 = post(f"{px.url}/v1/chat/completions", chat("boom", user="u1"))
            cut = post(f"{px.url}/v1/chat/completions", chat("cut", user="u2", stream=True))
            junk = post(f"{px.url}/v1/chat/completions", None, {"X-Heldout-Unit": "u3"}, raw=b"{no")
    assert s500[0] == 500  # passed through, not retried
    assert up.requests["boom"] == 1
    assert cut[0] == 200
    assert cut[2].count(b"data:") == 1
    assert junk[0] == 400
    assert b"not JSON" in junk[2]
    rows = {r["unit"]: r for r in _rows(tmp_path / "events.sqlite")}
    assert rows["u1"]["status"] == 500
    assert rows["u2"]["status"] == 502
    assert "stream broke" in str(rows["u2"]["error"])
    assert "u3" not in rows


def test_missing_unit_goes_to_control_or_is_refused(tmp_path: Path) -> None:
    with FakeOpenAIServer() as up:
        path = write_exp(tmp_path, up.base_url, up.base_url)
        with ProxyThread(path) as px:
            status, headers, _ = post(f"{px.url}/v1/chat/completions", chat())
        assert (status, headers["X-Heldout-Arm"]) == (200, "control")
        assert _rows(tmp_path / "events.sqlite")[0]["unit"] is None
        path = write_exp(tmp_path / "r", up.base_url, up.base_url,
                         unit={"missing": "reject", "header": "X-User"})  # fmt: skip
        with ProxyThread(path) as px:
            status, _, body = post(f"{px.url}/v1/chat/completions", chat())
    assert status == 400
    assert b"X-User" in body


def test_unknown_routes_wrong_methods_and_dot_segments_are_refused_not_forwarded(
    tmp_path: Path,
) -> None:
    with FakeOpenAIServer() as up:
        path = write_exp(tmp_path, up.base_url, up.base_url)
        with ProxyThread(path) as px:
            got = [
                post(f"{px.url}/v2/chat/completions", chat())[0],
                post(f"{px.url}/v1/../admin", chat())[0],
                post(f"{px.url}/v1/a/%2e%2e/admin", chat())[0],
                post(f"{px.url}/ab/status", chat())[0],
            ]
            req = urllib.request.Request(f"{px.url}/v1/chat/completions", method="GET")
            with pytest.raises(urllib.error.HTTPError) as wrong:
                urllib.request.urlopen(req, timeout=10)
            wrong.value.close()
            with urllib.request.urlopen(f"{px.url}/ab/status", timeout=10) as resp:
                status = json.loads(resp.read())
        assert got == [404, 404, 404, 405]
        assert (wrong.value.code, wrong.value.headers["Allow"]) == (405, "POST")
        assert status["treatment_share"] == 0.5
        assert up.snapshot()["requests"] == {}  # nothing reached the upstream
    assert _rows(tmp_path / "events.sqlite") == []


def test_outcomes_by_request_id_or_unit_and_bad_ones_refused(tmp_path: Path) -> None:
    with FakeOpenAIServer() as up:
        path = write_exp(tmp_path, up.base_url, up.base_url)
        with ProxyThread(path) as px:
            _, h, _ = post(f"{px.url}/v1/chat/completions", chat(user="alice"))
            rid = h["X-Heldout-Request-Id"]
            ok1 = post(
                f"{px.url}/v1/outcomes", {"request_id": rid, "name": "resolved", "value": True}
            )
            ok2 = post(f"{px.url}/v1/outcomes", {"outcomes": [
                {"unit": "bob", "name": "thumbs_up", "value": 1},
                {"unit": "bob", "name": "escalated", "value": 0.0}]})  # fmt: skip
            bad = post(f"{px.url}/v1/outcomes", [{"unit": "x", "name": "resolved", "value": "yes"},
                                                {"request_id": "nope", "name": "r", "value": 1},
                                                {"name": "r", "value": 1}])  # fmt: skip
            junk = post(f"{px.url}/v1/outcomes", None, raw=b"not json")
    assert ok1[0] == 200
    assert json.loads(ok1[2]) == {"accepted": 1}
    assert ok2[0] == 200
    assert json.loads(ok2[2]) == {"accepted": 2}
    assert bad[0] == 400
    msg = json.loads(bad[2])["error"]["message"]
    assert "outcomes[0].value" in msg
    assert "outcomes[1].request_id" in msg
    assert "outcomes[2]: needs 'request_id'" in msg
    assert "nothing was stored" in msg
    assert junk[0] == 400
    with sqlite3.connect(tmp_path / "events.sqlite") as db:
        got = db.execute("SELECT request_id, unit, arm, stage, name, value FROM outcomes "
                         "ORDER BY name").fetchall()  # fmt: skip
    alice = assign("alice", "salt-1", 0.5)
    bob = assign("bob", "salt-1", 0.5)
    assert got == [(None, "bob", bob, 0.5, "escalated", 0.0), (rid, "alice", alice, 0.5, "resolved", 1.0),
                   (None, "bob", bob, 0.5, "thumbs_up", 1.0)]  # fmt: skip


def _cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "heldout", *args], cwd=cwd, capture_output=True,
                          text=True, timeout=120)  # fmt: skip


def test_ramp_and_rollback_change_the_live_split_without_a_restart(tmp_path: Path) -> None:
    with FakeOpenAIServer() as up:
        path = write_exp(tmp_path, up.base_url, up.base_url, stages=[0.1, 0.5, 1.0])
        units = [f"u{i}" for i in range(400)]
        with ProxyThread(path) as px:

            def arms() -> dict[str, str]:
                return {u: post(f"{px.url}/v1/chat/completions", chat(user=u))[1]["X-Heldout-Arm"]
                        for u in units}  # fmt: skip

            at10 = arms()
            refused = _cli("ab", "ramp", cwd=tmp_path)
            assert refused.returncode == 2
            assert "no analysis" in refused.stderr
            ramped = _cli("ab", "ramp", "--force", cwd=tmp_path)
            assert ramped.returncode == 0, ramped.stderr
            assert "50%" in ramped.stdout
            time.sleep(0.4)
            at50 = arms()
            back = _cli("ab", "rollback", "--reason", "latency page", cwd=tmp_path)
            assert back.returncode == 0, back.stderr
            time.sleep(0.4)
            at0 = arms()
    assert sum(a == "treatment" for a in at10.values()) == sum(
        assign(u, "salt-1", 0.1) == "treatment" for u in units)  # fmt: skip
    assert all(at50[u] == "treatment" for u in units if at10[u] == "treatment")  # monotone
    assert sum(a == "treatment" for a in at50.values()) > 2 * sum(
        a == "treatment" for a in at10.values()
    )
    assert set(at0.values()) == {"control"}
    with sqlite3.connect(tmp_path / "events.sqlite") as db:
        splits = db.execute("SELECT share, action, reason FROM splits ORDER BY ts").fetchall()
    assert [s[:2] for s in splits] == [(0.1, "start"), (0.5, "ramp"), (0.0, "rollback")]
    assert "forced" in splits[1][2]
    assert splits[2][2] == "latency page"


@pytest.mark.parametrize("locked", [False, True], ids=["store-free", "store-locked"])
def test_kill_9_loses_no_acknowledged_event(tmp_path: Path, locked: bool) -> None:
    """Requests and outcomes acknowledged before a kill -9 are in the store once it is opened
    again; with another writer holding the SQLite store the whole time (``locked``) they were
    only in the journal when the proxy died."""
    with FakeOpenAIServer(ServerScript(delay_s=0.002)) as up:
        write_exp(tmp_path, up.base_url, up.base_url)
        port = _closed_port()
        proc = subprocess.Popen([sys.executable, "-m", "heldout", "ab", "serve", "--port", str(port)],
                                cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
        blocker = sqlite3.connect(tmp_path / "events.sqlite", isolation_level=None, timeout=30)
        try:
            deadline = time.time() + 30
            while time.time() < deadline:
                try:
                    socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                    break
                except OSError:
                    time.sleep(0.1)
            if locked:
                blocker.execute("BEGIN IMMEDIATE")
            acked: list[str] = []
            acked_outcomes: list[str] = []
            base = f"http://127.0.0.1:{port}/v1"

            def one(i: int) -> None:
                try:
                    status, h, _ = post(f"{base}/chat/completions", chat(f"q{i}", user=f"u{i}"))
                    if status != 200:
                        return
                    acked.append(h["X-Heldout-Request-Id"])
                    rid = h["X-Heldout-Request-Id"]
                    got, _, _ = post(f"{base}/outcomes", {"request_id": rid, "name": "resolved",
                                                          "value": i % 2})  # fmt: skip
                except OSError:
                    return
                if got == 200:
                    acked_outcomes.append(rid)

            with ThreadPoolExecutor(16) as pool:
                futures = [pool.submit(one, i) for i in range(3000)]
                deadline = time.time() + 60
                while len(acked_outcomes) < 200 and time.time() < deadline and proc.poll() is None:
                    time.sleep(0.01)
                os.kill(proc.pid, signal.SIGKILL)
                for f in futures:
                    f.result()
        finally:
            proc.kill()
            proc.wait()
            if blocker.in_transaction:
                assert _rows(tmp_path / "events.sqlite") == []  # nothing reached the tables
                blocker.execute("ROLLBACK")
            blocker.close()
    store = EventStore(tmp_path / "events.sqlite")  # what any later reader does: replays
    stored = set(store.table("requests", ["id"])["id"])
    outcomes = store.table("outcomes", ["request_id"])["request_id"]
    assert len(acked_outcomes) >= 200
    assert len(acked) < 3000  # it really died mid-way
    assert set(acked) <= stored
    assert set(acked_outcomes) <= set(outcomes)
    assert len(outcomes) == len(set(outcomes))  # and exactly once
    if locked:
        assert store.replayed >= len(acked) + len(acked_outcomes)
