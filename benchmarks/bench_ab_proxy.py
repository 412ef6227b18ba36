"""Added latency of ``heldout ab serve`` over calling the upstream directly.

One local upstream (an OpenAI-compatible chat endpoint answering a fixed completion at once)
runs in its own process, the proxy (``heldout ab serve``, the console script, its event store
committing every request) in another; this process sends an open-loop stream of requests at
a fixed rate — each at its scheduled time, whether or not earlier ones have returned — to the
upstream directly and through the proxy, interleaved in rounds, and compares the latency
distributions measured side by side.

When ``haproxy`` is installed (``apt-get install haproxy``) the same rounds also go through it,
an HTTP reverse proxy in C with kept-alive upstream connections and no logging: what one
extra hop costs on this machine, the floor under any proxy's figure.

    .venv/bin/python benchmarks/bench_ab_proxy.py [--seconds 10] [--rates 200 1000]

Goal (issue #20) at 200 requests/s: p50 ≤ 1 ms and p99 ≤ 5 ms added.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

HAPROXY = """global
    maxconn 4096
defaults
    mode http
    timeout connect 5s
    timeout client 60s
    timeout server 60s
    option http-keep-alive
    http-reuse always
frontend bench
    bind 127.0.0.1:{port}
    default_backend upstream
backend upstream
    server up 127.0.0.1:{up}
