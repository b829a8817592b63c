"""Finalisation: from the staging area to the build's outputs, deterministically.

1. Choose, per work unit, the newest run in which it completed (its `unit_end` count matches the
   distinct rows staged) with the inputs it has now (the fingerprint in `units.parquet` equals the
   one its `unit_end` row carries, pipeline/engine/inputs.py); rows of incomplete runs, of stale
   inputs and of units no longer listed are ignored, so a killed run leaves no trace.
2. The global rules, over manifest columns: subject leakage (pipeline/tasks/leakage.py), exact
   duplicates (filters/dedup.py: same decoded pixels and text within one task, the smallest id kept),
   benchmark overlap and near duplicates (pipeline/engine/near_duplicates.py), and the alignment cut
   (filters/alignment/cut.py).
3. Kept rows are grouped by member layout (manifests/shards.py: task family + image members, one
   folder per group), and within a group packed greedily in id order into shards bounded by samples
   and bytes; each shard is written under a temporary name and renamed, then a done-marker holding its
   content digest is written. A rerun skips shards whose marker matches, so nothing is rewritten that
   need not be. The dataset card (README.md, one Hugging Face `datasets` config per group) follows.
4. The manifest (every chosen row) is streamed to Parquet in id order. (stats.json and the resolved
   recipe are written by the build, pipeline/engine/build.py, after this.)
The same staged rows always give the same shard bytes: member order, mtime 0, no host or clock data.
Every file goes through manifests/storage.py, so the build may live in a local folder or at an fsspec URL
(`s3://...`): files are built in a local scratch file and published whole, and workers get locations.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import posixpath
from dataclasses import dataclass, field
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import webdataset as wds

from filters.alignment.cut import apply_cut
from filters.dedup import reject_exact_duplicates
from manifests import storage
from manifests.schema import MANIFEST_SCHEMA
from manifests.shards import CARD_NAME, SHARDS_DIR, dataset_card, group_of_shard, shard_group_of_members, shard_name
from pipeline.config import Recipe
from pipeline.engine.staging import read_member
from pipeline.tasks.leakage import reject_leaked_subjects

log = logging.getLogger(__name__)
MANIFEST_ROWS_PER_FILE = 1_000_000
TAR_MEMBER_OVERHEAD = 1024  # a 512-byte header plus at most 511 bytes of padding, per tar member


@dataclass
class FinalizeResult:
    kept: int = 0
    rejected: int = 0
    shards: list[str] = field(default_factory=list)
    shards_written: int = 0
    failed_units: list[dict] = field(default_factory=list)
    alignment: dict = field(default_factory=dict)  # scored / unscored / below_cut counts
    near_duplicates: dict = field(default_factory=dict)  # rejection counts and the contamination report


@dataclass(frozen=True)
class ShardPlan:
    """One final shard: its name (relative to shards/), a digest of its content, and how many samples it holds.

    The samples themselves stay in the plan file (`.state/plan.parquet`, sorted by shard), which each
    shard writer reads filtered to its shard: nothing proportional to the build passes through the
    driver's memory or the task arguments.
    """

    name: str
    digest: str
    samples: int

    @property
    def marker(self) -> str:
        return f"{posixpath.basename(self.name)}.json"  # the file name carries the group: unique in the build


def _connect(staging_dir: str | Path, units_file: str | Path) -> duckdb.DuckDBPyConnection:
    fs, staging = storage.filesystem(staging_dir)
    con = storage.duckdb_connect(fs)
    con.execute(f"SET threads TO {max(1, os.cpu_count() or 1)}")
    staged = storage.location(fs, storage.join(staging, "*.parquet"))
    has_staged = bool(storage.glob(fs, storage.join(staging, "*.parquet")))
    if has_staged:
        con.execute(f"CREATE VIEW staged AS SELECT * FROM read_parquet('{staged}', union_by_name = true)")
    else:  # nothing staged yet: an empty view with the staging columns
        from manifests.schema import STAGING_SCHEMA

        con.register("empty_staged", pa.Table.from_pylist([], schema=STAGING_SCHEMA))
        con.execute("CREATE VIEW staged AS SELECT * FROM empty_staged")
    con.execute(f"CREATE TABLE units AS SELECT * FROM read_parquet('{units_file}')")
    # builds staged before input fingerprints existed: no fingerprint on either side
    if "fingerprint" not in _columns(con, "units"):
        con.execute("ALTER TABLE units ADD COLUMN fingerprint VARCHAR")
    if "unit_fingerprint" not in _columns(con, "staged"):
        con.execute("ALTER VIEW staged RENAME TO staged_without_fingerprint")
        con.execute("CREATE VIEW staged AS SELECT *, NULL::VARCHAR AS unit_fingerprint FROM staged_without_fingerprint")
    return con


def _columns(con: duckdb.DuckDBPyConnection, relation: str) -> set[str]:
    return {row[0] for row in con.execute(f"DESCRIBE {relation}").fetchall()}


def completed_units(staging_dir: str | Path, units_file: str | Path) -> set[str]:
    """Units that some run staged completely from the inputs they have now: a rerun skips them."""
    return unit_states(staging_dir, units_file)[0]


def unit_states(staging_dir: str | Path, units_file: str | Path) -> tuple[set[str], set[str]]:
    """(done, changed): units complete for their current inputs, and units complete only for older ones."""
    con = _connect(staging_dir, units_file)
    _choose_runs(con)
    done = {row[0] for row in con.execute("SELECT unit_id FROM complete").fetchall()}
    finished = {row[0] for row in con.execute(
        "SELECT DISTINCT f.unit_id FROM finished f SEMI JOIN units u ON f.unit_id = u.unit_id").fetchall()}
    return done, finished - done


def _choose_runs(con: duckdb.DuckDBPyConnection) -> None:
    con.execute(
        """
        CREATE OR REPLACE TABLE unit_runs AS
        SELECT unit_id, run,
               max(CASE WHEN kind = 'unit_end' THEN unit_count END) AS expected,
               count(DISTINCT CASE WHEN kind IN ('record', 'rejection') THEN id END) AS got,
               bool_or(kind = 'unit_error') AS errored,
               max(CASE WHEN kind = 'unit_end' THEN unit_fingerprint END) AS fingerprint
        FROM staged GROUP BY unit_id, run
        """
    )
    con.execute(
        """
        CREATE OR REPLACE TABLE finished AS
        SELECT unit_id, run, fingerprint FROM unit_runs
        WHERE NOT errored AND expected IS NOT NULL AND got = expected
        """
    )
    con.execute(
        """
        CREATE OR REPLACE TABLE complete AS
        SELECT f.unit_id, max(f.run) AS run FROM finished f
        JOIN units u ON f.unit_id = u.unit_id AND f.fingerprint IS NOT DISTINCT FROM u.fingerprint
        GROUP BY f.unit_id
        """
    )


def finalize(out_dir: str | Path, staging_dir: str | Path, units_file: str | Path, recipe: Recipe,
             use_ray: bool = True, release_filter=None) -> FinalizeResult:
    con = _connect(staging_dir, units_file)
    _choose_runs(con)
    result = FinalizeResult()
    result.failed_units = _failed_units(con)

    con.execute(
        """
        CREATE TABLE chosen AS
        SELECT s.* FROM staged s JOIN complete c ON s.unit_id = c.unit_id AND s.run = c.run
        WHERE s.kind IN ('record', 'rejection')
        QUALIFY row_number() OVER (PARTITION BY s.id ORDER BY s.staging_tar NULLS LAST) = 1
        """
    )
    if release_filter is not None:  # a rebuild: the release's decisions, and its hashes checked (pipeline/release)
        release_filter.apply(con)
    if recipe.tasks.enabled and recipe.tasks.leakage == "subject":
        reject_leaked_subjects(con, recipe.tasks.held_out_splits, recipe.tasks.held_out_reference_only)
    if recipe.filters.dedup == "exact":
        reject_exact_duplicates(con)
    if recipe.near_duplicates.enabled:  # benchmark overlap, then near duplicates: from score columns only
        from pipeline.engine.near_duplicates import apply_near_duplicate_rules

        result.near_duplicates = apply_near_duplicate_rules(con, recipe, out_dir)
    if recipe.alignment.enabled:  # the top-fraction cut needs every score: a global step, from columns
        result.alignment = apply_cut(con, recipe.alignment)
    con.execute("UPDATE chosen SET key = NULL WHERE status <> 'kept'")

    plans = _plan_shards(con, recipe)
    fs, out = storage.filesystem(out_dir)
    plan_file = storage.join(out, ".state", "plan.parquet")
    _write_plan_file(con, fs, plan_file)

    shards_dir, markers_dir = storage.join(out, SHARDS_DIR), storage.join(out, ".state", "shards")
    storage.makedirs(fs, shards_dir)
    storage.makedirs(fs, markers_dir)
    todo = [plan for plan in plans if not _shard_done(plan, fs, shards_dir, markers_dir)]
    _write_shards(todo, *(storage.location(fs, p) for p in (plan_file, shards_dir, markers_dir)),
                  str(staging_dir), use_ray, recipe.execution.placement.get("write"))
    planned = {plan.name for plan in plans}
    for stale in storage.find(fs, shards_dir, ".tar"):  # shards of an earlier, different plan
        if posixpath.relpath(stale, shards_dir) not in planned:
            storage.remove(fs, stale)
            storage.remove(fs, storage.join(markers_dir, f"{posixpath.basename(stale)}.json"))
    if storage.is_local(fs):  # a group the plan no longer has (an object store has no empty folders)
        for folder in sorted(Path(shards_dir).iterdir()):
            if folder.is_dir() and not any(folder.iterdir()):
                folder.rmdir()
    storage.write_text(fs, storage.join(out, CARD_NAME), _card(recipe.name, plans))

    _write_manifest(con, fs, storage.join(out, "manifest"))
    result.shards = [plan.name for plan in plans]
    result.shards_written = len(todo)
    result.kept, result.rejected = con.execute(
        "SELECT count(*) FILTER (status = 'kept'), count(*) FILTER (status <> 'kept') FROM chosen"
    ).fetchone()
    return result


def _failed_units(con: duckdb.DuckDBPyConnection) -> list[dict]:
    rows = con.execute(
        """
        SELECT u.unit_id, u.source,
               (SELECT any_value(detail) FROM staged s WHERE s.unit_id = u.unit_id AND s.kind = 'unit_error') AS error
        FROM units u ANTI JOIN complete c ON u.unit_id = c.unit_id
        ORDER BY u.unit_id
        """
    ).fetchall()
    return [{"unit_id": unit, "source": source, "error": (error or "not completed (worker lost or run interrupted)")}
            for unit, source, error in rows]


def _plan_shards(con: duckdb.DuckDBPyConnection, recipe: Recipe) -> list[ShardPlan]:
    """Per group (one member layout), greedy packing in id order: a shard closes before it would pass
    either bound, or when the group changes; shards are numbered from 0 within each group.

    Streamed: rows arrive in Arrow batches and only running counters, one digest per shard and the
    (key, shard) assignment of the current batch are held; the assignment goes back into DuckDB.
    The digest names content (keys, sample JSON, member sizes), never where the bytes were staged,
    so the same records give the same digest whichever run staged them.
    """
    limits = recipe.shards
    writer = con.cursor()  # a second cursor on the same database, while the first one streams
    writer.execute("CREATE OR REPLACE TABLE shard_of (key VARCHAR, shard_name VARCHAR)")
    con.create_function("shard_group", shard_group_of_members, ["VARCHAR", "VARCHAR"], "VARCHAR",
                        null_handling="special", side_effects=False)
    reader = con.sql(
        "SELECT shard_group(task_family, members) AS grp, key, sample, members, stored_bytes FROM chosen "
        "WHERE status = 'kept' ORDER BY grp, id"
    ).to_arrow_reader(50_000)
    plans: list[ShardPlan] = []
    digest, count, total, group, number = hashlib.blake2b(digest_size=16), 0, 0, None, 0

    def close() -> None:
        plans.append(ShardPlan(shard_name(recipe.name, group, number), digest.hexdigest(), count))

    for batch in reader:
        columns = batch.to_pydict()
        names = []
        for grp, key, sample, members, stored in zip(columns["grp"], columns["key"], columns["sample"],
                                                     columns["members"], columns["stored_bytes"]):
            entries = json.loads(members)
            size = (stored or 0) + len(sample) + (len(entries) + 1) * TAR_MEMBER_OVERHEAD
            if count and (grp != group or count >= limits.max_samples or total + size > limits.max_bytes):
                close()
                number = 0 if grp != group else number + 1
                digest, count, total = hashlib.blake2b(digest_size=16), 0, 0
            group = grp
            sizes = [(suffix, length) for suffix, _, length in entries]
            digest.update(f"{key}|{sample}|{sizes}\n".encode())
            count, total = count + 1, total + size
            names.append(shard_name(recipe.name, group, number))
        assignment = pa.table({"key": columns["key"], "shard_name": names})
        writer.register("assignment", assignment)
        writer.execute("INSERT INTO shard_of SELECT key, shard_name FROM assignment")
        writer.unregister("assignment")
    if count:
        close()
    con.execute("UPDATE chosen SET shard = shard_of.shard_name FROM shard_of WHERE chosen.key = shard_of.key")
    return plans


def _write_plan_file(con: duckdb.DuckDBPyConnection, fs, plan_file: str) -> None:
    """Every kept sample with where its bytes are staged, sorted by shard so readers skip row groups."""
    tmp = storage.scratch_file(".parquet")
    con.execute(
        f"""
        COPY (SELECT shard, key, sample, members, staging_tar FROM chosen WHERE status = 'kept' ORDER BY shard, id)
        TO '{Path(tmp).as_posix()}' (FORMAT parquet, ROW_GROUP_SIZE 2048)
        """
    )
    storage.put_file(fs, tmp, plan_file)


def _shard_done(plan: ShardPlan, fs, shards_dir: str, markers_dir: str) -> bool:
    marker = storage.join(markers_dir, plan.marker)
    if not (storage.exists(fs, marker) and storage.exists(fs, storage.join(shards_dir, plan.name))):
        return False
    try:
        return json.loads(storage.read_text(fs, marker))["digest"] == plan.digest
    except (ValueError, KeyError):
        return False


def write_shard(plan: ShardPlan, plan_file: str, shards_dir: str, markers_dir: str, staging_dir: str) -> str:
    """Write one final shard atomically, then its done-marker (content digest and file hash).

    Locations are local paths or URLs; the shard is built in a local scratch file, then published whole."""
    fs, shards = storage.filesystem(shards_dir)
    plan_fs, plan_path = storage.filesystem(plan_file)
    rows = pq.read_table(plan_path, filesystem=plan_fs, columns=["key", "sample", "members", "staging_tar"],
                         filters=[("shard", "=", plan.name)]).to_pylist()
    if len(rows) != plan.samples:
        raise RuntimeError(f"plan file lists {len(rows)} samples for {plan.name}, expected {plan.samples}")
    tmp = storage.scratch_file(".tar")
    with open(tmp, "wb") as stream:
        with wds.TarWriter(stream, encoder=False, mtime=0, user="", group="", mode=0o444) as writer:
            for row in rows:
                entry = {"__key__": row["key"], "json": row["sample"].encode("utf-8")}
                for suffix, offset, size in json.loads(row["members"]):
                    entry[suffix] = read_member(staging_dir, row["staging_tar"], offset, size)
                writer.write(entry)
        stream.flush()
        os.fsync(stream.fileno())
    with open(tmp, "rb") as stream:
        file_hash = hashlib.file_digest(stream, "sha256").hexdigest()
    storage.put_file(fs, tmp, storage.join(shards, plan.name))
    marker = json.dumps({"digest": plan.digest, "sha256": file_hash, "samples": plan.samples})
    marker_fs, markers = storage.filesystem(markers_dir)
    storage.write_text(marker_fs, storage.join(markers, plan.marker), marker)  # last: the shard is done
    return plan.name


def _write_shards(plans: list[ShardPlan], plan_file: str, shards_dir: str, markers_dir: str, staging_dir: str,
                  use_ray: bool, resources: dict[str, float] | None = None) -> None:
    if not plans:
        return
    args = (plan_file, shards_dir, markers_dir, staging_dir)
    if use_ray:
        import ray

        remote = ray.remote(max_retries=3, resources=resources or None)(write_shard)
        ray.get([remote.remote(plan, *args) for plan in plans])
    else:
        for plan in plans:
            write_shard(plan, *args)


def _card(recipe_name: str, plans: list[ShardPlan]) -> str:
    """README.md with `configs:` front matter, so `datasets.load_dataset(out_dir, group)` loads a group."""
    groups: dict[str, int] = {}
    for plan in plans:
        group = group_of_shard(plan.name)
        groups[group] = groups.get(group, 0) + plan.samples
    return dataset_card(recipe_name, groups)


def _write_manifest(con: duckdb.DuckDBPyConnection, fs, manifest_dir: str) -> None:
    storage.makedirs(fs, manifest_dir)
    columns = ", ".join(f'"{name}"' for name in MANIFEST_SCHEMA.names)
    reader = con.sql(f"SELECT {columns} FROM chosen ORDER BY id").to_arrow_reader(100_000)
    written, part, rows_in_part, writer, tmp = [], 0, 0, None, None

    def publish() -> None:
        final = storage.join(manifest_dir, f"part-{part - 1:05d}.parquet")
        storage.put_file(fs, tmp, final)
        written.append(final)

    for batch in reader:
        batch = pa.Table.from_batches([batch]).cast(MANIFEST_SCHEMA)
        if writer is None or rows_in_part >= MANIFEST_ROWS_PER_FILE:
            if writer is not None:
                writer.close()
                publish()
            tmp = storage.scratch_file(".parquet")
            writer, rows_in_part, part = pq.ParquetWriter(tmp, MANIFEST_SCHEMA), 0, part + 1
        writer.write_table(batch)
        rows_in_part += batch.num_rows
    if writer is None:  # an empty build still gets a readable (empty) manifest
        tmp, part = storage.scratch_file(".parquet"), 1
        pq.write_table(MANIFEST_SCHEMA.empty_table(), tmp)
    else:
        writer.close()
    publish()
    for stale in storage.glob(fs, storage.join(manifest_dir, "part-*.parquet")):
        if stale not in written:
            storage.remove(fs, stale)
