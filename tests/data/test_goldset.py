"""Gold-set loading: three formats, field mapping, and every malformed file named precisely."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from heldout.data import FieldMap, iter_samples, load_samples
from heldout.errors import DataError

GOOD = [
    {"id": "a", "input": "first", "target": "x", "lang": "en"},
    {"id": "b", "input": "second", "target": ["y", "z"], "metadata": {"lang": "fr"}},
]


def test_jsonl_loads_with_metadata(tmp_path: Path) -> None:
    path = tmp_path / "gold.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in GOOD) + "\n\n")
    samples = load_samples(path)
    assert [s.id for s in samples] == ["a", "b"]
    assert samples[0].metadata == {"lang": "en"}
    assert samples[1].metadata == {"lang": "fr"}
    assert samples[1].target == ["y", "z"]


def test_integer_ids_become_strings(tmp_path: Path) -> None:
    path = tmp_path / "gold.jsonl"
    path.write_text('{"id": 7, "input": "q", "target": "t"}\n')
    assert load_samples(path)[0].id == "7"


def test_csv_and_tsv(tmp_path: Path) -> None:
    path = tmp_path / "gold.csv"
    path.write_text('\ufeffid,input,target,lang\n1,"hello, world",greet,en\n2,"multi\nline",x,fr\n')
    samples = load_samples(path)
    assert [(s.id, s.input, s.metadata["lang"]) for s in samples] == [
        ("1", "hello, world", "en"),
        ("2", "multi\nline", "fr"),
    ]
    tsv = tmp_path / "gold.tsv"
    tsv.write_text("id\tinput\ttarget\n1\ta\tb\n")
    assert load_samples(tsv)[0].target == "b"


def test_parquet_streams_in_batches(tmp_path: Path) -> None:
    path = tmp_path / "gold.parquet"
    n = 20_000
    table = pa.table(
        {"qid": [f"q{i}" for i in range(n)], "question": ["?"] * n, "answer": ["!"] * n}
    )
    pq.write_table(table, path, row_group_size=5000)
    fields = FieldMap(id_field="qid", input_field="question", target_field="answer")
    it = iter_samples(path, fields)
    first = next(it)
    assert (first.id, first.input, first.target) == ("q0", "?", "!")
    assert sum(1 for _ in it) == n - 1


def test_field_mapping(tmp_path: Path) -> None:
    path = tmp_path / "gold.jsonl"
    path.write_text('{"uid": "u1", "prompt": "p", "answer": "a"}\n')
    (s,) = load_samples(path, FieldMap("uid", "prompt", "answer"))
    assert (s.id, s.input, s.target, dict(s.metadata)) == ("u1", "p", "a", {})


OK = '{"id": "ok", "input": "fine", "target": "t"}'

# (name, file name, content, expected substrings of the one problem)
MALFORMED: list[tuple[str, str, bytes, str]] = [
    (
        "missing id",
        "g.jsonl",
        b'{"input": "x", "target": "t"}\n',
        ":1: field 'id': missing sample id",
    ),
    (
        "null id",
        "g.jsonl",
        b'{"id": null, "input": "x", "target": "t"}\n',
        "id must be a string or integer, got null",
    ),
    (
        "float id",
        "g.jsonl",
        b'{"id": 1.5, "input": "x", "target": "t"}\n',
        "id must be a string or integer, got float",
    ),
    ("bool id", "g.jsonl", b'{"id": true, "input": "x", "target": "t"}\n', "got bool"),
    (
        "empty id",
        "g.jsonl",
        b'{"id": "  ", "input": "x", "target": "t"}\n',
        "field 'id': id is empty",
    ),
    (
        "duplicate id",
        "g.jsonl",
        (OK + "\n" + OK + "\n").encode(),
        ":2: field 'id': duplicate id 'ok' (first at",
    ),
    ("missing input", "g.jsonl", b'{"id": "a", "target": "t"}\n', "field 'input': missing input"),
    (
        "input not string",
        "g.jsonl",
        b'{"id": "a", "input": 3, "target": "t"}\n',
        "input must be a string, got int",
    ),
    ("empty input", "g.jsonl", b'{"id": "a", "input": "", "target": "t"}\n', "input is empty"),
    ("missing target", "g.jsonl", b'{"id": "a", "input": "x"}\n', "field 'target': missing target"),
    ("null target", "g.jsonl", b'{"id": "a", "input": "x", "target": null}\n', "missing target"),
    (
        "malformed json",
        "g.jsonl",
        (OK + '\n{"id": "b", "input": }\n').encode(),
        ":2: malformed JSON at column 22: Expecting value",
    ),
    ("not an object", "g.jsonl", b'["a", "b"]\n', ":1: expected a JSON object per line, got list"),
    (
        "NaN literal",
        "g.jsonl",
        b'{"id": "a", "input": "x", "target": NaN}\n',
        "NaN is not valid JSON",
    ),
    (
        "duplicate key",
        "g.jsonl",
        b'{"id": "a", "id": "b", "input": "x", "target": "t"}\n',
        "duplicate key 'id' in one object",
    ),
    (
        "invalid utf-8",
        "g.jsonl",
        (OK + '\n{"id": "b", "input": "caf\xe9", "target": "t"}\n').encode("latin-1"),
        ":2: invalid UTF-8 at byte",
    ),
    (
        "metadata not object",
        "g.jsonl",
        b'{"id": "a", "input": "x", "target": "t", "metadata": [1]}\n',
        "metadata must be an object, got list",
    ),
    (
        "metadata clash",
        "g.jsonl",
        b'{"id": "a", "input": "x", "target": "t", "lang": "en", "metadata": {"lang": "fr"}}\n',
        "field 'lang': appears both at top level",
    ),
    ("empty file", "g.jsonl", b"", "file is empty"),
    ("only blank lines", "g.jsonl", b"\n\n  \n", "no samples found"),
    ("unsupported extension", "g.txt", b"hello", "unsupported extension '.txt'"),
    (
        "csv ragged row",
        "g.csv",
        b"id,input,target\n1,a,b\n2,a,b,c\n",
        "g.csv:3",
    ),
    (
        "csv duplicate header",
        "g.csv",
        b"id,input,input,target\n1,a,b,c\n",
        "header has empty or repeated column names",
    ),
    ("csv bad utf-8", "g.csv", b"id,input,target\n1,caf\xe9,b\n", "g.csv:2: invalid UTF-8"),
    ("csv empty id", "g.csv", b"id,input,target\n,a,b\n", "field 'id': id is empty"),
    ("parquet garbage", "g.parquet", b"PAR1 not really parquet", "not a readable Parquet file"),
]


@pytest.mark.parametrize(
    ("filename", "content", "expected"),
    [m[1:] for m in MALFORMED],
    ids=[m[0] for m in MALFORMED],
)
def test_malformed_gold_sets_are_named(
    tmp_path: Path, filename: str, content: bytes, expected: str
) -> None:
    path = tmp_path / filename
    path.write_bytes(content)
    with pytest.raises(DataError) as info:
        load_samples(path)
    assert len(info.value.problems) == 1, info.value.problems
    assert expected in str(info.value.problems[0])
    assert filename in str(info.value)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="file not found"):
        load_samples(tmp_path / "gold.jsonl")


def test_all_problems_listed_with_a_cap(tmp_path: Path) -> None:
    path = tmp_path / "g.jsonl"
    path.write_text("".join('{"id": "a", "input": ""}\n' for _ in range(40)))
    with pytest.raises(DataError) as info:
        load_samples(path, max_problems=50)
    # two problems per line (empty input, missing target): 80 found, 50 shown
    assert len(info.value.problems) == 50
    assert info.value.more == 30
    assert "80 problem(s) in the data" in str(info.value)
    assert "... and 30 more" in str(info.value)


def test_parquet_missing_column_is_named(tmp_path: Path) -> None:
    path = tmp_path / "g.parquet"
    pq.write_table(pa.table({"id": ["a"], "input": ["x"]}), path)
    with pytest.raises(DataError, match=r"g.parquet:row 1: field 'target': missing target"):
        load_samples(path)
