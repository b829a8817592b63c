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
   folder per group) and by the work unit and part they were read in (pipeline/engine/units.py), and
   packed in id order into shards bounded by samples and bytes: a shard's name and content depend only
   on its own unit. The workers already wrote each part's samples as a piece in final form
   (pipeline/engine/staging.py): a piece that holds exactly its shard's kept samples is moved into
   place; a shard that lost samples to a global rule is written by copying members (from its piece, or
   from the shard published before: how `rethreshold` tightens without repacking). Every new shard is
   written before any is published; then a done-marker holding its content digest. A rerun skips shards
   whose marker matches, so nothing is rewritten that need not be. Leftover pieces are removed: no
   second copy of the pixels survives. The dataset card (README.md, one `datasets` config per group)
   follows.
4. The manifest (every chosen row) is streamed to Parquet in id order. (stats.json and the resolved
   recipe are written by the build, pipeline/engine/build.py, after this.)
The same staged rows always give the same shard bytes: member order, mtime 0, no host or clock data.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import os
import posixpath
import tarfile
from dataclasses import dataclass, field
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq

from filters.alignment.cut import apply_cut
from filters.dedup import reject_exact_duplicates
from manifests import storage
from manifests.schema import MANIFEST_SCHEMA
from manifests.shards import CARD_NAME, dataset_card, group_of_shard, shard_group_of_members, shard_name
from pipeline.config import Recipe
from pipeline.engine.reread import MissingPixels, SourceLocation, reread_pieces
from pipeline.engine.staging import write_samples
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
    pieces_moved: int = 0  # shards that were a worker's piece, moved into place (no byte copied)
    bytes_copied: int = 0  # shard bytes written here by copying members (a rule rejected some of a piece)
    bytes_manifest: int = 0
    samples_reread: int = 0  # kept now, rejected before: images read again from their sources
    shard_bytes: int = 0  # the size of every shard of the build
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
    # staging areas of older builds: no fingerprints, no pieces (image bytes in `staging_tar`), no parts,
    # no hash per image
    missing = [f"NULL::{kind} AS {name}" for name, kind in (
        ("unit_fingerprint", "VARCHAR"), ("staging_tar", "VARCHAR"), ("piece", "VARCHAR"), ("part", "INTEGER"),
        ("image_hashes", "VARCHAR[]"))
        if name not in _columns(con, "staged")]
    if missing:
        con.execute("ALTER VIEW staged RENAME TO staged_as_written")
        con.execute(f"CREATE VIEW staged AS SELECT *, {', '.join(missing)} FROM staged_as_written")
    return con


def _columns(con: duckdb.DuckDBPyConnection, relation: str) -> set[str]:
    return {row[0] for row in con.execute(f"DESCRIBE {relation}").fetchall()}


def completed_units(staging_dir: Path, units_file: Path) -> set[str]:
    """Units that some run staged completely from the inputs they have now: a rerun skips them."""
    return unit_states(staging_dir, units_file)[0]


def unit_states(staging_dir: Path, units_file: Path) -> tuple[set[str], set[str]]:
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


