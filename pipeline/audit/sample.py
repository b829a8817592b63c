"""`unimed audit sample BUILD --n 200 --seed S`: the items the experts rate (spec 3.3).

Stratified by modality in proportion to each modality's share of the kept samples (largest remainder),
then swapped so that every task family in the build appears at least once: a missing family takes the
place of a sampled item of the same modality whose family is over-represented, so the modality quotas
hold. Rows are ranked by id before drawing, so the same build and seed give the same sample on any machine.
Stored as BUILD/audit/sample.parquet (one row per item, `item` 0..n-1 is the order raters see).

Drawn in DuckDB, memory-limited: Python gets the counts per modality and family, draws positions (the
numpy calls of an in-memory draw over the id-sorted rows, so the sample is the same), and fetches the n
chosen rows by their rank within their modality. Only a family missing from the draw costs more: the
shuffled order of its candidates, 8 bytes each, whose rows are fetched a few at a time.
"""

from __future__ import annotations

from pathlib import Path

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from manifests.query import QUERY_MEMORY_LIMIT, open_build
from pipeline.audit import AuditError, audit_dir

COLUMNS = ("id", "source", "modality", "task_family", "main_task_type", "sub_task_type", "shard", "key", "sample")
POOL = "coalesce(modality, 'unknown')"  # the stratum of a row
CANDIDATES_PER_QUERY = 256  # rows of a missing family fetched at a time, in shuffled order


def sample_path(build_dir: Path) -> Path:
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


def _fetch(con: duckdb.DuckDBPyConnection, ranked_by: str, where: str, wanted: list[tuple[str, int]]) -> list[dict]:
    """The kept rows at (group, position) in `wanted`, positions counted from 0 in id order within
    `ranked_by`'s groups; in the order of `wanted`."""
    if not wanted:
        return []
    groups, positions = zip(*wanted)
    con.register("wanted", pa.table({"grp": pa.array(groups, pa.string()), "pos": pa.array(positions, pa.int64()),
                                     "ord": pa.array(range(len(wanted)), pa.int64())}))
    cursor = con.execute(
        f"""WITH ranked AS (SELECT id, {ranked_by} AS grp, row_number() OVER (PARTITION BY {ranked_by} ORDER BY id) - 1
                            AS pos FROM kept WHERE shard IS NOT NULL {where})
            SELECT {', '.join(f'k.{c}' for c in COLUMNS)} FROM ranked r JOIN wanted w USING (grp, pos)
            JOIN kept k USING (id) ORDER BY w.ord""")
    rows = [dict(zip(COLUMNS, values)) for values in cursor.fetchall()]
    con.unregister("wanted")
    return rows


def draw(con: duckdb.DuckDBPyConnection, n: int, seed: int) -> list[dict]:
    """n items from the kept rows with a shard, as described above; [] when there are none."""
    pools = dict(con.execute(f"SELECT {POOL}, count(*) FROM kept WHERE shard IS NOT NULL GROUP BY ALL").fetchall())
    if not pools:
        return []
    rng = np.random.default_rng(seed)
    n = min(n, sum(pools.values()))
    want = quotas(pools, n)
    wanted = []
    for modality in sorted(pools):
        if want[modality]:
            picks = rng.choice(pools[modality], size=want[modality], replace=False)
            wanted += [(modality, int(i)) for i in sorted(int(i) for i in picks)]
    chosen: dict[str, list[dict]] = {modality: [] for modality in sorted(pools)}
    for row in _fetch(con, POOL, "", wanted):
        chosen[row["modality"] or "unknown"].append(row)
    sizes = dict(con.execute("SELECT task_family, count(*) FROM kept WHERE shard IS NOT NULL GROUP BY ALL").fetchall())
    families = sorted(sizes)
    for family in families:
        flat = [r for v in chosen.values() for r in v]
        if any(r["task_family"] == family for r in flat):
            continue
        family_counts = {f: sum(r["task_family"] == f for r in flat) for f in families}
        order = np.arange(sizes[family])
        rng.shuffle(order)  # the candidates (this family's rows in id order) in a seeded random order
        placed = False
        for start in range(0, len(order), CANDIDATES_PER_QUERY):
            batch = [(family, int(i)) for i in order[start:start + CANDIDATES_PER_QUERY]]
            for newcomer in _fetch(con, "task_family", "AND task_family IS NOT NULL", batch):
                modality = newcomer["modality"] or "unknown"
                givers = [i for i, r in enumerate(chosen.get(modality, [])) if family_counts[r["task_family"]] > 1]
                if givers:  # it takes the place of an item of an over-represented family, in its own modality
                    chosen[modality][givers[int(rng.integers(len(givers)))]] = newcomer
                    placed = True
                    break
            if placed:
                break
    items = sorted((r for v in chosen.values() for r in v), key=lambda r: r["id"])
    order = rng.permutation(len(items))  # raters see a mixed order, not modality blocks
    return [items[i] for i in order]


def write_sample(build_dir: Path, n: int = 200, seed: int = 0, force: bool = False) -> Path:
    from pipeline.audit.store import AnswerStore

    build_dir = Path(build_dir)
    path = sample_path(build_dir)
    if path.exists() and not force and AnswerStore(build_dir).count():
        raise AuditError(f"{path} already has answers recorded against it; pass --force to draw a new sample "
                         "(the old answers stay in answers.jsonl but refer to the old items)")
    if n < 1:
        raise AuditError(f"--n must be at least 1, got {n}")
    con = open_build(build_dir, memory_limit=QUERY_MEMORY_LIMIT)
    items = draw(con, n, seed)
    con.close()
    if not items:
        raise AuditError(f"{build_dir} has no kept samples in shards; nothing to audit")
    table = pa.Table.from_pylist([{"item": i, **row, "seed": seed} for i, row in enumerate(items)])
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".parquet.tmp")
    pq.write_table(table, tmp)
    tmp.replace(path)
    return path


def read_sample(build_dir: Path) -> list[dict]:
    path = sample_path(Path(build_dir))
    if not path.exists():
        raise AuditError(f"no audit sample in {Path(build_dir)}; run `unimed audit sample {build_dir} --n 200 --seed 0`")
    return pq.read_table(path).to_pylist()
