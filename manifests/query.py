"""DuckDB over a build's manifest: views `records`, `kept` and `rejected` (and `contamination` when the
build has a benchmark contamination report, `<build>/contamination.parquet`).

The same files read straight from the duckdb Python or CLI client:
    SELECT source, task_family, count(*) FROM 'build/stage1/manifest/*.parquet' WHERE status = 'kept' GROUP BY ALL

A build on object storage (`s3://bucket/prefix/stage1`) opens the same way: DuckDB reads it through fsspec
(manifests/storage.py), with the endpoint and credentials from the usual AWS_* environment variables.

The commands that read a whole manifest after a build (export, release, report, audit sample, contamination,
the loader's index) open it with `memory_limit`: DuckDB then sorts, groups and joins out of core, spilling to
a folder of its own under the system's temporary folder, so their memory does not grow with the corpus.
"""

from __future__ import annotations

import os
import tempfile
import uuid
from pathlib import Path

import duckdb

from manifests import storage

# What DuckDB may hold of a manifest query before it spills to disk (the commands run after a build).
QUERY_MEMORY_LIMIT = "512MB"


class ManifestNotFound(FileNotFoundError):
    pass


def manifest_glob(build_dir: Path | str) -> str:
    """The Parquet glob of a build directory (or of a manifest directory given directly): a path, or a URL."""
    fs, root = storage.filesystem(build_dir)
    for folder in (storage.join(root, "manifest"), root):
        if storage.glob(fs, storage.join(folder, "*.parquet")):
            return storage.location(fs, storage.join(folder, "*.parquet"))
    raise ManifestNotFound(f"no manifest Parquet files under {build_dir} (expected {build_dir}/manifest/*.parquet); "
                           "run `unimed build` first or point at a build directory such as build/stage1")


def limit_memory(con: duckdb.DuckDBPyConnection, memory_limit: str = QUERY_MEMORY_LIMIT) -> duckdb.DuckDBPyConnection:
    """Cap what DuckDB holds in memory; beyond it, sorts, aggregates and joins spill to a fresh folder under
    the system's temporary folder (DuckDB creates it on first spill and removes it when the connection closes)."""
    spill = Path(tempfile.gettempdir(), f"unimed-duckdb-{os.getpid()}-{uuid.uuid4().hex[:8]}")
    con.execute(f"SET memory_limit = '{memory_limit}'")
    con.execute(f"SET temp_directory = '{spill.as_posix()}'")
    con.execute("SET enable_progress_bar = false")  # a command's output is its own lines, not DuckDB's bar
    return con


def open_build(build_dir: Path | str, connection: duckdb.DuckDBPyConnection | None = None,
               memory_limit: str | None = None) -> duckdb.DuckDBPyConnection:
    """Views `records`, `kept`, `rejected` (and `contamination`) over a build's manifest; with `memory_limit`,
    DuckDB works out of core beyond it (`limit_memory`)."""
    fs, root = storage.filesystem(build_dir)
    con = storage.duckdb_connect(fs, connection)
    if memory_limit:
        limit_memory(con, memory_limit)
    source = manifest_glob(build_dir).replace("'", "''")
    con.execute(f"CREATE OR REPLACE VIEW records AS SELECT * FROM read_parquet('{source}')")
    con.execute("CREATE OR REPLACE VIEW kept AS SELECT * FROM records WHERE status = 'kept'")
    con.execute("CREATE OR REPLACE VIEW rejected AS SELECT * FROM records WHERE status <> 'kept'")
    report = storage.join(root, "contamination.parquet")  # written when the recipe decontaminates
    if storage.exists(fs, report):
        path = storage.location(fs, report).replace("'", "''")
        con.execute(f"CREATE OR REPLACE VIEW contamination AS SELECT * FROM read_parquet('{path}')")
    return con