"""

BODY = json.dumps(
    {
        "id": "x",
        "object": "chat.completion",
        "model": "m",
        "choices": [
            {"index": 0, "message": {"role": "assistant", "content": "ok"}, "finish_reason": "stop"}
        ],
        "usage": {"prompt_tokens": 5, "completion_tokens": 1, "total_tokens": 6},
    }
).encode()


def upstream(port: int) -> None:
    from aiohttp import web

    async def chat(request: web.Request) -> web.Response:
        await request.read()
        return web.Response(body=BODY, content_type="application/json")

    app = web.Application()
    app.router.add_post("/v1/chat/completions", chat)
    web.run_app(app, host="127.0.0.1", port=port, access_log=None, print=None)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait(port: int) -> None:
    deadline = time.time() + 30
    while time.time() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.1)
    raise SystemExit(f"nothing listens on {port}")


async def load(url: str, rate: float, seconds: float, unit_ids: int) -> np.ndarray:
    import aiohttp

    n = int(rate * seconds)
    lat = np.full(n, np.nan)
    connector = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(connector=connector) as session:
        start = time.perf_counter() + 0.2

        async def one(i: int) -> None:
            await asyncio.sleep(max(0.0, start + i / rate - time.perf_counter()))
            body = {
                "model": "m",
                "user": f"user-{i % unit_ids}",
                "messages": [{"role": "user", "content": "hi"}],
            }
            t = time.perf_counter()
            async with session.post(url, json=body) as resp:
                await resp.read()
                if resp.status == 200:
                    lat[i] = (time.perf_counter() - t) * 1000

        # warm the connection pool, then the measured stream
        await asyncio.gather(*(one(i) for i in range(min(50, n))))
        lat[:] = np.nan
        start = time.perf_counter() + 0.2
        await asyncio.gather(*(one(i) for i in range(n)))
    return lat


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--rates", type=float, nargs="+", default=[200.0, 1000.0])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--upstream", type=int, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.upstream:
        upstream(args.upstream)
        return
    folder = Path(tempfile.mkdtemp(prefix="bench-ab-"))
    up, px = free_port(), free_port()
    base = f"http://127.0.0.1:{up}/v1"
    (folder / "ab.yaml").write_text(
        f"name: bench\nsalt: s\narms:\n  control: {{base_url: '{base}'}}\n"
        f"  treatment: {{base_url: '{base}'}}\nstages: [0.5, 1.0]\n"
        "primary: {outcome: resolved}\nstore: events.sqlite\n"
    )
    heldout = str(Path(sys.executable).with_name("heldout"))
    subprocess.run([heldout, "ab", "lock"], cwd=folder, check=True, capture_output=True)
    procs = [
        subprocess.Popen([sys.executable, __file__, "--upstream", str(up)]),
        subprocess.Popen(
            [heldout, "ab", "serve", "--port", str(px)], cwd=folder, stdout=subprocess.DEVNULL
        ),
    ]
    haproxy = shutil.which("haproxy")
    hp = free_port()
    if haproxy:
        (folder / "haproxy.cfg").write_text(HAPROXY.format(port=hp, up=up))
        procs.append(subprocess.Popen([haproxy, "-db", "-f", str(folder / "haproxy.cfg")]))
    try:
        wait(up)
        wait(px)
        if haproxy:
            wait(hp)
        direct_url = f"{base}/chat/completions"
        proxy_url = f"http://127.0.0.1:{px}/v1/chat/completions"
        haproxy_url = f"http://127.0.0.1:{hp}/v1/chat/completions"
        print(
            f"upstream {base}; proxy 127.0.0.1:{px}; {args.seconds:g} s per run, "
            f"{args.rounds} rounds interleaved; haproxy: {haproxy or 'not installed'}"
        )
        for rate in args.rates:
            d_all, p_all, h_all = [], [], []
            for _ in range(args.rounds):
                d_all.append(asyncio.run(load(direct_url, rate, args.seconds, 5000)))
                p_all.append(asyncio.run(load(proxy_url, rate, args.seconds, 5000)))
                if haproxy:
                    h_all.append(asyncio.run(load(haproxy_url, rate, args.seconds, 5000)))
            rounds = []  # each round's added p50 / p99: the spread says how far to trust one run
            for d_r, p_r in zip(d_all, p_all, strict=True):
                qd_r = np.nanquantile(d_r, [0.5, 0.99])
                qp_r = np.nanquantile(p_r, [0.5, 0.99])
                rounds.append(qp_r - qd_r)
            added = np.array(rounds)
            d, p = np.concatenate(d_all), np.concatenate(p_all)
            failed = int(np.isnan(p).sum() + np.isnan(d).sum())
            d, p = d[~np.isnan(d)], p[~np.isnan(p)]
            qd, qp = np.quantile(d, [0.5, 0.99]), np.quantile(p, [0.5, 0.99])
            print(
                f"{rate:>6.0f} req/s: direct p50 {qd[0]:.3f} ms p99 {qd[1]:.3f} ms | proxy p50 "
                f"{qp[0]:.3f} ms p99 {qp[1]:.3f} ms | added p50 {qp[0] - qd[0]:+.3f} ms, p99 "
                f"{qp[1] - qd[1]:+.3f} ms | ratio p50 {qp[0] / qd[0]:.2f}x | {len(p):,} "
                f"through the proxy, {failed} failed"
            )
            print(
                f"        added p50 by round: {' '.join(f'{x:+.3f}' for x in added[:, 0])} ms "
                f"(median {np.median(added[:, 0]):+.3f}); p99 by round: "
                f"{' '.join(f'{x:+.3f}' for x in added[:, 1])} ms (median "
                f"{np.median(added[:, 1]):+.3f})"
            )
            if h_all:
                h = np.concatenate(h_all)
                qh = np.nanquantile(h, [0.5, 0.99])
                by_round = [
                    np.nanquantile(p_r, 0.5) - np.nanquantile(h_r, 0.5)
                    for p_r, h_r in zip(p_all, h_all, strict=True)
                ]
                print(
                    f"        haproxy: p50 {qh[0]:.3f} ms p99 {qh[1]:.3f} ms | added p50 "
                    f"{qh[0] - qd[0]:+.3f} ms, p99 {qh[1] - qd[1]:+.3f} ms | heldout over "
                    f"haproxy p50 {qp[0] - qh[0]:+.3f} ms (by round: "
                    f"{' '.join(f'{x:+.3f}' for x in by_round)}), ratio of added p50 "
                    f"{(qp[0] - qd[0]) / max(qh[0] - qd[0], 1e-9):.2f}x | "
                    f"{int(np.isnan(h).sum())} failed"
                )
    finally:
        for proc in procs:
            proc.terminate()
            proc.wait()
    with sqlite3.connect(folder / "events.sqlite") as db:
        n = db.execute("SELECT count(*) FROM requests").fetchone()[0]
    print(f"event store: {n:,} requests committed (every proxied request, warm-up included)")


if __name__ == "__main__":
    main()
