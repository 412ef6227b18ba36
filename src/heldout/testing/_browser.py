"""A headless Chromium driven over the DevTools protocol (aiohttp's websocket client), for
the report's browser tests and the README screenshot. It does what Chromium's command line
cannot: a 400 px viewport (headless windows are at least 500 px wide), a measurement script
evaluated in a page whose CSP forbids inline scripts, and a screenshot of any viewport. The
browser listens on 127.0.0.1 only, on a port it picks."""

from __future__ import annotations

import asyncio
import base64
import itertools
import json
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import aiohttp

__all__ = ["browser", "find_chromium", "measure"]

FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--remote-debugging-address=127.0.0.1",
    "--remote-debugging-port=0",
]


def find_chromium() -> str | None:
    """The Chromium on PATH (Debian's ``chromium``), if any."""
    import shutil

    return shutil.which("chromium") or shutil.which("chromium-browser")


@contextmanager
def browser(chromium: str, profile: Path) -> Iterator[str]:
    """Start Chromium; yield its DevTools websocket URL; stop it."""
    proc = subprocess.Popen(
        [chromium, *FLAGS, f"--user-data-dir={profile}", "about:blank"],
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stderr is not None
        for line in proc.stderr:  # "DevTools listening on ws://127.0.0.1:PORT/devtools/..."
            if "DevTools listening on " in line:
                url = line.split("DevTools listening on ", 1)[1].strip()
                break
        else:
            raise RuntimeError("Chromium exited before its DevTools endpoint was up")
        yield url
    finally:
        proc.kill()
        proc.wait(timeout=30)
        if proc.stderr is not None:
            proc.stderr.close()


async def _page(
    url: str, page: str, width: int, height: int, script: str, shot: Path | None
) -> Any:
    ids = itertools.count(1)
    async with aiohttp.ClientSession() as http, http.ws_connect(url, max_msg_size=0) as ws:

        async def call(method: str, session: str | None = None, **params: Any) -> Any:
            n = next(ids)
            msg: dict[str, Any] = {"id": n, "method": method, "params": params}
            if session:
                msg["sessionId"] = session
            await ws.send_str(json.dumps(msg))
            while True:
                reply = json.loads((await ws.receive()).data)
                if reply.get("id") == n:
                    if "error" in reply:
                        raise RuntimeError(f"{method}: {reply['error']}")
                    return reply["result"]

        async def loaded(session: str) -> None:
            while True:
                event = json.loads((await ws.receive()).data)
                if event.get("method") == "Page.loadEventFired":
                    return

        target = (await call("Target.createTarget", url="about:blank"))["targetId"]
        session = (await call("Target.attachToTarget", targetId=target, flatten=True))["sessionId"]
        await call(
            "Emulation.setDeviceMetricsOverride",
            session,
            width=width,
            height=height,
            deviceScaleFactor=1,
            mobile=False,
        )
        await call("Page.enable", session)
        await call("Page.navigate", session, url=page)
        await asyncio.wait_for(loaded(session), 60)
        result = await call(
            "Runtime.evaluate", session, expression=script, returnByValue=True, awaitPromise=True
        )
        if shot is not None:
            png = await call("Page.captureScreenshot", session, format="png")
            shot.write_bytes(base64.b64decode(png["data"]))
        return result["result"].get("value")


def measure(
    url: str, page: str, *, width: int, height: int = 900, script: str, shot: Path | None = None
) -> Any:
    """Load ``page`` in a ``width`` x ``height`` viewport, return ``script``'s value (JSON),
    and save a screenshot of the viewport to ``shot``."""
    return asyncio.run(asyncio.wait_for(_page(url, page, width, height, script, shot), 120))
