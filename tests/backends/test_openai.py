"""The OpenAI-compatible backend against a real local HTTP server (127.0.0.1 only)."""

from __future__ import annotations

import asyncio
import math
import time

import pytest

from heldout.backends import Generation, Request
from heldout.backends._openai import OpenAIBackend, choice_logprobs_from_top
from heldout.errors import HeldoutError
from heldout.plan import OpenAIModel
from heldout.testing import FakeOpenAIServer, ServerScript


def _run(backend: OpenAIBackend, requests: list[Request]) -> dict[str, Generation]:
    out: dict[str, Generation] = {}

    async def go() -> None:
        try:
            await backend.generate(requests, lambda g: out.__setitem__(g.sample_id, g))
        finally:
            await backend.close()

    asyncio.run(go())
    return out


def _spec(server: FakeOpenAIServer, **kw: object) -> OpenAIModel:
    return OpenAIModel.model_validate(
        {"backend": "openai", "base_url": server.base_url, "model": "m", **kw}
    )


@pytest.mark.parametrize("endpoint", ["chat", "completions"])
def test_answers_and_usage(endpoint: str) -> None:
    script = ServerScript(answer=lambda p: p.upper())
    with FakeOpenAIServer(script) as server:
        backend = OpenAIBackend(_spec(server, endpoint=endpoint, concurrency=4))
        out = _run(backend, [Request(f"s{i}", f"hello {i}") for i in range(20)])
    assert {k: v.text for k, v in out.items()} == {f"s{i}": f"HELLO {i}" for i in range(20)}
    assert out["s0"].prompt_tokens == 2
    assert all(g.attempts == 1 and g.ok for g in out.values())


def test_retries_429_honouring_retry_after_and_500() -> None:
    script = ServerScript(fail={"a": [429, 500], "b": [503]}, retry_after=0.4)
    with FakeOpenAIServer(script) as server:
        backend = OpenAIBackend(_spec(server, max_retries=3), backoff_base_s=0.01)
        out = _run(backend, [Request("a", "a"), Request("b", "b"), Request("c", "c")])
        times = server.times["a"]
    assert out["a"].ok
    assert out["a"].attempts == 3
    assert out["b"].ok
    assert out["b"].attempts == 2
    assert out["c"].attempts == 1
    assert times[1] - times[0] >= 0.39  # waited at least Retry-After after the 429


def test_timeout_is_retried() -> None:
    script = ServerScript(slow={"x": 2.0})
    with FakeOpenAIServer(script) as server:
        backend = OpenAIBackend(_spec(server, timeout_s=0.3, max_retries=2), backoff_base_s=0.01)
        start = time.perf_counter()
        out = _run(backend, [Request("x", "x")])
        elapsed = time.perf_counter() - start
    assert out["x"].ok
    assert out["x"].attempts == 2
    assert elapsed < 2.0  # the slow first attempt was abandoned at the 0.3 s timeout


def test_dropped_connections_are_retried() -> None:
    script = ServerScript(drop={"d": 2})
    with FakeOpenAIServer(script) as server:
        backend = OpenAIBackend(_spec(server, max_retries=3), backoff_base_s=0.01)
        out = _run(backend, [Request("d", "d"), Request("e", "e")])
        seen = dict(server.requests)
    assert out["d"].ok
    assert out["d"].attempts == 3
    assert seen == {"d": 3, "e": 1}
    assert out["e"].attempts == 1


def test_gives_up_with_a_clear_error_naming_the_sample() -> None:
    script = ServerScript(fail={"bad": [500, 500, 500]})
    with FakeOpenAIServer(script) as server:
        backend = OpenAIBackend(_spec(server, max_retries=2), backoff_base_s=0.01)
        out = _run(backend, [Request("s-17", "bad")])
        assert server.requests["bad"] == 3
    g = out["s-17"]
    assert not g.ok
    assert g.error is not None
    assert g.error.startswith("sample 's-17': giving up after 3 attempt(s)")
    assert "HTTP 500" in g.error


def test_client_errors_are_not_retried() -> None:
    script = ServerScript(fail={"p": [400]})
    with FakeOpenAIServer(script) as server:
        out = _run(OpenAIBackend(_spec(server)), [Request("s", "p")])
        assert server.requests["p"] == 1
    assert out["s"].error is not None
    assert "HTTP 400" in out["s"].error


def test_label_logprobs_from_top_tokens() -> None:
    script = ServerScript(
        answer=lambda p: "positive",
        top_logprobs={
            "pos": math.log(0.6),
            " Positive": math.log(0.1),
            "neg": math.log(0.2),
            "x": math.log(0.1),
        },
    )
    with FakeOpenAIServer(script) as server:
        out = _run(
            OpenAIBackend(_spec(server)),
            [Request("s", "p", choices=("positive", "negative", "neutral"))],
        )
    lp = out["s"].choice_logprobs
    assert lp is not None
    assert lp["positive"] == pytest.approx(math.log(0.7))
    assert lp["negative"] == pytest.approx(math.log(0.2))
    assert lp["neutral"] == -math.inf
    assert choice_logprobs_from_top({}, ["a"]) == {"a": -math.inf}


def test_api_key_comes_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    spec = OpenAIModel(backend="openai", model="m", api_key_env="HELDOUT_TEST_KEY")
    monkeypatch.delenv("HELDOUT_TEST_KEY", raising=False)
    with pytest.raises(HeldoutError, match="environment variable HELDOUT_TEST_KEY"):
        OpenAIBackend(spec)
    monkeypatch.setenv("HELDOUT_TEST_KEY", "sk-secret")
    backend = OpenAIBackend(spec)
    assert "sk-secret" not in str(backend.identity())
