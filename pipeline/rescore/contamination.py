"""`unimed contamination BUILD --against ...`: the benchmark contamination report over an existing build.

Reads the build's manifest (its `phash` / `text_minhash` columns: the build must have had
`near_duplicates.enabled`), hashes the named benchmarks from --sources-root, and reports per benchmark
and source as the build's own report does. Read-only: the kept rows stream once past the benchmark's
index (filters/decontamination.py), and only the rows that matched are copied into a scratch table, where
the rule marks what decontamination would reject (`rejected_rows`); the build is not changed. DuckDB runs
memory-limited, so nothing grows with the build but the matches.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pyarrow.parquet as pq

from filters.decontamination import contamination_report, match_benchmarks, reject_benchmark_overlap
from filters.settings import BenchmarkEntry
from manifests.query import QUERY_MEMORY_LIMIT, ManifestNotFound, open_build
from pipeline.engine.benchmarks import read_benchmarks
from pipeline.rescore.rethreshold import load_build_recipe


class ContaminationError(RuntimeError):
    """The build cannot be checked as asked; the message says what to do."""


def contamination_of_build(build_dir: Path | str, against: list[str] | None, sources_root: Path | str | None,
                           out: Path | None = None) -> dict:
    recipe, _ = load_build_recipe(build_dir)
    try:
        con = open_build(build_dir, memory_limit=QUERY_MEMORY_LIMIT)
    except ManifestNotFound as err:
        raise ContaminationError(str(err)) from None
    hashed = con.execute("SELECT count(*) FROM kept WHERE phash IS NOT NULL OR text_minhash IS NOT NULL").fetchall()[0][0]
    if not hashed:
        raise ContaminationError(f"{build_dir} has no near-duplicate hashes; rebuild it with "
                                 "`near_duplicates: {enabled: true}` in the recipe")
    settings = recipe.near_duplicates
    if against:
        listed = {entry.name: entry for entry in settings.benchmarks}
        entries = [listed.get(name) or BenchmarkEntry(name) for name in against]
        settings = dataclasses.replace(settings, benchmarks=entries)
        recipe = dataclasses.replace(recipe, near_duplicates=settings)
    bench, missing = read_benchmarks(settings, sources_root)
    if bench.num_rows == 0:
        raise ContaminationError(f"no benchmark items read: {missing}")
    match_benchmarks(con, bench, tuple(settings.report_distances), settings.text_jaccard, settings.num_perm,
                     settings.lsh_tables, settings.lsh_recall, "kept", settings.slices == "hash")
    con.execute("CREATE TABLE scratch AS SELECT * FROM kept SEMI JOIN benchmark_matches m ON kept.id = m.train_id")
    reject_benchmark_overlap(con, settings.benchmark_phash_max_distance, "scratch")
    report = contamination_report(con, bench, "scratch")
    if out is not None:
        pq.write_table(report, out)
    return {"report": report.to_pylist(), "benchmarks_missing": repr(sorted(missing.items())) if missing else ""}
