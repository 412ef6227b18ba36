"""What real deployments need from the OpenAI-compatible backend: a system prompt, chat
templates, extra body fields and headers, rate limits, and token log-probabilities; each
checked against what a local server (127.0.0.1) actually received or returned."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path

import pytest
from pydantic import ValidationError

from heldout.backends import Request
from heldout.backends._openai import OpenAIBackend
from heldout.backends._rate import TokenBucket
from heldout.plan import OpenAIModel
from heldout.testing import FakeOpenAIServer, ServerScript
from tests.backends.test_openai import _run, _spec


def test_system_prompt_and_chat_template_reach_the_server() -> None:
    with FakeOpenAIServer() as server:
        _run(
            OpenAIBackend(_spec(server, system_prompt="Answer in one word.")), [Request("a", "Q?")]
        )
        template = [
            {"role": "system", "content": 'You label sentiment. Output {"label": ...}.'},
            {"role": "user", "content": "I love it"},
            {"role": "assistant", "content": '{"label": "positive"}'},
            {"role": "user", "content": "Text: {prompt}"},
        ]
        _run(OpenAIBackend(_spec(server, messages=template)), [Request("b", "meh {x}")])
        first, second = server.bodies
    assert first["messages"] == [
        {"role": "system", "content": "Answer in one word."},
        {"role": "user", "content": "Q?"},
    ]
    assert second["messages"][:3] == template[:3]  # braces in examples stay as written
    assert second["messages"][3] == {"role": "user", "content": "Text: meh {x}"}


def test_what_changes_answers_is_in_the_cache_key() -> None:
    plain = OpenAIModel(backend="openai", model="m")
    ids = [
        OpenAIBackend(plain).identity(),
        OpenAIBackend(plain.model_copy(update={"system_prompt": "Be brief."})).identity(),
        OpenAIBackend(plain.model_copy(update={"extra_body": {"guided_json": {}}})).identity(),
        OpenAIBackend(plain.model_copy(update={"logprobs": True})).identity(),
    ]
    assert len({json.dumps(i, sort_keys=True) for i in ids}) == 4
    assert set(ids[0]) == {"backend", "base_url", "model", "endpoint", "params"}  # as before
    headers = plain.model_copy(update={"extra_headers": {"X-Route": "lora-7"}})
    assert OpenAIBackend(headers).identity() == ids[0]


def test_extra_body_and_headers_are_sent_and_header_values_never_stored() -> None:
    schema = {"type": "object", "properties": {"label": {"type": "string"}}}
    script = ServerScript(faults={"secret": ["echo-auth"]})
    with FakeOpenAIServer(script) as server:
        spec = _spec(
            server,
            extra_body={"guided_json": schema, "chat_template_kwargs": {"thinking": False}},
            extra_headers={"X-Tenant-Token": "tok-7f3a9c"},
            max_retries=0,
        )
        out = _run(OpenAIBackend(spec), [Request("a", "hi"), Request("s", "secret")])
        bodies = {b["messages"][-1]["content"]: b for b in server.bodies}
        sent = server.headers[0]
    assert bodies["hi"]["guided_json"] == schema
    assert bodies["hi"]["chat_template_kwargs"] == {"thinking": False}
    assert sent["X-Tenant-Token"] == "tok-7f3a9c"
    assert OpenAIBackend(spec).secrets == ("tok-7f3a9c",)
    from heldout._redact import redact

    assert out["s"].error is not None
    assert "tok-7f3a9c" not in redact(out["s"].error, OpenAIBackend(spec).secrets)


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"endpoint": "completions", "system_prompt": "x"}, "need endpoint: chat"),
        ({"messages": [{"role": "user", "content": "no slot"}]}, "no message contains"),
        ({"extra_body": {"model": "other"}}, "extra_body must not set model"),
        ({"messages": [{"role": "robot", "content": "{prompt}"}]}, "role"),
        ({"requests_per_minute": 0}, "greater than 0"),
        (
            {"system_prompt": "a", "messages": [{"role": "user", "content": "{prompt}"}]},
            "not both",
        ),
    ],
)
def test_bad_chat_settings_are_refused(fields: dict[str, object], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        OpenAIModel.model_validate({"backend": "openai", "model": "m", **fields})


def test_requests_per_minute_is_honoured() -> None:
    """600/min is 10/s with a one-second bucket: 30 requests take at least 2 s, and no
    second of arrivals holds more than 10 + 10."""
    with FakeOpenAIServer() as server:
        spec = _spec(server, requests_per_minute=600, concurrency=16)
        t0 = time.monotonic()
        out = _run(OpenAIBackend(spec), [Request(f"s{i}", f"p{i}") for i in range(30)])
        took = time.monotonic() - t0
        arrivals = sorted(t for times in server.times.values() for t in times)
    assert all(g.ok for g in out.values())
    assert took >= 1.9
    for i, start in enumerate(arrivals):
        assert sum(1 for t in arrivals[i:] if t < start + 1.0) <= 21


def test_tokens_per_minute_is_honoured() -> None:
    """Each request counts len(prompt)/4 + max_tokens = 2 + 18 = 20 tokens; 12,000/min is
    200/s: (25 · 20 − 200) / 200 = 1.5 s at least."""
    with FakeOpenAIServer() as server:
        spec = _spec(server, tokens_per_minute=12_000, params={"max_tokens": 18}, concurrency=8)
        t0 = time.monotonic()
        _run(OpenAIBackend(spec), [Request(f"s{i}", f"prompt{i:02d}") for i in range(25)])
        took = time.monotonic() - t0
    assert took >= 1.4


def test_token_bucket_waits_exactly_for_its_rate() -> None:
    now = [0.0]
    slept: list[float] = []

    async def go() -> None:
        bucket = TokenBucket(120, clock=lambda: now[0])  # 2/s, capacity 2

        async def fake_sleep(s: float) -> None:
            slept.append(s)
            now[0] += s

        real = asyncio.sleep
        asyncio.sleep = fake_sleep  # type: ignore[assignment]
        try:
            for _ in range(4):
                await bucket.take()
        finally:
            asyncio.sleep = real

    asyncio.run(go())
    assert slept == pytest.approx([0.5, 0.5])  # two from the full bucket, then one per 0.5 s


@pytest.mark.parametrize("endpoint", ["chat", "completions"])
def test_token_logprobs_for_any_shape(endpoint: str) -> None:
    script = ServerScript(answer=lambda p: "three word answer")
    with FakeOpenAIServer(script) as server:
        backend = OpenAIBackend(_spec(server, endpoint=endpoint, logprobs=True))
        out = _run(backend, [Request("a", "q")])
        asked = server.bodies[0]
    assert asked["logprobs"] in (True, 1)
    assert out["a"].extra["token_logprobs"] == pytest.approx([-0.1, -0.2, -0.3])
    assert "notes" not in backend.record
    with FakeOpenAIServer(ServerScript(logprobs=False)) as server:
        backend = OpenAIBackend(_spec(server, endpoint=endpoint, logprobs=True))
        out = _run(backend, [Request("a", "q"), Request("b", "r")])
    assert "token_logprobs" not in out["a"].extra
    assert backend.record["notes"] == {"token logprobs asked, none returned": 2}


def test_chat_template_through_a_run(tmp_path: Path) -> None:
    """The plan's messages and logprobs end up in the request and in generations.jsonl."""
    import heldout
    from heldout.plan import write_starter

    write_starter(tmp_path)
    with FakeOpenAIServer(ServerScript(answer=lambda p: "positive")) as server:
        plan = (tmp_path / "heldout.yaml").read_text()
        model = (
            f"{{backend: openai, model: cand, base_url: '{server.base_url}', logprobs: true, "
            "messages: [{role: system, content: 'Label it.'}, {role: user, content: '{prompt}'}]}"
        )
        plan = plan.replace("{backend: file, path: predictions/candidate.jsonl}", model)
        (tmp_path / "heldout.yaml").write_text(plan)
        run = heldout.evaluate(tmp_path / "heldout.yaml", out=tmp_path / "run")
        sent = server.bodies
    assert run.result.models[1].identity["messages"][0] == {
        "role": "system",
        "content": "Label it.",
    }
    assert all(b["messages"][0]["content"] == "Label it." for b in sent)
    lines = [json.loads(x) for x in (run.folder / "generations.jsonl").read_text().splitlines()]
    cand = [x for x in lines if x["model"] == "candidate"]
    assert cand
    assert all(x["extra"]["token_logprobs"] == [-0.1] for x in cand)
