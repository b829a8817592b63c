"""DuckDB over a build's manifest: views `records`, `kept` and `rejected` (and `contamination` when the
build has a benchmark contamination report, `<build>/contamination.parquet`).

The same files read straight from the duckdb Python or CLI client:
    SELECT source, task_family, count(*) FROM 'build/stage1/manifest/*.parquet' WHERE status = 'kept' GROUP BY ALL
"""

from __future__ import annotations

from pathlib import Path

import duckdb


class ManifestNotFound(FileNotFoundError):
    pass


def manifest_glob(build_dir: Path) -> str:
    """The Parquet glob of a build directory (or of a manifest directory given directly)."""
    build_dir = Path(build_dir)
    for folder in (build_dir / "manifest", build_dir):
        if any(folder.glob("*.parquet")):
            return (folder / "*.parquet").as_posix()
    raise ManifestNotFound(f"no manifest Parquet files under {build_dir} (expected {build_dir}/manifest/*.parquet); "
                           "run `unimed build` first or point at a build directory such as build/stage1")


def open_build(build_dir: Path, connection: duckdb.DuckDBPyConnection | None = None) -> duckdb.DuckDBPyConnection:
    con = connection or duckdb.connect()
    source = manifest_glob(build_dir).replace("'", "''")
    con.execute(f"CREATE OR REPLACE VIEW records AS SELECT * FROM read_parquet('{source}')")
    con.execute("CREATE OR REPLACE VIEW kept AS SELECT * FROM records WHERE status = 'kept'")
    con.execute("CREATE OR REPLACE VIEW rejected AS SELECT * FROM records WHERE status <> 'kept'")
    report = Path(build_dir) / "contamination.parquet"  # written when the recipe decontaminates
    if report.is_file():
        path = report.as_posix().replace("'", "''")
        con.execute(f"CREATE OR REPLACE VIEW contamination AS SELECT * FROM read_parquet('{path}')")
    return con
