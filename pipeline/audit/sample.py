"""`unimed audit sample BUILD --n 200 --seed S`: the items the experts rate (spec 3.3).

Stratified by modality in proportion to each modality's share of the kept samples (largest remainder):
within a modality the items are its rows with the lowest md5 of "<seed>:<id>" (a seeded uniform draw
without replacement). Then swapped so that every task family in the build appears at least once: a
missing family's rows are tried in md5 order of "<seed>:swap:<id>", and the first whose modality holds an
item of an over-represented family takes that item's place (one picked by the seeded generator), so the
modality quotas hold. The same build and seed give the same sample on any machine.
Stored as BUILD/audit/sample.parquet (one row per item, `item` 0..n-1 is the order raters see).

Drawn in DuckDB, memory-limited: counts per modality and family, a top-n aggregate per modality (a heap of
n rows, whatever the corpus size), and the chosen rows fetched by id; nothing else reaches Python.
"""

from __future__ import annotations

import io
from pathlib import Path

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from manifests import storage
from manifests.query import QUERY_MEMORY_LIMIT, open_build
from pipeline.audit import AuditError, audit_dir

COLUMNS = ("id", "source", "modality", "task_family", "main_task_type", "sub_task_type", "shard", "key", "sample")
POOL = "coalesce(modality, 'unknown')"  # the stratum of a row
CANDIDATES_PER_QUERY = 64  # rows of a missing family tried at a time


def sample_path(build_dir: Path | str) -> Path | str:
    """BUILD/audit/sample.parquet: a path, or a URL for a build on object storage."""
    if storage.is_url(build_dir):
        return storage.join(str(build_dir), "audit", "sample.parquet")
    return audit_dir(build_dir) / "sample.parquet"


def quotas(counts: dict[str, int], n: int) -> dict[str, int]:
    """Largest-remainder apportionment of n over the modalities, proportional to their counts."""
    total = sum(counts.values())
    exact = {m: n * c / total for m, c in counts.items()}
    out = {m: min(counts[m], int(v)) for m, v in exact.items()}
    order = sorted(counts, key=lambda m: (-(exact[m] - int(exact[m])), m))
    while sum(out.values()) < n:
        progressed = False
        for m in order:
            if sum(out.values()) >= n:
                break
            if out[m] < counts[m]:
                out[m] += 1
                progressed = True
        if not progressed:
            break
    return out


def _rank(seed: int, salt: str = "") -> str:
    """The SQL of a row's place in the seeded order: md5 of "<seed>:<salt><id>"."""
    return f"md5('{int(seed)}:{salt}' || id)"


def _fetch(con: duckdb.DuckDBPyConnection, ids: list[str]) -> list[dict]:
    """The kept rows with these ids, in the order of `ids`."""
    if not ids:
        return []
    cursor = con.execute(f"SELECT {', '.join(COLUMNS)} FROM kept WHERE list_contains(?, id)", [ids])
    rows = {row["id"]: row for row in (dict(zip(COLUMNS, values)) for values in cursor.fetchall())}
    return [rows[i] for i in ids]


def draw(con: duckdb.DuckDBPyConnection, n: int, seed: int) -> list[dict]:
    """n items from the kept rows with a shard, as described above; [] when there are none."""
    pools = dict(con.execute(f"SELECT {POOL}, count(*) FROM kept WHERE shard IS NOT NULL GROUP BY ALL").fetchall())
    if not pools:
        return []
    rng = np.random.default_rng(seed)
    want = quotas(pools, min(n, sum(pools.values())))
    lowest = con.execute(f"SELECT {POOL}, min_by(id, {_rank(seed)}, ?) FROM kept WHERE shard IS NOT NULL "
                         "GROUP BY ALL", [max(want.values())]).fetchall()
    picked = {pool: ids[:want[pool]] for pool, ids in lowest}
    rows = iter(_fetch(con, [i for pool in sorted(picked) for i in picked[pool]]))
    chosen = {pool: [next(rows) for _ in picked[pool]] for pool in sorted(picked)}
    families = sorted(row[0] for row in con.execute(
        "SELECT DISTINCT task_family FROM kept WHERE shard IS NOT NULL").fetchall())
    for family in families:
        flat = [r for v in chosen.values() for r in v]
        if any(r["task_family"] == family for r in flat):
            continue
        family_counts = {f: sum(r["task_family"] == f for r in flat) for f in families}
        tried = 0
        while True:  # this family's rows in seeded order, a few at a time, until one can take a place
            ids = [row[0] for row in con.execute(
                f"SELECT id FROM kept WHERE shard IS NOT NULL AND task_family = ? ORDER BY {_rank(seed, 'swap:')} "
                "LIMIT ? OFFSET ?", [family, CANDIDATES_PER_QUERY, tried]).fetchall()]
            placed = False
            for newcomer in _fetch(con, ids):
                pool = newcomer["modality"] or "unknown"
                givers = [i for i, r in enumerate(chosen.get(pool, [])) if family_counts[r["task_family"]] > 1]
                if givers:
                    chosen[pool][givers[int(rng.integers(len(givers)))]] = newcomer
                    placed = True
                    break
            tried += len(ids)
            if placed or len(ids) < CANDIDATES_PER_QUERY:
                break
    items = sorted((r for v in chosen.values() for r in v), key=lambda r: r["id"])
    order = rng.permutation(len(items))  # raters see a mixed order, not modality blocks
    return [items[i] for i in order]


def write_sample(build_dir: Path, n: int = 200, seed: int = 0, force: bool = False) -> Path:
    from pipeline.audit.store import AnswerStore

    build_dir = storage.as_location(build_dir)
    path = sample_path(build_dir)
    fs, stored = storage.filesystem(path)
    if fs.isfile(stored) and not force and AnswerStore(build_dir).count():
        raise AuditError(f"{path} already has answers recorded against it; pass --force to draw a new sample "
                         "(the old answers stay in audit/answers/ but refer to the old items)")
    if n < 1:
        raise AuditError(f"--n must be at least 1, got {n}")
    con = open_build(build_dir, memory_limit=QUERY_MEMORY_LIMIT)
    items = draw(con, n, seed)
    con.close()
    if not items:
        raise AuditError(f"{build_dir} has no kept samples in shards; nothing to audit")
    table = pa.Table.from_pylist([{"item": i, **row, "seed": seed} for i, row in enumerate(items)])
    buffer = io.BytesIO()
    pq.write_table(table, buffer)
    storage.write_bytes(fs, stored, buffer.getvalue())  # published whole: tmp + rename, or one PUT
    return path


def read_sample(build_dir: Path | str) -> list[dict]:
    fs, path = storage.filesystem(sample_path(storage.as_location(build_dir)))
    if not fs.isfile(path):
        raise AuditError(f"no audit sample in {build_dir}; run `unimed audit sample {build_dir} --n 200 --seed 0`")
    return pq.read_table(io.BytesIO(storage.read_bytes(fs, path))).to_pylist()
