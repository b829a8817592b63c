"""`unimed contamination BUILD --against ...`: the benchmark contamination report over an existing build.

Reads the build's manifest (its `phash` / `text_minhash` columns: the build must have had
`near_duplicates.enabled`), hashes the named benchmarks from --sources-root, and reports per benchmark
and source as the build's own report does. Read-only: the kept rows are copied into a scratch table,
so `rejected_rows` says what decontamination would reject, and the build is not changed.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pyarrow.parquet as pq

from filters.settings import BenchmarkEntry
from manifests.query import ManifestNotFound, open_build
from pipeline.engine.benchmarks import read_benchmarks
from pipeline.engine.near_duplicates import decontaminate
from pipeline.rescore.rethreshold import load_build_recipe


class ContaminationError(RuntimeError):
    """The build cannot be checked as asked; the message says what to do."""


def contamination_of_build(build_dir: Path | str, against: list[str] | None, sources_root: Path | str | None,
                           out: Path | None = None) -> dict:
    recipe, _ = load_build_recipe(build_dir)
    try:
        con = open_build(build_dir)
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
    con.execute("CREATE TABLE scratch AS SELECT * FROM kept")
    report = decontaminate(con, recipe, bench, table="scratch")
    if out is not None:
        pq.write_table(report, out)
    return {"report": report.to_pylist(), "benchmarks_missing": repr(sorted(missing.items())) if missing else ""}
