"""`unimed audit sample BUILD --n 200 --seed S`: the items the experts rate (spec 3.3).

Stratified by modality in proportion to each modality's share of the kept samples (largest remainder),
then swapped so that every task family in the build appears at least once: a missing family takes the
place of a sampled item of the same modality whose family is over-represented, so the modality quotas
hold. Rows are sorted by id before drawing, so the same build and seed give the same sample on any machine.
Stored as BUILD/audit/sample.parquet (one row per item, `item` 0..n-1 is the order raters see).
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from manifests import storage
from manifests.query import open_build
from pipeline.audit import AuditError, audit_dir

COLUMNS = ("id", "source", "modality", "task_family", "main_task_type", "sub_task_type", "shard", "key", "sample")


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


def draw(rows: list[dict], n: int, seed: int) -> list[dict]:
    rows = sorted(rows, key=lambda r: r["id"])
    rng = np.random.default_rng(seed)
    by_modality: dict[str, list[dict]] = {}
    for row in rows:
        by_modality.setdefault(row["modality"] or "unknown", []).append(row)
    n = min(n, len(rows))
    want = quotas({m: len(v) for m, v in by_modality.items()}, n)
    chosen: dict[str, list[dict]] = {}
    for modality in sorted(by_modality):
        pool = by_modality[modality]
        picks = rng.choice(len(pool), size=want[modality], replace=False) if want[modality] else []
        chosen[modality] = [pool[i] for i in sorted(int(i) for i in picks)]
    families = sorted({r["task_family"] for r in rows})
    for family in families:
        flat = [r for v in chosen.values() for r in v]
        if any(r["task_family"] == family for r in flat):
            continue
        family_counts = {f: sum(r["task_family"] == f for r in flat) for f in families}
        candidates = [r for r in rows if r["task_family"] == family]
        # prefer a modality that has an item of an over-represented family to give up
        rng.shuffle(candidates)
        for newcomer in candidates:
            modality = newcomer["modality"] or "unknown"
            givers = [i for i, r in enumerate(chosen.get(modality, [])) if family_counts[r["task_family"]] > 1]
            if givers:
                chosen[modality][givers[int(rng.integers(len(givers)))]] = newcomer
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
                         "(the old answers stay in answers.jsonl but refer to the old items)")
    if n < 1:
        raise AuditError(f"--n must be at least 1, got {n}")
    con = open_build(build_dir)
    cursor = con.execute(f"SELECT {', '.join(COLUMNS)} FROM kept WHERE shard IS NOT NULL")
    names = [d[0] for d in cursor.description]
    rows = [dict(zip(names, values)) for values in cursor.fetchall()]
    if not rows:
        raise AuditError(f"{build_dir} has no kept samples in shards; nothing to audit")
    items = draw(rows, n, seed)
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