def finalize(out_dir: str | Path, staging_dir: str | Path, units_file: str | Path, recipe: Recipe, use_ray: bool = True,
             release_filter=None, sources: dict[str, SourceLocation] | None = None) -> FinalizeResult:
    """`sources`: where each source was read, so that samples kept now whose images no shard holds
    (rejected before) are read again (pipeline/engine/reread.py); without it they raise MissingPixels."""
    con = _connect(staging_dir, units_file)
    _choose_runs(con)
    result = FinalizeResult()
    result.failed_units = _failed_units(con)

    con.execute(
        """
        CREATE TABLE chosen AS
        SELECT s.* FROM staged s JOIN complete c ON s.unit_id = c.unit_id AND s.run = c.run
        WHERE s.kind IN ('record', 'rejection')
        QUALIFY row_number() OVER (PARTITION BY s.id ORDER BY s.piece NULLS LAST, s.staging_tar NULLS LAST) = 1
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
    fs, root = storage.filesystem(out_dir)
    _previous_shards(con, fs, root)
    shards_dir, markers_dir = storage.join(root, "shards"), storage.join(root, ".state", "shards")
    todo = [plan for plan in plans if not _shard_done(fs, plan, shards_dir, markers_dir)]
    result.samples_reread = _bring_back(con, staging_dir, sources, recipe.shards.png_compress_level,
                                        {plan.name for plan in todo})
    plan_file = storage.join(root, ".state", "plan.parquet")
    _write_plan_file(con, fs, plan_file)
    moves = _movable_pieces(con, fs, staging_dir, {plan.name for plan in todo})
    copies = [plan for plan in todo if plan.name not in moves]
    result.bytes_copied = _write_shards(copies, storage.location(fs, plan_file), storage.location(fs, root),
                                        str(staging_dir), use_ray, recipe.execution.placement.get("write"))
    for plan in todo:  # every new shard is written before any is published: old shards may be sources
        final = storage.join(shards_dir, plan.name)
        storage.makedirs(fs, storage.join(shards_dir, group_of_shard(plan.name)))
        fs.mv(moves.get(plan.name) or _tmp(final), final)
        storage.write_text(fs, storage.join(markers_dir, plan.marker),
                           json.dumps({"digest": plan.digest, "samples": plan.samples}))
    result.pieces_moved = len(moves)
    planned = {plan.name for plan in plans}
    for stale in storage.find(fs, shards_dir, ".tar"):  # shards of an earlier, different plan
        if posixpath.relpath(stale, shards_dir) not in planned:
            storage.remove(fs, stale)
            storage.remove(fs, storage.join(markers_dir, f"{posixpath.basename(stale)}.json"))
    if storage.is_local(fs):  # a group the plan no longer has (an object store has no empty folders)
        storage.makedirs(fs, shards_dir)
        for folder in sorted(Path(shards_dir).iterdir()):
            if folder.is_dir() and not any(folder.iterdir()):
                folder.rmdir()
    staging_fs, staging = storage.filesystem(staging_dir)
    for leftover in storage.glob(staging_fs, storage.join(staging, "*.tar")):  # published, or of runs not chosen
        storage.remove(staging_fs, leftover)
    storage.write_text(fs, storage.join(root, CARD_NAME), _card(recipe.name, plans))

    result.bytes_manifest = write_manifest(con, fs, storage.join(root, "manifest"))
    result.shard_bytes = sum(fs.size(storage.join(shards_dir, plan.name)) for plan in plans)
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
    """Per (group, unit, part), greedy packing in id order: a shard closes before it would pass either
    bound; shards are numbered from 0 within each (group, unit, part), which is almost always one shard
    (units.py cuts parts at the shard bounds). A sample's shard depends only on its own unit's rows.

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
        "SELECT shard_group(task_family, members) AS grp, unit_id, coalesce(part, 0) AS part, key, sample, members, "
        "stored_bytes FROM chosen WHERE status = 'kept' ORDER BY grp, unit_id, part, id"
    ).to_arrow_reader(50_000)
    plans: list[ShardPlan] = []
    digest, count, total, where, number = hashlib.blake2b(digest_size=16), 0, 0, None, 0

    def name() -> str:
        return shard_name(recipe.name, where[0], number, unit=where[1], part=where[2])

    def close() -> None:
        plans.append(ShardPlan(name(), digest.hexdigest(), count))

    for batch in reader:
        columns = batch.to_pydict()
        names = []
        for grp, unit, part, key, sample, members, stored in zip(
                columns["grp"], columns["unit_id"], columns["part"], columns["key"], columns["sample"],
                columns["members"], columns["stored_bytes"]):
            entries = json.loads(members)
            size = (stored or 0) + len(sample) + (len(entries) + 1) * TAR_MEMBER_OVERHEAD
            here = (grp, unit, part)
            if count and (here != where or count >= limits.max_samples or total + size > limits.max_bytes):
                close()
                number = 0 if here != where else number + 1
                digest, count, total = hashlib.blake2b(digest_size=16), 0, 0
            where = here
            sizes = [(suffix, length) for suffix, _, length in entries]
            digest.update(f"{key}|{sample}|{sizes}\n".encode())
            count, total = count + 1, total + size
            names.append(name())
        assignment = pa.table({"key": columns["key"], "shard_name": names})
        writer.register("assignment", assignment)
        writer.execute("INSERT INTO shard_of SELECT key, shard_name FROM assignment")
        writer.unregister("assignment")
    if count:
        close()
    con.execute("UPDATE chosen SET shard = shard_of.shard_name FROM shard_of WHERE chosen.key = shard_of.key")
    return plans


def _previous_shards(con: duckdb.DuckDBPyConnection, fs, root: str) -> None:
    """`previous`: the shard each id sat in after the last finalisation (its manifest), a source of bytes."""
    parts = storage.join(root, "manifest", "part-*.parquet")
    if storage.glob(fs, parts):
        con.execute(f"CREATE OR REPLACE TABLE previous AS SELECT id, shard FROM read_parquet("
                    f"'{storage.location(fs, parts)}') WHERE shard IS NOT NULL")
    else:
        con.execute("CREATE OR REPLACE TABLE previous (id VARCHAR, shard VARCHAR)")


