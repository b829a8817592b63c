"""The global near-duplicate step of finalisation: decontamination against benchmarks, then clustering.

Order: benchmark matches are found among the rows still kept (after leakage and exact duplicates), the
matching training rows are rejected `benchmark_overlap`, and the contamination report is written to
`<build>/contamination.parquet` (the `contamination` view of `unimed query`); then the remaining kept rows
are clustered and all but one per cluster rejected `near_duplicate` (filters/near_duplicates.py).
Everything here reads score columns and `.state/benchmarks.parquet`; nothing is hashed again.
"""

from __future__ import annotations

import io
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq

from filters.decontamination import contamination_report, match_benchmarks, reject_benchmark_overlap
from filters.near_duplicates import NearDuplicateRules, reject_near_duplicates
from manifests import storage
from pipeline.config import Recipe
from pipeline.engine.benchmarks import load_benchmarks

REPORT_FILE = "contamination.parquet"


def rules_of(recipe: Recipe) -> NearDuplicateRules:
    settings = recipe.near_duplicates
    priority = tuple(settings.source_priority) or tuple(entry.name for entry in recipe.sources)
    return NearDuplicateRules(settings.phash_max_distance, settings.text_jaccard, settings.rule, settings.num_perm,
                              settings.lsh_tables, settings.lsh_recall, priority,
                              settings.slices == "hash")


def decontaminate(con: duckdb.DuckDBPyConnection, recipe: Recipe, bench: pa.Table, table: str = "chosen") -> pa.Table:
    """Match, reject `benchmark_overlap`, and return the report (per benchmark and source)."""
    settings = recipe.near_duplicates
    match_benchmarks(con, bench, tuple(settings.report_distances), settings.text_jaccard, settings.num_perm,
                     settings.lsh_tables, settings.lsh_recall, table,
                     settings.slices == "hash")
    reject_benchmark_overlap(con, settings.benchmark_phash_max_distance, table)
    return contamination_report(con, bench, table)


def write_report(report: pa.Table, build_dir: Path | str) -> str:
    fs, root = storage.filesystem(build_dir)
    path = storage.join(root, REPORT_FILE)
    buffer = io.BytesIO()
    pq.write_table(report, buffer)
    storage.write_bytes(fs, path, buffer.getvalue())
    return storage.location(fs, path)


def apply_near_duplicate_rules(con: duckdb.DuckDBPyConnection, recipe: Recipe, build_dir: Path | str) -> dict:
    """Both rules over `chosen`; returns counts and the report rows for the build's summary."""
    settings = recipe.near_duplicates
    summary: dict = {"benchmark_overlap": 0, "near_duplicate": 0, "report": []}
    bench = load_benchmarks(build_dir) if settings.decontaminate else None
    fs, root = storage.filesystem(build_dir)
    if bench is not None:
        report = decontaminate(con, recipe, bench)
        write_report(report, build_dir)
        summary["report"] = report.to_pylist()
        summary["benchmarks_missing"] = (bench.schema.metadata or {}).get(b"unimed5m.missing", b"").decode()
    else:
        # a report of an earlier decision would not describe this one
        storage.remove(fs, storage.join(root, REPORT_FILE))
    summary["benchmark_overlap"] = con.execute(
        "SELECT count(*) FROM chosen WHERE reason = 'benchmark_overlap'").fetchall()[0][0]
    summary["near_duplicate"] = reject_near_duplicates(con, rules_of(recipe))
    return summary
