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


@pytest.mark.parametrize(
    "fault", ["not-json", "not-utf8", "no-choices", "truncated", "html", "drop", "500", "503"]
)
def test_malformed_and_failed_answers_are_retried_and_counted(fault: str) -> None:
    """A 200 whose body is not JSON, not UTF-8, lacks choices or is cut short, an HTML error
    page: each is a retryable failure of that sample (it used to end the run in a
    traceback), counted in the backend's record."""
    script = ServerScript(answer=lambda p: "fine", faults={"a": [fault, fault]})
    with FakeOpenAIServer(script) as server:
        backend = OpenAIBackend(_spec(server, max_retries=3), backoff_base_s=0.001)
        out = _run(backend, [Request("a", "a"), Request("b", "b")])
        assert server.requests["a"] == 3
    assert out["a"].ok
    assert out["a"].text == "fine"
    assert out["a"].attempts == 3
    assert sum(backend.record["retries_by_reason"].values()) == 2


def test_malformed_answers_that_never_heal_fail_the_sample_with_the_reason() -> None:
    script = ServerScript(faults={"a": ["html"] * 5})
    with FakeOpenAIServer(script) as server:
        out = _run(
            OpenAIBackend(_spec(server, max_retries=2), backoff_base_s=0.001), [Request("a", "a")]
        )
    assert not out["a"].ok
    assert "malformed response: an HTML page" in (out["a"].error or "")


def test_a_huge_answer_fails_its_sample_without_being_stored() -> None:
    script = ServerScript(faults={"a": ["huge"]}, huge_bytes=3_000_000)
    with FakeOpenAIServer(script) as server:
        out = _run(
            OpenAIBackend(_spec(server, max_response_bytes=1_000_000), backoff_base_s=0.001),
            [Request("a", "a"), Request("b", "b")],
        )
    assert not out["a"].ok
    assert "over 1,000,000 bytes (max_response_bytes)" in (out["a"].error or "")
    assert out["b"].ok


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("120", 120.0),
        ("0", 0.0),
        ("1.5", 1.5),
        ("Wed, 21 Oct 2015 07:28:00 GMT", 0.0),  # in the past: no wait
        ("Sun, 06 Nov 1994 08:49:37 GMT", 0.0),
        ("soon", None),
        ("", None),
        ("-5", 0.0),
        ("nan", None),
        ("Mon, 99 Foo 2015 99:99:99 GMT", None),
        (None, None),
    ],
)
def test_retry_after_forms(header: str | None, expected: float | None) -> None:
    from heldout.backends._openai import parse_retry_after

    assert parse_retry_after(header) == expected


def test_retry_after_http_date_in_the_future() -> None:
    import email.utils

    from heldout.backends._openai import parse_retry_after

    now = 1_700_000_000.0
    header = email.utils.formatdate(now + 30, usegmt=True)
    assert parse_retry_after(header, now=now) == pytest.approx(30.0)


@pytest.mark.parametrize("header", ["86400", "soon"])
def test_retry_after_is_capped_or_ignored(header: str) -> None:
    """Retry-After: 86400 must not sleep a day (capped by max_retry_wait_s); 'soon' must not
    crash (ignored with a note, the backoff decides)."""
    script = ServerScript(faults={"a": ["429"]}, retry_after_header=header)
    with FakeOpenAIServer(script) as server:
        backend = OpenAIBackend(_spec(server, max_retry_wait_s=0.2), backoff_base_s=0.001)
        start = time.monotonic()
        out = _run(backend, [Request("a", "a")])
        took = time.monotonic() - start
    assert out["a"].ok
    assert took < 5
    if header == "soon":
        assert backend.record["notes"]["unreadable Retry-After (ignored)"] == 1


def test_total_retry_time_per_sample_is_bounded() -> None:
    script = ServerScript(faults={"a": ["503"] * 50}, retry_after=0.3)
    with FakeOpenAIServer(script) as server:
        backend = OpenAIBackend(
            _spec(server, max_retries=50, max_retry_time_s=1.0), backoff_base_s=0.001
        )
        start = time.monotonic()
        out = _run(backend, [Request("a", "a")])
        took = time.monotonic() - start
    assert not out["a"].ok
    assert "max_retry_time_s=1" in (out["a"].error or "")
    assert took < 3


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("max_retries", 10**9, "less than or equal to 100"),
        ("max_retries", 1e9, "valid integer"),
        ("timeout_s", 1e300, "less than or equal to 3600"),
        ("max_retry_wait_s", -1, "greater than or equal to 0"),
        ("max_response_bytes", 10, "greater than or equal to 1024"),
    ],
)
def test_unbounded_numbers_are_refused(field: str, value: float, message: str) -> None:
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match=message):
        OpenAIModel.model_validate(
            {"backend": "openai", "base_url": "http://127.0.0.1:1/v1", "model": "m", field: value}
        )


def test_malformed_logprobs_keep_the_answer_without_probabilities() -> None:
    script = ServerScript(faults={"a": ["bad-logprobs"]})
    with FakeOpenAIServer(script) as server:
        backend = OpenAIBackend(_spec(server), backoff_base_s=0.001)
        out = _run(backend, [Request("a", "a", choices=("positive", "negative"))])
    assert out["a"].ok
    assert out["a"].text == "positive"
    assert out["a"].choice_logprobs is None
    assert backend.record["notes"]["malformed logprobs (ignored)"] == 1
