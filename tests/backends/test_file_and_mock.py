"""Precomputed predictions (plain, lm-eval, Inspect) and the mock backend."""

from __future__ import annotations

import asyncio
import json
import sys
import zipfile
from pathlib import Path

import pytest

from heldout.backends import Generation, MockBackend, Request
from heldout.backends._file import FileBackend, Predictions, read_predictions
from heldout.errors import DataError
from heldout.plan import FileModel

# lm-evaluation-harness --log_samples writes one object per doc with these keys
LM_EVAL_ROW = {
    "doc_id": 0,
    "doc": {"question": "2+2?", "answer": "4"},
    "target": "4",
    "arguments": [["Q: 2+2?\nA:", {"until": ["\n"]}]],
    "resps": [[" 4"]],
    "filtered_resps": [" 4"],
    "doc_hash": "abc",
    "prompt_hash": "def",
    "target_hash": "ghi",
    "exact_match": 1.0,
}

# Inspect AI EvalSample (as in .json logs and .eval zips' samples/<id>_epoch_<n>.json)
INSPECT_SAMPLE = {
    "id": "q1",
    "epoch": 1,
    "input": "What is 2+2?",
    "target": "4",
    "messages": [],
    "output": {
        "model": "openai/gpt-4o",
        "choices": [
            {
                "message": {"role": "assistant", "content": "4", "source": "generate"},
                "stop_reason": "stop",
            }
        ],
        "completion": "4",
    },
    "scores": {"match": {"value": "C"}},
}


def _gen(backend: object, ids: list[str]) -> dict[str, Generation]:
    out: dict[str, Generation] = {}
    asyncio.run(
        backend.generate(
            [Request(i, "p") for i in ids],  # type: ignore[attr-defined]
            lambda g: out.__setitem__(g.sample_id, g),
        )
    )
    return out


def test_plain_jsonl_and_missing_id(tmp_path: Path) -> None:
    path = tmp_path / "preds.jsonl"
    path.write_text('{"id": "a", "output": "x"}\n{"id": 2, "output": "y"}\n')
    backend = FileBackend(FileModel(backend="file", path="preds.jsonl"), root=tmp_path)
    with pytest.raises(DataError, match=r"no prediction for 1 of 3 samples \(first ids 'zzz'\)"):
        _gen(backend, ["a", "2", "zzz"])
    lenient = FileBackend(
        FileModel(backend="file", path="preds.jsonl", missing="wrong"), root=tmp_path
    )
    out = _gen(lenient, ["a", "2", "zzz"])
    assert (out["a"].text, out["2"].text, out["zzz"].text) == ("x", "y", "")
    assert lenient.record["scored_wrong"] == {"missing": 1, "errored": 0}
    assert "scored as wrong (missing: wrong)" in lenient.record["warnings"][0]
    assert backend.identity()["sha256"]


def _texts(preds: Predictions) -> dict[str, str]:
    return {k: v.text for k, v in preds.by_id.items()}


@pytest.fixture
def own_inspect_reader(monkeypatch: pytest.MonkeyPatch) -> None:
    """As on a machine without Inspect installed: heldout's own reader."""
    monkeypatch.setitem(sys.modules, "inspect_ai.log", None)


def test_lm_eval_samples(tmp_path: Path) -> None:
    path = tmp_path / "samples_gsm8k_2024.jsonl"
    rows = [
        LM_EVAL_ROW,
        {**LM_EVAL_ROW, "doc_id": 1, "doc": {"question": "3+3?"}, "filtered_resps": ["5"]},
    ]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    preds = read_predictions(FileModel(backend="file", path=str(path)), path)
    assert _texts(preds) == {"0": " 4", "1": "5"}
    by_doc = read_predictions(
        FileModel(backend="file", path=str(path), format="lm-eval", id_field="question"), path
    )
    assert _texts(by_doc) == {"2+2?": " 4", "3+3?": "5"}


def test_lm_eval_duplicate_doc_ids(tmp_path: Path) -> None:
    path = tmp_path / "samples_x.jsonl"
    path.write_text(json.dumps(LM_EVAL_ROW) + "\n" + json.dumps(LM_EVAL_ROW) + "\n")
    with pytest.raises(DataError, match="duplicate id 0"):
        read_predictions(FileModel(backend="file", path=str(path)), path)


@pytest.mark.usefixtures("own_inspect_reader")
def test_inspect_json_and_eval_zip(tmp_path: Path) -> None:
    log = {
        "version": 2,
        "status": "success",
        "eval": {"task": "t"},
        "samples": [
            INSPECT_SAMPLE,
            {**INSPECT_SAMPLE, "epoch": 2, "output": {"completion": "x"}},
            {
                **INSPECT_SAMPLE,
                "id": 2,
                "output": {
                    "choices": [
                        {
                            "message": {
                                "role": "assistant",
                                "content": [
                                    {"type": "text", "text": "fo"},
                                    {"type": "text", "text": "ur"},
                                ],
                            }
                        }
                    ]
                },
            },
        ],
    }
    js = tmp_path / "log.json"
    js.write_text(json.dumps(log))
    got = read_predictions(FileModel(backend="file", path=str(js)), js)
    assert _texts(got) == {"q1": "4", "2": "four"}
    ev = tmp_path / "log.eval"
    with zipfile.ZipFile(ev, "w") as zf:
        zf.writestr("header.json", json.dumps({"version": 2}))
        zf.writestr("samples/q1_epoch_1.json", json.dumps(INSPECT_SAMPLE))
        zf.writestr("samples/q1_epoch_2.json", json.dumps({**INSPECT_SAMPLE, "epoch": 2}))
    assert _texts(read_predictions(FileModel(backend="file", path=str(ev)), ev)) == {"q1": "4"}


def test_mock_backend_scripts_outputs() -> None:
    mock = MockBackend(
        "m", outputs={"a": "x"}, fn=lambda r: r.sample_id.upper() if r.sample_id == "b" else None
    )
    out = _gen(mock, ["a", "b", "c"])
    assert (out["a"].text, out["b"].text) == ("x", "B")
    assert out["c"].error == "mock has no output for this id"
    assert mock.calls == ["a", "b", "c"]
