"""Reading A/B events into DuckDB: the event store, or exported / warehouse tables.

Two tables come out, whatever the source:

- ``r`` — one row per request: ``id, unit, arm, stage, ts, err, lat, cost, tok``;
- ``o`` — one row per outcome: ``ts, unit, arm, stage, name, value``.

A request table needs ``unit`` and ``arm`` (``control`` | ``treatment``); ``ts`` (Unix
seconds or a timestamp), ``stage`` (the treatment share in force), ``status`` / ``error``,
``latency_ms``, ``cost``, ``completion_tokens`` and ``id`` are used when present. Columns
named like one of the experiment's outcomes (``resolved``) are outcomes of that request (a
warehouse log that joined them in). An outcome table has ``name`` and ``value`` and either
``arm`` and ``stage`` or a ``request_id`` / ``unit`` to find them by (the unit's last request
at or before the outcome's time). A path is read by DuckDB: ``.parquet``, ``.csv``,
``.jsonl`` / ``.json``, or ``warehouse.duckdb:table``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from heldout.ab._store import OUTCOME_COLUMNS, REQUEST_COLUMNS, EventStore
from heldout.errors import DataError, MissingDependencyError, Problem

__all__ = ["connect", "load_files", "load_store"]


def connect() -> Any:
    try:
        import duckdb
    except ImportError:
        raise MissingDependencyError("duckdb", "ab") from None
    return duckdb.connect()


def _columns(con: Any, name: str) -> dict[str, str]:
    return {r[0]: str(r[1]).upper() for r in con.execute(f"DESCRIBE {name}").fetchall()}


def _relation(con: Any, path: str, alias: str) -> None:
    """Register ``path`` as view ``alias``."""
    if ".duckdb:" in path:
        db, table = path.rsplit(":", 1)
        if not Path(db).is_file():
            raise DataError([Problem(db, "no such DuckDB file")])
        con.execute(f"ATTACH '{db.replace(chr(39), chr(39) * 2)}' AS src_{alias} (READ_ONLY)")
        source = f'src_{alias}."{table}"'
    else:
        p = Path(path)
        if not p.is_file():
            raise DataError([Problem(path, "file not found")])
        suffix = p.suffix.lower()
        reader = {
            ".parquet": "read_parquet",
            ".csv": "read_csv",
            ".tsv": "read_csv",
            ".jsonl": "read_json",
            ".ndjson": "read_json",
            ".json": "read_json",
        }.get(suffix)
        if reader is None:
            raise DataError(
                [
                    Problem(
                        path, "unknown file type; use .parquet, .csv, .jsonl or file.duckdb:table"
                    )
                ]
            )
        quoted = str(p).replace("'", "''")
        source = f"{reader}('{quoted}')"
    try:
        con.execute(f"CREATE TEMP VIEW {alias} AS SELECT * FROM {source}")
        con.execute(f"SELECT * FROM {alias} LIMIT 1").fetchall()
    except Exception as exc:  # duckdb raises its own error tree
        raise DataError([Problem(path, f"DuckDB cannot read it: {exc}")]) from None


def _num(cols: dict[str, str], name: str, default: str = "NULL") -> str:
    return f'TRY_CAST("{name}" AS DOUBLE)' if name in cols else default


def _ts(cols: dict[str, str]) -> str:
    if "ts" not in cols:
        return "0.0"
    if "TIMESTAMP" in cols["ts"] or "DATE" in cols["ts"]:
        return 'epoch("ts")'
    return 'TRY_CAST("ts" AS DOUBLE)'


def _requests_view(
    con: Any, src: str, source: str, outcomes: list[str], share: float, *, scan: bool
) -> None:
    """``r``: the requests in the analysis' columns. ``scan``: the source is columnar (Parquet,
    a DuckDB table, Arrow) and cheap to read again, so ``r`` is a view over it (each query
    reads only its columns); a text file (CSV, JSON lines) is parsed once into a table."""
    cols = _columns(con, src)
    missing = [c for c in ("unit", "arm") if c not in cols]
    if missing:
        raise DataError(
            [
                Problem(
                    source,
                    f"missing column(s) {', '.join(missing)} (columns: "
                    f"{', '.join(cols) or 'none'}); a request row needs unit and arm",
                )
            ]
        )
    if "status" in cols:
        code = 'TRY_CAST("status" AS INTEGER)'
        err = f"COALESCE({code} >= 500 OR {code} = 429, TRUE)"
    elif "error" in cols:
        err = '("error" IS NOT NULL AND CAST("error" AS VARCHAR) <> \'\')'
    else:
        err = "FALSE"
    rid = 'CAST("id" AS VARCHAR)' if "id" in cols else "NULL"
    wide = ", ".join(f'{_num(cols, n)} AS "o:{n}"' for n in outcomes if n in cols)
    kind = "VIEW" if scan else "TABLE"
    con.execute(
        f"CREATE TEMP {kind} r AS SELECT {rid} AS id, CAST(unit AS VARCHAR) AS unit, "
        f"CAST(arm AS VARCHAR) AS arm, {_num(cols, 'stage', str(share))} AS stage, "
        f"{_ts(cols)} AS ts, {err} AS err, {_num(cols, 'latency_ms')} AS lat, "
        f"{_num(cols, 'cost')} AS cost, {_num(cols, 'completion_tokens')} AS tok"
        f"{', ' + wide if wide else ''} FROM {src} WHERE unit IS NOT NULL"
    )
    bad = con.execute(
        "SELECT arm, count(*) FROM r WHERE arm NOT IN ('control', 'treatment') OR arm IS NULL "
        "GROUP BY arm LIMIT 5"
    ).fetchall()
    if bad:
        shown = ", ".join(f"{a!r} ({n} rows)" for a, n in bad)
        raise DataError(
            [
                Problem(
                    f"{source}: column 'arm'",
                    f"values {shown}: an arm is 'control' or "
                    "'treatment'; rename them in the export",
                )
            ]
        )
    parts = [
        f"SELECT ts, id AS request_id, unit, arm, stage, '{n}' AS name, \"o:{n}\" AS value "
        f'FROM r WHERE "o:{n}" IS NOT NULL'
        for n in outcomes
        if n in cols
    ]
    con.execute(
        "CREATE TEMP TABLE o (ts DOUBLE, request_id VARCHAR, unit VARCHAR, arm VARCHAR, "
        "stage DOUBLE, name VARCHAR, value DOUBLE)"
    )
    for part in parts:
        con.execute(f"INSERT INTO o {part}")


def _outcomes_view(con: Any, src: str, source: str) -> None:
    cols = _columns(con, src)
    missing = [c for c in ("name", "value") if c not in cols]
    if missing or not ({"arm", "stage"} <= set(cols) or "unit" in cols or "request_id" in cols):
        raise DataError(
            [
                Problem(
                    source,
                    "an outcome row needs name, value and either arm + stage, "
                    f"request_id or unit (columns: {', '.join(cols)})",
                )
            ]
        )
    ts = _ts(cols)
    if {"arm", "stage", "unit"} <= set(cols):
        con.execute(
            f"INSERT INTO o SELECT {ts}, NULL, CAST(unit AS VARCHAR), CAST(arm AS VARCHAR), "
            f"TRY_CAST(stage AS DOUBLE), CAST(name AS VARCHAR), TRY_CAST(value AS DOUBLE) "
            f"FROM {src}"
        )
    elif "request_id" in cols:
        con.execute(
            f"INSERT INTO o SELECT {ts}, x.request_id, r.unit, r.arm, r.stage, "
            "CAST(x.name AS VARCHAR), TRY_CAST(x.value AS DOUBLE) FROM "
            f"(SELECT *, CAST(request_id AS VARCHAR) AS rid FROM {src}) x JOIN r ON r.id = x.rid"
        )
    else:
        con.execute(
            f"INSERT INTO o SELECT x.t, NULL, x.u, r.arm, r.stage, x.n, x.v FROM "
            f"(SELECT {ts} AS t, CAST(unit AS VARCHAR) AS u, CAST(name AS VARCHAR) AS n, "
            f"TRY_CAST(value AS DOUBLE) AS v FROM {src}) x "
            "ASOF JOIN (SELECT unit, ts, arm, stage FROM r) r ON x.u = r.unit AND x.t >= r.ts"
        )


def load_files(requests: str, outcomes: str | None, outcome_names: list[str], share: float) -> Any:
    """A DuckDB connection holding ``r`` and ``o`` from exported files."""
    con = connect()
    _relation(con, requests, "src_r")
    scan = ".duckdb:" in requests or Path(requests).suffix.lower() == ".parquet"
    _requests_view(con, "src_r", requests, outcome_names, share, scan=scan)
    if outcomes is not None:
        _relation(con, outcomes, "src_o")
        _outcomes_view(con, "src_o", outcomes)
    return con


def load_store(store: EventStore) -> Any:
    """A DuckDB connection holding ``r`` and ``o`` from the event store."""
    import pyarrow as pa

    con = connect()
    req = store.table("requests", REQUEST_COLUMNS[:13])
    types = {
        "ts": pa.float64(),
        "stage": pa.float64(),
        "status": pa.int64(),
        "latency_ms": pa.float64(),
        "prompt_tokens": pa.int64(),
        "completion_tokens": pa.int64(),
        "cost": pa.float64(),
    }
    req_t = pa.table({k: pa.array(v, type=types.get(k, pa.string())) for k, v in req.items()})
    out = store.table("outcomes", OUTCOME_COLUMNS)
    otypes = {"ts": pa.float64(), "stage": pa.float64(), "value": pa.float64()}
    out_t = pa.table({k: pa.array(v, type=otypes.get(k, pa.string())) for k, v in out.items()})
    con.register("src_r", req_t)
    _requests_view(con, "src_r", str(store.path), [], 0.0, scan=True)
    con.register("src_o", out_t)
    con.execute(
        "INSERT INTO o SELECT ts, request_id, unit, arm, stage, name, value FROM src_o "
        "WHERE unit IS NOT NULL"
    )
    return con


def export_store(store: EventStore, folder: Path) -> tuple[int, int]:
    """``requests.parquet`` and ``outcomes.parquet`` from the store (no prompt text)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    folder.mkdir(parents=True, exist_ok=True)
    req = store.table("requests", REQUEST_COLUMNS[:14])
    out = store.table("outcomes", OUTCOME_COLUMNS)
    pq.write_table(pa.table(req), folder / "requests.parquet")
    pq.write_table(pa.table(out), folder / "outcomes.parquet")
    return len(req["id"]), len(out["ts"])
