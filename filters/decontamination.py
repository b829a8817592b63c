"""Benchmark decontamination: training rows that match an evaluation item are rejected, and a report.

Inputs, both with the near-duplicate score columns (filters/near_duplicates.py):
- the build's rows (`chosen` at finalisation; the manifest for `unimed contamination`): the training side is
  every row still kept when the rule runs (after the coarse filters, leakage and exact duplicates);
- `benchmark_items` (benchmark, item_id, split, pixel_hash, phash, text_minhash), read from the
  evaluation splits by the same adapters (pipeline/engine/benchmarks.py).

Matches (candidates by LSH, never all pairs; each verified exactly):
- exact: the same decoded pixels (`pixel_hash`);
- image: pHash Hamming distance within each report distance (default 4, 8, 16);
- text: MinHash Jaccard estimate of the sample texts >= `text_jaccard`.
Rejection (`benchmark_overlap`, detail names the benchmark, its item and the distance): an exact or
pHash match within `phash_max_distance`; a text match only where the training row or the benchmark item
has no image (templated VQA questions such as "What modality is used?" recur across every split, so a
question alone does not make an image sample a copy). The report counts every kind of match.
The embedding columns of the report are absent: no image embedding is stored by the alignment stage.

The benchmark side is indexed once (pixel hashes, MinHash LSH); the training rows stream past it in Arrow
batches, so memory holds the benchmark, one batch and the matches, never every training row.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa

import duckdb

from filters.near_duplicates import MINHASH_SCHEME, MINHASH_SEED, hamming_pairs, jaccard, signature

REPORT_COLUMNS = ("benchmark", "source", "benchmark_items", "exact", "phash_le_4", "phash_le_8", "phash_le_16",
                  "text_jaccard_ge_0_5", "rejected_rows")


TRAIN_BATCH_ROWS = 50_000  # training rows matched at a time


class _BenchTexts:
    """MinHash LSH over the benchmark's texts, built once; training texts query it batch by batch."""

    def __init__(self, bench: list[bytes | None], threshold: float, num_perm: int):
        from datasketch import MinHashLSH

        self.bench, self.threshold, self.num_perm = bench, threshold, num_perm
        self.lsh = MinHashLSH(threshold=threshold, num_perm=num_perm)
        for index, blob in enumerate(bench):
            if self._usable(blob):
                self.lsh.insert(index, self._minhash(blob), check_duplication=False)

    def _usable(self, blob: bytes | None) -> bool:
        return blob is not None and len(blob) == self.num_perm * 4

    @staticmethod
    def _minhash(blob: bytes):
        from datasketch import LeanMinHash

        return LeanMinHash(seed=MINHASH_SEED, hashvalues=signature(blob), scheme=MINHASH_SCHEME)

    def pairs(self, train: list[bytes | None]) -> list[tuple[int, int, float]]:
        """(bench index, train index, estimate) with estimate >= threshold."""
        found = []
        for index, blob in enumerate(train):
            if not self._usable(blob):
                continue
            for other in self.lsh.query(self._minhash(blob)):
                estimate = jaccard(self.bench[other], blob)
                if estimate >= self.threshold:
                    found.append((other, index, estimate))
        return found


def match_benchmarks(con: duckdb.DuckDBPyConnection, bench: pa.Table, distances: tuple[int, ...] = (4, 8, 16),
                     text_jaccard: float = 0.5, num_perm: int = 64, lsh_tables: int = 48,
                     lsh_recall: float = 0.98, table: str = "chosen", hash_slices: bool = False) -> None:
    """Create table `benchmark_matches` (benchmark, item_id, train_id, source, kind, distance, similarity,
    bench_has_image, train_has_image) between `bench` and the kept rows of `table`."""
    slice_cut = "" if hash_slices else "slice_index IS NOT NULL"
    hashed = f"CASE WHEN {slice_cut or 'false'} THEN NULL ELSE phash END AS phash, " \
             f"CASE WHEN {slice_cut or 'false'} THEN NULL ELSE text_minhash END AS text_minhash"
    items = bench.to_pydict()
    if not hash_slices:  # slices of volumes match by exact pixels only (see NearDuplicateSettings.slices)
        for index, is_slice in enumerate(items.get("is_slice") or []):
            if is_slice:
                items["phash"][index] = items["text_minhash"][index] = None
    rows: dict[str, list] = {name: [] for name in ("benchmark", "item_id", "train_id", "source", "kind", "distance",
                                                   "similarity", "bench_has_image", "train_has_image")}
    by_pixels: dict[str, list[int]] = {}
    for b, value in enumerate(items["pixel_hash"]):
        if value:
            by_pixels.setdefault(value, []).append(b)
    bench_img = [b for b, h in enumerate(items["phash"]) if h is not None]
    bench_phash = np.array([items["phash"][b] for b in bench_img], dtype=np.int64)
    texts = _BenchTexts(items["text_minhash"], text_jaccard, num_perm)
    reader = con.sql(f"SELECT id, source, pixel_hash, {hashed} FROM {table} WHERE status = 'kept'"
                     ).to_arrow_reader(TRAIN_BATCH_ROWS)  # no sort: the matches are a set
    for batch in reader:
        train = batch.to_pydict()

        def add(b: int, t: int, kind: str, distance: int | None, similarity: float | None) -> None:
            rows["benchmark"].append(items["benchmark"][b])
            rows["item_id"].append(items["item_id"][b])
            rows["train_id"].append(train["id"][t])
            rows["source"].append(train["source"][t])
            rows["kind"].append(kind)
            rows["distance"].append(distance)
            rows["similarity"].append(similarity)
            rows["bench_has_image"].append(items["phash"][b] is not None)
            rows["train_has_image"].append(train["phash"][t] is not None)

        for t, value in enumerate(train["pixel_hash"]):
            for b in by_pixels.get(value or "", ()):
                add(b, t, "exact", 0, None)
        train_img = [t for t, h in enumerate(train["phash"]) if h is not None]
        if bench_img and train_img and distances:
            pairs = hamming_pairs(bench_phash, np.array([train["phash"][t] for t in train_img], dtype=np.int64),
                                  max(distances), lsh_tables, lsh_recall)
            for i, j, distance in zip(*(pairs.column(c).to_numpy() for c in ("i", "j", "distance"))):
                add(bench_img[int(i)], train_img[int(j)], "phash", int(distance), None)
        for b, t, similarity in texts.pairs(train["text_minhash"]):
            add(b, t, "text", None, similarity)
    schema = pa.schema([("benchmark", pa.string()), ("item_id", pa.string()), ("train_id", pa.string()),
                        ("source", pa.string()), ("kind", pa.string()), ("distance", pa.int32()),
                        ("similarity", pa.float32()), ("bench_has_image", pa.bool_()),
                        ("train_has_image", pa.bool_())])
    con.register("benchmark_matches_in", pa.table(rows, schema=schema))
    con.execute("CREATE OR REPLACE TABLE benchmark_matches AS SELECT * FROM benchmark_matches_in")
    con.unregister("benchmark_matches_in")


