"""Throughput against a local 0-ms OpenAI-compatible server: heldout run vs a bare aiohttp loop.

    .venv/bin/python benchmarks/bench_openai.py [--n 2000] [--concurrency 64] [--rounds 5]

Starts the fake server (heldout.testing) in its own process on 127.0.0.1, then times, as
whole commands (interpreter start-up included):

- a bare aiohttp loop sending the same n chat requests with the same concurrency;
- ``heldout run`` on a plan whose base model is that server (n prompts) and whose candidate is
  a mock, with a fresh cache (so every request is sent, committed to SQLite and persisted);
- the same ``heldout run`` again with that cache warm (every answer from the cache): the
  start-up, cache-read, scoring and report cost a user pays on every rerun.

Rounds alternate the two (so both see the same machine load); each round prints both wall
times, heldout's request-phase time (from results.json) and the rate ratio; the summary gives
the median and the worst round against the goals.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

BARE = r"""
import asyncio, sys, time, aiohttp
url, n, conc = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
async def main():
    q = asyncio.Queue()
    for i in range(n):
        q.put_nowait(i)
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=conc)) as s:
        async def worker():
            while not q.empty():
                i = q.get_nowait()
                body = {"model": "m", "messages": [{"role": "user", "content": f"prompt {i}"}],
                        "max_tokens": 16}
                async with s.post(url, json=body) as r:
                    await r.json()
        t = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(conc)))
        print(time.perf_counter() - t)
asyncio.run(main())
"""

# The same loop on httpx (not a heldout dependency: measured only when installed), to show
# why the openai backend is built on aiohttp.
BARE_HTTPX = r"""
import asyncio, sys, time, httpx
url, n, conc = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
async def main():
    q = asyncio.Queue()
    for i in range(n):
        q.put_nowait(i)
    limits = httpx.Limits(max_connections=conc, max_keepalive_connections=conc)
    async with httpx.AsyncClient(limits=limits, timeout=60) as s:
        async def worker():
            while not q.empty():
                i = q.get_nowait()
                body = {"model": "m", "messages": [{"role": "user", "content": f"prompt {i}"}],
                        "max_tokens": 16}
                (await s.post(url, json=body)).json()
        t = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(conc)))
        print(time.perf_counter() - t)
asyncio.run(main())
"""


def _bare(base_url: str, n: int, concurrency: int, code: str = BARE) -> tuple[float, float]:
    """Whole-command and request-phase seconds of a bare client loop (aiohttp by default)."""
    t0 = time.perf_counter()
    bare = subprocess.run(
        [sys.executable, "-c", code, f"{base_url}/chat/completions", str(n), str(concurrency)],
        capture_output=True,
        text=True,
        check=True,
    )
    return time.perf_counter() - t0, float(bare.stdout.strip())


def _heldout_run(
    bin_dir: Path, root: Path, out: str
) -> tuple[float, dict[str, Any], dict[str, Any]]:
    """One whole ``heldout run`` command into ``root/out``: wall time, results.json and the
    base model's record."""
    shutil.rmtree(root / out, ignore_errors=True)
    t0 = time.perf_counter()
    run = subprocess.run(
        [str(bin_dir / "heldout"), "run", "--out", str(root / out)],
        cwd=root,
        capture_output=True,
        text=True,
    )
    wall = time.perf_counter() - t0
    if run.returncode not in (0, 1):
        raise SystemExit(run.stderr)
    result = json.loads((root / out / "results.json").read_text())
    return wall, result, next(m for m in result["models"] if m["role"] == "base")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=2000)
    ap.add_argument("--concurrency", type=int, default=64)
    ap.add_argument("--rounds", type=int, default=5)
    args = ap.parse_args()
    rows: list[tuple[float, float, float, float]] = []
    warm_walls: list[float] = []
    bin_dir = Path(sys.executable).parent
    server = subprocess.Popen(
        [sys.executable, "-m", "heldout.testing", "--port", "0"], stdout=subprocess.PIPE, text=True
    )
    try:
        port = int((server.stdout.readline() if server.stdout else "").split()[-1])
        base_url = f"http://127.0.0.1:{port}/v1"
        with tempfile.TemporaryDirectory() as tmp:
            root = Path(tmp)
            (root / "gold.jsonl").write_text(
                "".join(
                    json.dumps({"id": f"s{i}", "input": f"prompt {i}", "target": "ok"}) + "\n"
                    for i in range(args.n)
                )
            )
            (root / "heldout.yaml").write_text(f"""
name: bench
target_behavior: throughput
task: {{shape: qa, data: gold.jsonl}}
primary_metric: exact_match
baseline: 0.1
success_threshold: 0.5
min_detectable_lift: 0.1
models:
  base: {{backend: openai, base_url: "{base_url}", model: m, concurrency: {args.concurrency},
          params: {{max_tokens: 16}}}}
  candidate: {{backend: mock, default: ok}}
stats: {{resamples: 1000}}
""")
            for r in range(args.rounds):  # interleaved: both see the same machine load
                bare_wall, bare_req = _bare(base_url, args.n, args.concurrency)
                shutil.rmtree(root / ".heldout", ignore_errors=True)  # a fresh cache each round
                heldout_wall, result, base_model = _heldout_run(bin_dir, root, "run")
                if base_model["requests"] != args.n or base_model["cached"] != 0:
                    raise SystemExit("the benchmark run did not send every request")
                heldout_req = result["timings"]["generate_base_s"]
                # the warm rerun: same plan, the cache now holds every answer
                warm_wall, _, warm_base = _heldout_run(bin_dir, root, "rerun")
                if warm_base["cached"] != args.n:
                    raise SystemExit("the warm rerun did not take every answer from the cache")
                warm_walls.append(warm_wall)
                rows.append((bare_wall, bare_req, heldout_wall, heldout_req))
                print(
                    f"round {r + 1}: bare aiohttp loop: whole command {bare_wall:.2f} s, "
                    f"requests {bare_req:.2f} s | heldout run: whole command {heldout_wall:.2f} s, "
                    f"base-model request phase {heldout_req:.2f} s | "
                    f"request rate {bare_req / heldout_req:.0%} of bare | warm-cache rerun: "
                    f"whole command {warm_walls[-1]:.2f} s"
                )
            try:
                import httpx  # noqa: F401

                httpx_wall, httpx_req = _bare(base_url, args.n, args.concurrency, BARE_HTTPX)
                print(
                    f"bare httpx loop (for the choice of client): whole command "
                    f"{httpx_wall:.2f} s, requests {httpx_req:.2f} s"
                )
            except ImportError:
                print("bare httpx loop: skipped (pip install httpx to measure it)")
    finally:
        server.terminate()
        server.wait(10)
        if server.stdout:
            server.stdout.close()
    walls = [r[2] for r in rows]
    ratios = [r[1] / r[3] for r in rows]
    print(
        f"{args.n:,} prompts, concurrency {args.concurrency}, local 0-ms server, "
        f"{args.rounds} rounds"
    )
    print(
        f"heldout run whole command (start-up, cache writes, per-sample persistence, scoring, "
        f"reports): median {statistics.median(walls):.2f} s, max {max(walls):.2f} s (goal <= 2.0 s)"
    )
    print(
        f"warm-cache rerun (every answer from the cache) whole command: median "
        f"{statistics.median(warm_walls):.2f} s, max {max(warm_walls):.2f} s (goal < 1.0 s)"
    )
    print(
        f"request-phase rate, heldout / bare aiohttp loop: median {statistics.median(ratios):.0%}, "
        f"min {min(ratios):.0%} (goal >= 60%)"
    )


if __name__ == "__main__":
    main()
