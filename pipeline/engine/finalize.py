"""Finalisation: decide, then write. From the staged rows to the build's outputs, deterministically.

1. Choose, per work unit, the newest run in which it completed (its `unit_end` count matches the
   distinct rows staged) with the inputs it has now (the fingerprint in `units.parquet` equals the
   one its `unit_end` row carries, pipeline/engine/inputs.py); rows of incomplete runs, of stale
   inputs and of units no longer listed are ignored, so a killed run leaves no trace.
2. The global rules, over manifest columns: a release's decisions (`unimed rebuild`), subject leakage
   (pipeline/tasks/leakage.py), exact duplicates (filters/dedup.py), benchmark overlap and near
   duplicates (pipeline/engine/near_duplicates.py), and the alignment cut (filters/alignment/cut.py).
3. The shard plan: each group's kept samples (manifests/shards.py: task family + image members) in a
   fixed order (work unit, then id), cut into shards filled to the recipe's bounds across units
   (`ShardCutter`): when the next sample would pass a bound, a shard ends after the sample with the
   largest key hash among those past `shards.min_fill` of a bound. A cut depends on the samples around
   it, so removing or adding a sample changes its own shard (rarely the next), not every shard after
   it; every shard but a group's last is at least `min_fill` full. A shard is named after its first sample
   and carries a digest of its content (keys, sample JSON, member sizes and digests).
4. The second pass (pipeline/engine/reread.py): one Ray task per shard whose done-marker does not
   match its digest, on the recipe's writer nodes, writes the shard under a temporary name, its
   members copied from the shard that held them before or read again from the sources. Every new
   shard is written before any is published (old shards may be sources), then each is renamed into
   place and its done-marker (`.state/shards/<shard>.<digest>`) written. Shards of an earlier plan are
   removed. The dataset card (README.md, one `datasets` config per group) follows.
5. The manifest (every chosen row) is streamed to Parquet in id order. (stats.json, the resolved
   recipe and the record of this finalisation, `.state/finalized.json`, are written by the build after
   this: pipeline/engine/build.py.)

Out of core: DuckDB runs with a memory limit (MEMORY_PER_THREAD_MB per thread) and spills to `.state/duckdb/`;
rows reach Python only as Arrow batches (the shard plan, the plan files, the manifest), never as one list. The same
staged rows always give the same shard bytes: member order, mtime 0, no host or clock data.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import posixpath
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq

from filters.alignment.cut import apply_cut
from filters.dedup import reject_exact_duplicates
from manifests import storage
from manifests.schema import MANIFEST_SCHEMA, STAGING_SCHEMA
from manifests.shards import CARD_NAME, dataset_card, group_of_shard, keyed_shard_name, shard_group_of_members
from pipeline.config import Recipe
from pipeline.engine.reread import MissingPixels, ShardJob, ShardWritten, SourceLocation, tmp_name, write_shard
from pipeline.tasks.leakage import reject_leaked_subjects

log = logging.getLogger(__name__)
MANIFEST_ROWS_PER_FILE = 1_000_000
TAR_MEMBER_OVERHEAD = 1024  # a 512-byte header plus at most 511 bytes of padding, per tar member
# DuckDB's share of the driver, whatever the corpus size: beyond it, it spills to .state/duckdb. Per thread,
# at most MAX_THREADS threads (3M rows of 0.5 KB: 256 MB on 2 threads peaks at 468 MB RSS, as fast as 2 GB).
MEMORY_PER_THREAD_MB, MAX_THREADS = 128, 8
ARROW_BATCH_ROWS = 10_000  # rows per Arrow batch pulled into Python (sample JSON: KBs each)
SHARDS_PER_PLAN_FILE = 16  # the second pass's plan is written in files of this many shards
PLAN_DIR, MARKERS_DIR = "plan", "shards"  # under .state


@dataclass
class FinalizeResult:
    kept: int = 0
    rejected: int = 0
    shards: list[str] = field(default_factory=list)
    shards_written: int = 0
    samples_copied: int = 0  # image members copied from the shard that held them before (a rerun, rethreshold)
    samples_reread: int = 0  # samples whose images were read again from their sources (all of them, first time)
    units_reread: int = 0  # unit reads of the second pass: a unit whose kept samples span k shards counts k
    bytes_shards: int = 0  # shard bytes written this run
    bytes_plan: int = 0  # the second pass's plan files (rows without pixels, removed afterwards)
    bytes_manifest: int = 0
    shard_bytes: int = 0  # the size of every shard of the build
    failed_units: list[dict] = field(default_factory=list)
    alignment: dict = field(default_factory=dict)  # scored / unscored / below_cut counts
    near_duplicates: dict = field(default_factory=dict)  # rejection counts and the contamination report
    seconds: dict = field(default_factory=dict)  # decide (steps 1-3), write_shards (4), manifest (5)


@dataclass(frozen=True)
class ShardPlan:
    """One final shard: its name (relative to shards/), a digest of its content, and how many samples it holds.

    Which samples, in which order, stays in DuckDB (`shard_of`) and, for the shards to write, in the plan
    files under `.state/plan/`: nothing proportional to the build passes through the driver's memory or
    the task arguments.
    """

    name: str
    digest: str
    samples: int

    @property
    def marker(self) -> str:
        """The done-marker's file name: the shard's (which carries its group, unique in the build) and digest."""
        return f"{posixpath.basename(self.name)}.{self.digest}"


@dataclass(frozen=True)
class CutItem:
    """What the cutter needs of a sample: its key, its size in the shard, and anything to carry along."""

    key: str
    size: int
    payload: object = None


class ShardCutter:
    """Where a group's shards end: filled to the recipe's bounds, at points chosen by the samples themselves.

    Samples arrive in the group's order (`add`); a shard may hold up to `max_samples` samples and
    `max_bytes` bytes. When the next sample would pass a bound, the shard ends after the sample with
    the largest key hash among those past `fill` of either bound (the window), and the samples after it
    start the next shard. Every shard but a group's last is therefore at least `fill` full. A cut
    depends on the samples in its window, not on how many came before: removing or adding a sample
    keeps every other cut unless the window's largest hash moves (the sample was that cut, or sat at an
    edge of the window: about 2 chances in the window's length), so such a change rewrites its own shard
    and rarely the next one, not every shard after it. A group's remaining samples (`flush`) are its last
    shard.
    """

    def __init__(self, max_samples: int, max_bytes: int, fill: float):
        self.max_samples, self.max_bytes = max_samples, max_bytes
        self.min_samples = max(1, math.ceil(fill * max_samples))
        self.min_bytes = fill * max_bytes
        self.buffer: list[tuple[CutItem, int]] = []  # (item, key hash)
        self.total = 0

    def add(self, item: CutItem) -> list[list[CutItem]]:
        """Take the next sample of the group; returns the shards it completes (usually none)."""
        done = []
        while self.buffer and (len(self.buffer) >= self.max_samples or self.total + item.size > self.max_bytes):
            done.append(self._cut())
        rank = int.from_bytes(hashlib.blake2b(item.key.encode("utf-8"), digest_size=8).digest(), "big")
        self.buffer.append((item, rank))
        self.total += item.size
        return done

    def flush(self) -> list[list[CutItem]]:
        """The end of the group: what is left is its last shard."""
        if not self.buffer:
            return []
        shard, self.buffer, self.total = [item for item, _ in self.buffer], [], 0
        return [shard]

    def _cut(self) -> list[CutItem]:
        best, count, total = len(self.buffer) - 1, 0, 0
        best_rank = -1
        for index, (item, rank) in enumerate(self.buffer):
            count, total = count + 1, total + item.size
            if (count >= self.min_samples or total >= self.min_bytes) and rank > best_rank:
                best, best_rank = index, rank
        shard = [item for item, _ in self.buffer[:best + 1]]
        self.buffer = self.buffer[best + 1:]
        self.total = sum(item.size for item, _ in self.buffer)
        return shard


def _connect(staging_dir: str | Path, units_file: str | Path,
             spill_dir: str | None = None) -> duckdb.DuckDBPyConnection:
    fs, staging = storage.filesystem(staging_dir)
    con = storage.duckdb_connect(fs)
    threads = max(1, min(MAX_THREADS, os.cpu_count() or 1))
    con.execute(f"SET threads TO {threads}")
    con.execute(f"SET memory_limit = '{max(2, threads) * MEMORY_PER_THREAD_MB}MB'")
    if spill_dir:
        con.execute(f"SET temp_directory = '{spill_dir}'")
    staged = storage.location(fs, storage.join(staging, "*.parquet"))
    if storage.glob(fs, storage.join(staging, "*.parquet")):
        con.execute(f"CREATE VIEW staged AS SELECT * FROM read_parquet('{staged}', union_by_name = true)")
    else:  # nothing staged yet: an empty view with the staging columns
        con.register("empty_staged", pa.Table.from_pylist([], schema=STAGING_SCHEMA))
        con.execute("CREATE VIEW staged AS SELECT * FROM empty_staged")
    listed = {row[0] for row in con.execute(f"DESCRIBE SELECT * FROM read_parquet('{units_file}')").fetchall()}
    fingerprint = "fingerprint" if "fingerprint" in listed else "NULL::VARCHAR AS fingerprint"  # older listings
    con.execute(f"CREATE TABLE units AS SELECT unit_id, source, {fingerprint} FROM read_parquet('{units_file}')")
    # staging areas of older builds: no fingerprints, no pieces (image bytes in `staging_tar`), no parts, no groups,
    # no hash per image
    missing = [f"NULL::{kind} AS {name}" for name, kind in (
        ("unit_fingerprint", "VARCHAR"), ("staging_tar", "VARCHAR"), ("piece", "VARCHAR"), ("part", "INTEGER"),
        ("shard_group", "VARCHAR"), ("image_hashes", "VARCHAR[]")) if name not in _columns(con, "staged")]
    if missing:
        con.execute("ALTER VIEW staged RENAME TO staged_as_written")
        con.execute(f"CREATE VIEW staged AS SELECT *, {', '.join(missing)} FROM staged_as_written")
    return con


def _columns(con: duckdb.DuckDBPyConnection, relation: str) -> set[str]:
    return {row[0] for row in con.execute(f"DESCRIBE {relation}").fetchall()}


def _spill_dir(out_dir: str | Path) -> tuple[str, bool]:
    """Where DuckDB spills: `.state/duckdb` of a local build, else a local temporary folder (removed after)."""
    fs, root = storage.filesystem(out_dir)
    if storage.is_local(fs):
        folder = storage.join(root, ".state", "duckdb")
        storage.makedirs(fs, folder)
        return folder, False
    return tempfile.mkdtemp(prefix="unimed-duckdb-"), True


def pending_units(out_dir: str | Path, staging_dir: str | Path, units_file: str | Path, pending_dir: str,
                  refresh: bool = False, units_per_file: int = 64) -> tuple[int, int]:
    """Write the unit tasks a run must read (not staged complete for their current inputs, or all with
    `refresh`) as Parquet files of `units_per_file` tasks under `pending_dir` (for Ray Data to read);
    returns (how many, how many of them were complete for older inputs)."""
    fs, pending = storage.filesystem(pending_dir)
    for stale in storage.glob(fs, storage.join(pending, "*.parquet")):
        storage.remove(fs, stale)
    spill, own_spill = _spill_dir(out_dir)
    try:
        con = _connect(staging_dir, units_file, spill)
        _choose_runs(con)
        changed = con.execute(
            "SELECT count(DISTINCT f.unit_id) FROM finished f SEMI JOIN units u ON f.unit_id = u.unit_id "
            "WHERE f.unit_id NOT IN (SELECT unit_id FROM complete)").fetchall()[0][0]
        done = "" if refresh else "WHERE unit_id NOT IN (SELECT unit_id FROM complete)"
        reader = con.sql(f"SELECT task FROM read_parquet('{units_file}') {done}").to_arrow_reader(units_per_file)
        count = 0
        for number, batch in enumerate(reader):
            if batch.num_rows:
                _write_parquet(fs, storage.join(pending, f"units-{number:06d}.parquet"), pa.Table.from_batches([batch]))
                count += batch.num_rows
        con.close()
    finally:
        if own_spill:
            shutil.rmtree(spill, ignore_errors=True)
    return count, changed


def _choose_runs(con: duckdb.DuckDBPyConnection) -> None:
    con.execute(
        """
        CREATE OR REPLACE TABLE unit_runs AS
        SELECT unit_id, run,
               max(CASE WHEN kind = 'unit_end' THEN unit_count END) AS expected,
               count(DISTINCT CASE WHEN kind IN ('record', 'rejection') THEN id END) AS got,
               bool_or(kind = 'unit_error') AS errored,
               max(CASE WHEN kind = 'unit_end' THEN unit_fingerprint END) AS fingerprint,
               any_value(CASE WHEN kind = 'unit_error' THEN detail END) AS error
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