def _bring_back(con: duckdb.DuckDBPyConnection, staging_dir: Path, sources: dict[str, SourceLocation] | None,
                png_compress_level: int, todo: set[str]) -> int:
    """Kept samples of the shards to write (`todo`) whose images are in no piece and no earlier shard get a
    piece read from their source."""
    fs, staging = storage.filesystem(str(staging_dir))
    present = pa.table({"name": [posixpath.basename(path) for path in fs.glob(storage.join(staging, "*.tar"))]},
                       schema=pa.schema([("name", pa.string())]))
    con.register("present", present)
    con.register("todo", pa.table({"shard": sorted(todo)}, schema=pa.schema([("shard", pa.string())])))
    rows = con.sql(
        """
        SELECT id, unit_id, source, key, sample, members FROM chosen
        WHERE status = 'kept' AND shard IN (SELECT shard FROM todo) AND id NOT IN (SELECT id FROM previous)
          AND coalesce(piece NOT IN (SELECT name FROM present), true)
          AND coalesce(staging_tar NOT IN (SELECT name FROM present), true)
        ORDER BY id
        """
    ).to_arrow_table().to_pylist()
    con.unregister("present")
    con.unregister("todo")
    if not rows:
        return 0
    if sources is None:
        raise MissingPixels(f"the images of {rows[0]['id']} (and {len(rows) - 1} more) are in no shard of this build: "
                            "rebuild with `unimed build ... --refresh`")
    found = reread_pieces(rows, sources, str(staging_dir), png_compress_level)
    con.register("found", pa.table({"id": list(found), "piece": [v[0] for v in found.values()],
                                    "members": [v[1] for v in found.values()]}))
    con.execute("UPDATE chosen SET piece = found.piece, members = found.members, staging_tar = NULL "
                "FROM found WHERE chosen.id = found.id")
    con.unregister("found")
    log.info("%d kept samples had no images in the build; read again from their sources", len(rows))
    return len(rows)


def _write_plan_file(con: duckdb.DuckDBPyConnection, fs, plan_file: str) -> None:
    """Every kept sample with where its bytes are, sorted by shard so readers skip row groups."""
    tmp = Path(storage.scratch_file(".parquet"))
    con.execute(
        f"""
        COPY (SELECT c.shard, c.key, c.sample, c.members, c.piece, c.staging_tar, p.shard AS previous
              FROM chosen c LEFT JOIN previous p USING (id) WHERE c.status = 'kept' ORDER BY c.shard, c.id)
        TO '{tmp.as_posix()}' (FORMAT parquet, ROW_GROUP_SIZE 2048)
        """
    )
    storage.put_file(fs, tmp, plan_file)


def _movable_pieces(con: duckdb.DuckDBPyConnection, fs, staging_dir: Path, wanted: set[str]) -> dict[str, str]:
    """{shard: piece} for shards whose kept samples are exactly one piece's samples: the piece is the shard.

    A piece holds its samples in id order in final member format (pipeline/engine/staging.py), so when
    no global rule rejected any of them and none sits in another piece, moving it gives the same bytes
    as writing the shard.
    """
    rows = con.execute(
        """
        WITH k AS (SELECT shard, count(*) AS n, count(piece) AS with_piece, count(DISTINCT piece) AS pieces,
                          any_value(piece) AS piece
                   FROM chosen WHERE status = 'kept' GROUP BY shard),
             p AS (SELECT piece, count(*) AS n FROM staged WHERE piece IS NOT NULL GROUP BY piece)
        SELECT k.shard, k.piece FROM k JOIN p USING (piece) WHERE k.pieces = 1 AND k.with_piece = k.n AND p.n = k.n
        """
    ).fetchall()
    moves = {}
    for shard, piece in rows:
        path = storage.join(str(staging_dir), piece)
        if shard in wanted and fs.exists(path):
            moves[shard] = path
    return moves


def _shard_done(fs, plan: ShardPlan, shards_dir: str, markers_dir: str) -> bool:
    marker = storage.join(markers_dir, plan.marker)
    if not (fs.isfile(marker) and fs.isfile(storage.join(shards_dir, plan.name))):
        return False
    try:
        return json.loads(fs.cat_file(marker))["digest"] == plan.digest
    except (ValueError, KeyError):
        return False


def _tmp(path: str) -> str:
    folder, _, name = path.rpartition("/")
    return f"{folder}/.{name}.tmp"