def reject_benchmark_overlap(con: duckdb.DuckDBPyConnection, phash_max_distance: int = 8,
                             table: str = "chosen") -> int:
    """Reject kept training rows matched by `benchmark_matches` under the rule above; returns the count."""
    before = con.execute(f"SELECT count(*) FROM {table} WHERE reason = 'benchmark_overlap'").fetchall()[0][0]
    con.execute(
        f"""
        UPDATE {table} SET status = 'rejected', reason = 'benchmark_overlap', detail = m.detail
        FROM (
            SELECT train_id, arg_min(
                'matches benchmark ' || benchmark || ' item ' || item_id || ' (' ||
                CASE kind WHEN 'exact' THEN 'same decoded pixels'
                          WHEN 'phash' THEN 'pHash distance ' || distance
                          ELSE 'text Jaccard ' || round(similarity, 2) END || ')',
                (CASE kind WHEN 'exact' THEN 0 WHEN 'phash' THEN 1 ELSE 2 END, coalesce(distance, 0),
                 -coalesce(similarity, 0), benchmark, item_id)) AS detail
            FROM benchmark_matches
            WHERE kind = 'exact' OR (kind = 'phash' AND distance <= {int(phash_max_distance)})
               OR (kind = 'text' AND NOT (bench_has_image AND train_has_image))
            GROUP BY train_id
        ) m
        WHERE {table}.id = m.train_id AND {table}.status = 'kept'
        """
    )
    after = con.execute(f"SELECT count(*) FROM {table} WHERE reason = 'benchmark_overlap'").fetchall()[0][0]
    return after - before


def contamination_report(con: duckdb.DuckDBPyConnection, bench: pa.Table, table: str = "chosen") -> pa.Table:
    """Per benchmark and training source: how many benchmark items have a training neighbour, by kind.

    A benchmark with no neighbour at all gets one row with source '-', so every benchmark is listed.
    """
    con.register("benchmark_items_in", bench.select(["benchmark", "item_id"]))
    report = con.sql(
        f"""
        WITH per AS (
            SELECT benchmark, source,
                   count(DISTINCT item_id) FILTER (kind = 'exact') AS exact,
                   count(DISTINCT item_id) FILTER (kind = 'exact' OR (kind = 'phash' AND distance <= 4)) AS phash_le_4,
                   count(DISTINCT item_id) FILTER (kind = 'exact' OR (kind = 'phash' AND distance <= 8)) AS phash_le_8,
                   count(DISTINCT item_id) FILTER (kind = 'exact' OR (kind = 'phash' AND distance <= 16)) AS phash_le_16,
                   count(DISTINCT item_id) FILTER (kind = 'text') AS text_jaccard_ge_0_5
            FROM benchmark_matches GROUP BY ALL
        ), totals AS (SELECT benchmark, count(DISTINCT item_id) AS benchmark_items FROM benchmark_items_in GROUP BY ALL),
        rejected AS (
            SELECT split_part(split_part(detail, 'matches benchmark ', 2), ' item ', 1) AS benchmark, source,
                   count(*) AS rejected_rows
            FROM {table} WHERE reason = 'benchmark_overlap' GROUP BY ALL
        )
        SELECT t.benchmark, coalesce(p.source, '-') AS source, t.benchmark_items,
               coalesce(p.exact, 0) AS exact, coalesce(p.phash_le_4, 0) AS phash_le_4,
               coalesce(p.phash_le_8, 0) AS phash_le_8, coalesce(p.phash_le_16, 0) AS phash_le_16,
               coalesce(p.text_jaccard_ge_0_5, 0) AS text_jaccard_ge_0_5, coalesce(r.rejected_rows, 0) AS rejected_rows
        FROM totals t LEFT JOIN per p ON p.benchmark = t.benchmark
        LEFT JOIN rejected r ON r.benchmark = t.benchmark AND r.source = p.source
        ORDER BY t.benchmark, source
        """
    ).to_arrow_table()
    con.unregister("benchmark_items_in")
    return report