def finalize(out_dir: str | Path, staging_dir: str | Path, units_file: str | Path, recipe: Recipe, use_ray: bool = True,
             release_filter=None, sources: dict[str, SourceLocation] | None = None) -> FinalizeResult:
    """`sources`: where each source was read, for builds listed before the listing kept its unit tasks
    (pipeline/engine/reread.py reads samples again from those); a sample that cannot be read again raises
    MissingPixels, and nothing is published."""
    spill, own_spill = _spill_dir(out_dir)
    try:
        con = _connect(staging_dir, units_file, spill)
        try:
            return _finalize(con, out_dir, staging_dir, units_file, recipe, use_ray, release_filter, sources)
        finally:
            con.close()
    finally:
        if own_spill:
            shutil.rmtree(spill, ignore_errors=True)


def _finalize(con: duckdb.DuckDBPyConnection, out_dir, staging_dir, units_file, recipe: Recipe, use_ray: bool,
              release_filter, sources) -> FinalizeResult:
    started = time.monotonic()
    _choose_runs(con)
    result = FinalizeResult()
    result.failed_units = _failed_units(con)

    con.execute(
        """
        CREATE TABLE chosen AS
        SELECT s.* FROM staged s JOIN complete c ON s.unit_id = c.unit_id AND s.run = c.run
        WHERE s.kind IN ('record', 'rejection')
        QUALIFY row_number() OVER (PARTITION BY s.id ORDER BY s.members NULLS LAST) = 1
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

    plans = _plan_shards(con, recipe)
    fs, root = storage.filesystem(out_dir)
    shards_dir, markers_dir = storage.join(root, "shards"), storage.join(root, ".state", MARKERS_DIR)
    published = _listing(fs, shards_dir)
    markers: dict[str, list[str]] = {}  # shard file name -> its markers (the current one, or an older one)
    for path in storage.find(fs, markers_dir):
        markers.setdefault(posixpath.basename(path).partition(".tar")[0], []).append(posixpath.basename(path))
    todo = [plan for plan in plans if plan.name not in published or
            plan.marker not in markers.get(posixpath.basename(plan.name).partition(".tar")[0], ())]
    result.seconds["decide"] = round(time.monotonic() - started, 3)

    started = time.monotonic()
    _previous_shards(con, fs, root)
    plan_dir = storage.join(root, ".state", PLAN_DIR)
    jobs, result.bytes_plan = _write_plan_files(con, fs, plan_dir, todo, units_file)
    done = _write_shards(jobs, storage.location(fs, root), recipe, sources, use_ray,
                         recipe.execution.placement.get("write"))
    for written in done:
        result.bytes_shards += written.size
        result.samples_copied += written.copied
        result.samples_reread += written.reread
        result.units_reread += written.units_read
    for plan in todo:  # every new shard is written before any is published: old shards may be sources
        final = storage.join(shards_dir, plan.name)
        storage.makedirs(fs, storage.join(shards_dir, group_of_shard(plan.name)))
        fs.mv(tmp_name(final), final)
        for old in markers.get(posixpath.basename(plan.name).partition(".tar")[0], ()):
            storage.remove(fs, storage.join(markers_dir, old))  # the marker of what this name held before
        storage.write_bytes(fs, storage.join(markers_dir, plan.marker), b"")
    _remove_stale(fs, root, shards_dir, markers_dir, plans)
    for leftover in storage.find(fs, plan_dir):
        storage.remove(fs, leftover)
    staging_fs, staging = storage.filesystem(str(staging_dir))
    for leftover in storage.glob(staging_fs, storage.join(staging, "*.tar")):  # pieces of older builds
        storage.remove(staging_fs, leftover)
    storage.write_text(fs, storage.join(root, CARD_NAME), _card(recipe.name, plans))
    result.seconds["write_shards"] = round(time.monotonic() - started, 3)

    started = time.monotonic()
    manifest_rows = ("(SELECT c.* REPLACE (s.shard AS shard, CASE WHEN c.status = 'kept' THEN c.key END AS key) "
                     "FROM chosen c LEFT JOIN shard_of s USING (id))")
    result.bytes_manifest = write_manifest(con, fs, storage.join(root, "manifest"), manifest_rows)
    sizes = _listing(fs, shards_dir)
    result.shard_bytes = sum(sizes[plan.name] for plan in plans)
    result.shards = [plan.name for plan in plans]
    result.shards_written = len(todo)
    result.kept, result.rejected = con.execute(
        "SELECT count(*) FILTER (status = 'kept'), count(*) FILTER (status <> 'kept') FROM chosen"
    ).fetchone()
    result.seconds["manifest"] = round(time.monotonic() - started, 3)
    return result


def _listing(fs, shards_dir: str) -> dict[str, int]:
    """{shard relative to shards/: size} of every published shard, from one listing."""
    fs.invalidate_cache()
    if not fs.exists(shards_dir):
        return {}
    return {posixpath.relpath(path, shards_dir): info["size"]
            for path, info in fs.find(shards_dir, detail=True).items() if path.endswith(".tar")}


def _remove_stale(fs, root: str, shards_dir: str, markers_dir: str, plans: list[ShardPlan]) -> None:
    """Shards (and markers) of an earlier, different plan, temporary files a killed run left; group folders
    the plan no longer has."""
    planned = {plan.name for plan in plans}
    for stale in storage.find(fs, shards_dir):
        if posixpath.relpath(stale, shards_dir) not in planned:
            storage.remove(fs, stale)
    current = {plan.marker for plan in plans}
    for marker in storage.find(fs, markers_dir):
        if posixpath.basename(marker) not in current:
            storage.remove(fs, marker)
    if storage.is_local(fs):  # an object store has no empty folders
        storage.makedirs(fs, shards_dir)
        for folder in sorted(Path(shards_dir).iterdir()):
            if folder.is_dir() and not any(folder.iterdir()):
                folder.rmdir()


def _failed_units(con: duckdb.DuckDBPyConnection) -> list[dict]:
    rows = con.execute(
        """
        SELECT u.unit_id, u.source, (SELECT any_value(r.error) FROM unit_runs r WHERE r.unit_id = u.unit_id) AS error
        FROM units u ANTI JOIN complete c ON u.unit_id = c.unit_id
        ORDER BY u.unit_id
        """
    ).fetchall()
    return [{"unit_id": unit, "source": source, "error": (error or "not completed (worker lost or run interrupted)")}
            for unit, source, error in rows]


def _plan_shards(con: duckdb.DuckDBPyConnection, recipe: Recipe) -> list[ShardPlan]:
    """Each group's kept samples in (unit, id) order, cut by `ShardCutter`; fills `shard_of` (id, shard, position).

    Streamed: rows arrive in Arrow batches; only the cutter's window (at most one shard of keys, sizes and
    row digests) and the assignments not yet inserted are held; the assignment goes back into DuckDB.
    The digest names content (keys, sample JSON, member sizes and digests), never where the bytes sit,
    so the same records give the same digest whichever run staged them.
    """
    cutter = ShardCutter(recipe.shards.max_samples, recipe.shards.max_bytes, recipe.shards.min_fill)
    con.execute("CREATE OR REPLACE TABLE shard_of (id VARCHAR, shard VARCHAR, position INTEGER)")
    con.create_function("group_of_members", shard_group_of_members, ["VARCHAR", "VARCHAR"], "VARCHAR",
                        null_handling="special", side_effects=False)
    writer = con.cursor()  # a second cursor on the same database, while the first one streams
    reader = con.sql(
        "SELECT CASE WHEN shard_group IS NULL THEN group_of_members(task_family, members) ELSE shard_group END AS grp, "
        "unit_id, id, key, sample, members, stored_bytes FROM chosen WHERE status = 'kept' ORDER BY grp, unit_id, id"
    ).to_arrow_reader(ARROW_BATCH_ROWS)
    plans: list[ShardPlan] = []
    assigned: dict[str, list] = {"id": [], "shard": [], "position": []}

    def emit(group: str, shards: list[list[CutItem]]) -> None:
        for shard in shards:
            name = keyed_shard_name(recipe.name, group, shard[0].key)
            digest = hashlib.blake2b(digest_size=16)
            for position, item in enumerate(shard):
                record_id, row_digest = item.payload
                digest.update(row_digest)
                assigned["id"].append(record_id)
                assigned["shard"].append(name)
                assigned["position"].append(position)
            plans.append(ShardPlan(name, digest.hexdigest(), len(shard)))

    def insert() -> None:
        writer.register("assignment", pa.table({**assigned, "position": pa.array(assigned["position"], pa.int32())}))
        writer.execute("INSERT INTO shard_of SELECT id, shard, position FROM assignment")
        writer.unregister("assignment")
        for values in assigned.values():
            values.clear()

    group = None
    for batch in reader:
        columns = batch.to_pydict()
        for grp, record_id, key, sample, members, stored in zip(columns["grp"], columns["id"], columns["key"],
                                                                columns["sample"], columns["members"],
                                                                columns["stored_bytes"]):
            if grp != group:
                emit(group, cutter.flush())
                group = grp
            entries = [(entry[0], entry[2], entry[3] if len(entry) > 3 else None) for entry in json.loads(members)]
            size = (stored or 0) + len(sample) + (len(entries) + 1) * TAR_MEMBER_OVERHEAD
            row_digest = hashlib.blake2b(f"{key}|{sample}|{entries}".encode(), digest_size=16).digest()
            emit(group, cutter.add(CutItem(key, size, (record_id, row_digest))))
        insert()
    emit(group, cutter.flush())
    insert()
    return plans


def _previous_shards(con: duckdb.DuckDBPyConnection, fs, root: str) -> None:
    """`previous`: the shard each id sat in after the last finalisation (its manifest), a source of bytes."""
    parts = storage.join(root, "manifest", "part-*.parquet")
    if storage.glob(fs, parts):
        con.execute(f"CREATE OR REPLACE TABLE previous AS SELECT id, shard FROM read_parquet("
                    f"'{storage.location(fs, parts)}') WHERE shard IS NOT NULL")
    else:
        con.execute("CREATE OR REPLACE TABLE previous (id VARCHAR, shard VARCHAR)")


def _write_plan_files(con: duckdb.DuckDBPyConnection, fs, plan_dir: str, todo: list[ShardPlan],
                      units_file: str | Path) -> tuple[list[ShardJob], int]:
    """The samples of the shards to write, in files of SHARDS_PER_PLAN_FILE shards (sorted by shard, then
    position, so a writer's filtered read skips the other shards), and the unit tasks they are read from."""
    for stale in storage.find(fs, plan_dir):
        storage.remove(fs, stale)
    if not todo:
        return [], 0
    storage.makedirs(fs, plan_dir)
    con.register("todo", pa.table({"shard": [plan.name for plan in todo],
                                   "bucket": [index // SHARDS_PER_PLAN_FILE for index in range(len(todo))]}))
    con.execute("CREATE OR REPLACE TABLE todo_rows AS SELECT t.bucket, s.shard, s.position, s.id "
                "FROM shard_of s JOIN todo t USING (shard)")
    con.unregister("todo")
    samples = con.sql(
        """
        SELECT r.bucket, r.shard, r.position, c.id, c.unit_id, c.source, c.key, c.sample, c.members, p.shard AS previous
        FROM todo_rows r JOIN chosen c USING (id) LEFT JOIN previous p USING (id)
        ORDER BY r.bucket, r.shard, r.position
        """
    ).to_arrow_reader(ARROW_BATCH_ROWS)
    written = _write_buckets(fs, plan_dir, "samples", samples)
    listed = con.execute(f"DESCRIBE SELECT * FROM read_parquet('{units_file}')").fetchall()
    has_tasks = "task" in {row[0] for row in listed}  # listings of older builds keep no unit tasks
    if has_tasks:
        units = con.sql(
            f"""
            SELECT x.bucket, u.unit_id, u.task
            FROM (SELECT DISTINCT r.bucket, c.unit_id FROM todo_rows r JOIN chosen c USING (id)) x
            JOIN read_parquet('{units_file}') u USING (unit_id) ORDER BY x.bucket, u.unit_id
            """
        ).to_arrow_reader(1_000)
        written += _write_buckets(fs, plan_dir, "units", units)
    def location(kind: str, index: int) -> str:
        return storage.location(fs, _bucket_file(plan_dir, kind, index // SHARDS_PER_PLAN_FILE))

    jobs = [ShardJob(plan.name, plan.samples, location("samples", index),
                     location("units", index) if has_tasks else None) for index, plan in enumerate(todo)]
    return jobs, written


def _bucket_file(plan_dir: str, kind: str, bucket: int) -> str:
    return storage.join(plan_dir, f"{kind}-{bucket:06d}.parquet")


def _write_buckets(fs, plan_dir: str, kind: str, reader) -> int:
    """Stream batches ordered by `bucket` into one Parquet file per bucket; returns the bytes written."""
    written, bucket, pending = 0, None, []

    def flush() -> int:
        table = pa.concat_tables(pending).drop_columns(["bucket"])
        return _write_parquet(fs, _bucket_file(plan_dir, kind, bucket), table, row_group_size=2048)

    for batch in reader:
        table = pa.Table.from_batches([batch])
        buckets = table.column("bucket").to_pylist()
        start = 0
        for index in range(1, len(buckets) + 1):
            if index == len(buckets) or buckets[index] != buckets[start]:
                if bucket is not None and buckets[start] != bucket:
                    written += flush()
                    pending = []
                bucket = buckets[start]
                pending.append(table.slice(start, index - start))
                start = index
    if pending:
        written += flush()
    return written


def _write_parquet(fs, path: str, table: pa.Table, row_group_size: int | None = None) -> int:
    """Publish a Parquet file (a scratch file first, mode from the umask); returns its size."""
    scratch = storage.scratch_file(".parquet")
    pq.write_table(table, scratch, row_group_size=row_group_size)
    size = os.path.getsize(scratch)
    storage.put_file(fs, scratch, path)
    return size


def _write_shards(jobs: list[ShardJob], root: str, recipe: Recipe, sources: dict[str, SourceLocation] | None,
                  use_ray: bool, resources: dict[str, float] | None = None) -> list[ShardWritten]:
    """The second pass: write every planned shard under its temporary name, in parallel on the recipe's writer nodes."""
    if not jobs:
        return []
    if not use_ray:
        return [write_shard(job, root, recipe, sources) for job in jobs]
    import ray

    remote = ray.remote(max_retries=3, resources=resources or None)(write_shard)
    recipe_ref = ray.put(recipe)
    try:
        return ray.get([remote.remote(job, root, recipe_ref, sources) for job in jobs])
    except ray.exceptions.RayTaskError as err:
        if isinstance(err.cause, MissingPixels):
            raise MissingPixels(str(err.cause)) from None
        raise


def _card(recipe_name: str, plans: list[ShardPlan]) -> str:
    """README.md with `configs:` front matter, so `datasets.load_dataset(out_dir, group)` loads a group."""
    groups: dict[str, int] = {}
    for plan in plans:
        group = group_of_shard(plan.name)
        groups[group] = groups.get(group, 0) + plan.samples
    return dataset_card(recipe_name, groups)


def write_manifest(con: duckdb.DuckDBPyConnection, fs, manifest_dir: str, relation: str = "chosen") -> int:
    """Every row of `relation`, in id order, in parts of MANIFEST_ROWS_PER_FILE, each built in a scratch file and
    published whole; returns the bytes written."""
    storage.makedirs(fs, manifest_dir)
    columns = ", ".join(f'"{name}"' for name in MANIFEST_SCHEMA.names)
    reader = con.sql(f"SELECT {columns} FROM {relation} ORDER BY id").to_arrow_reader(ARROW_BATCH_ROWS)
    written, sizes, part, rows_in_part, writer, tmp = [], 0, 0, 0, None, None

    def publish() -> int:
        final = storage.join(manifest_dir, f"part-{part - 1:05d}.parquet")
        size = os.path.getsize(tmp)
        storage.put_file(fs, tmp, final)
        written.append(final)
        return size

    for batch in reader:
        batch = pa.Table.from_batches([batch]).cast(MANIFEST_SCHEMA)
        if writer is None or rows_in_part >= MANIFEST_ROWS_PER_FILE:
            if writer is not None:
                writer.close()
                sizes += publish()
            tmp = storage.scratch_file(".parquet")
            writer, rows_in_part, part = pq.ParquetWriter(tmp, MANIFEST_SCHEMA), 0, part + 1
        writer.write_table(batch)
        rows_in_part += batch.num_rows
    if writer is None:  # an empty build still gets a readable (empty) manifest
        tmp, part = storage.scratch_file(".parquet"), 1
        pq.write_table(MANIFEST_SCHEMA.empty_table(), tmp)
    else:
        writer.close()
    sizes += publish()
    for stale in storage.glob(fs, storage.join(manifest_dir, "part-*.parquet")):
        if stale not in written:
            storage.remove(fs, stale)
    return sizes