class _Members:
    """Reads a sample's member bytes from a piece, a legacy staging tar, or a shard already published."""

    def __init__(self, fs, root: str, staging_dir: str):
        self.fs, self.root, self.staging_dir = fs, root, staging_dir
        self.shard_index: dict[str, dict[str, tuple[int, int]]] = {}

    def _ranges(self, path: str, ranges: list[tuple[str, int, int]]) -> list[tuple[str, bytes]]:
        with self.fs.open(path, "rb") as handle:
            found = []
            for suffix, offset, size in ranges:
                handle.seek(offset)
                data = handle.read(size)
                if len(data) != size:
                    raise OSError(f"{path} is truncated at offset {offset}")
                found.append((suffix, data))
        return found

    def _index(self, shard: str) -> dict[str, tuple[int, int]]:
        if shard not in self.shard_index:
            path, index = storage.join(self.root, "shards", shard), {}
            if self.fs.isfile(path):
                with self.fs.open(path, "rb") as handle, tarfile.open(fileobj=handle, mode="r:") as tar:
                    index = {m.name: (m.offset_data, m.size) for m in tar.getmembers() if m.isfile()}
            self.shard_index[shard] = index
        return self.shard_index[shard]

    def read(self, row: dict, shard: str) -> list[tuple[str, bytes]]:
        entries = json.loads(row["members"] or "[]")
        for holder in (row["piece"], row["staging_tar"]):
            path = holder and storage.join(self.staging_dir, holder)
            if path and self.fs.exists(path):
                return self._ranges(path, [tuple(entry) for entry in entries])
        for candidate in dict.fromkeys(c for c in (shard, row["previous"]) if c):
            index = self._index(candidate)
            names = [f"{row['key']}.{suffix}" for suffix, _, _ in entries]
            if all(name in index for name in names):
                return self._ranges(storage.join(self.root, "shards", candidate),
                                    [(suffix, *index[name]) for (suffix, _, _), name in zip(entries, names)])
        raise MissingPixels(f"the images of {row['key']} are in no piece and no shard of this build: "
                            "rebuild with `unimed build ... --refresh`")


def write_shard(plan: ShardPlan, plan_file: str, root: str, staging_dir: str) -> int:
    """Write one shard under its temporary name (`_tmp`) from wherever its samples' bytes are; return its size."""
    fs, root = storage.filesystem(root)
    plan_fs, plan_path = storage.filesystem(plan_file)
    rows = pq.read_table(plan_path, filesystem=plan_fs, filters=[("shard", "=", plan.name)],
                         columns=["key", "sample", "members", "piece", "staging_tar", "previous"]).to_pylist()
    if len(rows) != plan.samples:
        raise RuntimeError(f"plan file lists {len(rows)} samples for {plan.name}, expected {plan.samples}")
    members = _Members(fs, root, staging_dir)
    buffer = io.BytesIO()
    write_samples(buffer, ((row["key"], row["sample"].encode("utf-8"), members.read(row, plan.name))
                           for row in rows))
    storage.write_bytes(fs, _tmp(storage.join(root, "shards", plan.name)), buffer.getvalue())
    return buffer.tell()


def _write_shards(plans: list[ShardPlan], plan_file: str, root: str, staging_dir: str, use_ray: bool,
                  resources: dict[str, float] | None = None) -> int:
    """Write the shards no piece can become, in parallel (on the recipe's writer nodes); the bytes written."""
    if not plans:
        return 0
    args = (plan_file, root, staging_dir)
    if use_ray:
        import ray

        remote = ray.remote(max_retries=3, resources=resources or None)(write_shard)
        return sum(ray.get([remote.remote(plan, *args) for plan in plans]))
    return sum(write_shard(plan, *args) for plan in plans)


def _card(recipe_name: str, plans: list[ShardPlan]) -> str:
    """README.md with `configs:` front matter, so `datasets.load_dataset(out_dir, group)` loads a group."""
    groups: dict[str, int] = {}
    for plan in plans:
        group = group_of_shard(plan.name)
        groups[group] = groups.get(group, 0) + plan.samples
    return dataset_card(recipe_name, groups)


def write_manifest(con: duckdb.DuckDBPyConnection, fs, manifest_dir: str) -> int:
    """Every chosen row, in id order, in parts of MANIFEST_ROWS_PER_FILE, each built in a scratch file and
    published whole; returns the bytes written."""
    storage.makedirs(fs, manifest_dir)
    columns = ", ".join(f'"{name}"' for name in MANIFEST_SCHEMA.names)
    reader = con.sql(f"SELECT {columns} FROM chosen ORDER BY id").to_arrow_reader(100_000)
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
