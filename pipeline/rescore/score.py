"""`unimed score`: alignment scores for a finished build, read back from its shards.

Two scorings, each through the very stages and cache a build uses (pipeline/engine/plan.alignment_stages, filters/alignment/cache.py):

- `biomedclip`: the BiomedCLIP image-text cosine of every kept sample (the score the paper reports
  for generated images) into `align_bmc`. The manifest Parquet files and the staged rows are
  rewritten (temporary names, then renamed); shards are not touched.
- `alignment`: the full F_align raw scores (MedGemma captions -> E5 S, MedSigLIP M[, BiomedCLIP]) of
  a build made without `--align`. The staged rows with the scores become the staging area of the
  aligned recipe; the cut is then applied by finalisation, as `unimed rethreshold` does. With
  `cut=False` nothing is rejected (keep_fraction 1, unscored kept), so shards keep their bytes, and
  a later `unimed rethreshold --keep-fraction 0.5 --unscored reject` makes the cut.

The scored text follows the recipe's text policy; the scored image is the sample's first image (the
input of an I2T pair, the output of a T2I pair). Cache keys are computed from the manifest alone
(the `pixel_hash` of that image and the text in `sample`), so pairs the cache already holds are
never read from a shard, and a run that finds every pair cached needs no model weights at all.
Only the shards holding pairs still to be scored are read, on Ray Data, one task per shard.
"""

from __future__ import annotations

import copy
import io
import json
import logging
import os
import pickle
import posixpath
import shutil
import tarfile
from dataclasses import dataclass, field
from pathlib import Path

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from filters.alignment.cache import CACHE_SCHEMA, cache_relation, prepare
from filters.alignment.pairs import BIOMEDCLIP, KEY, score_columns, scorer_digest
from filters.settings import AlignmentSettings
from manifests import storage
from manifests.records import Image, Record
from manifests.schema import ALIGN_RAW_COLUMNS, ALIGNMENT_COLUMNS
from pipeline.config import Recipe
from pipeline.engine.plan import alignment_stages
from pipeline.engine.ray_setup import map_stages
from pipeline.rescore.rethreshold import load_build_recipe, previous_models, refinalize

log = logging.getLogger(__name__)

MODES = ("alignment", BIOMEDCLIP)
BIOMEDCLIP_MODEL = "microsoft/BiomedCLIP-PubMedBERT_256-vit_base_patch16_224"
PLAN_BATCH = 50_000  # manifest rows turned into cache keys at a time
COLUMN_TYPES = {name: ALIGNMENT_COLUMNS[name] for name in ALIGN_RAW_COLUMNS}


@dataclass
class ScoreReport:
    build_dir: Path
    only: str
    pairs: int = 0  # kept samples the text policy scores
    exempt: int = 0  # kept samples it does not (no score, no cut)
    cached: int = 0  # pairs served from the score cache
    scored: int = 0  # pairs sent to the models in this run
    missing: int = 0  # pairs to score whose sample was not found in its shard
    shards_read: int = 0
    models: dict = field(default_factory=dict)  # role -> model, path, demo (empty when all were cached)
    finalized: object = None  # the BuildReport of the re-finalisation (alignment only)


def score_build(build_dir: Path | str, only: str = "alignment", models_dir: str | None = None,
                ray_address: str | None = None, cut: bool = True) -> ScoreReport:
    """Score the kept samples of the build in `build_dir`, a folder or a URL (see the module docstring)."""
    if only not in MODES:
        raise ValueError(f"only must be one of {MODES}, not {only!r}")
    build_dir = storage.as_location(build_dir)
    fs, root = storage.filesystem(build_dir)
    recipe, resolved_sources = load_build_recipe(build_dir)
    mode = BIOMEDCLIP if only == BIOMEDCLIP else None
    settings = copy.deepcopy(recipe.alignment)
    settings.enabled = True
    if models_dir:
        settings.models_dir = models_dir
    if mode and not settings.biomedclip.model:
        settings.biomedclip.model = BIOMEDCLIP_MODEL
    cache_dir = storage.location(fs, storage.join(root, ".state", "align_cache"))
    columns = score_columns(settings, mode)
    report = ScoreReport(build_dir, only)

    from manifests.query import manifest_glob

    con = storage.duckdb_connect(fs, duckdb.connect())
    con.execute(f"SET threads TO {max(1, os.cpu_count() or 1)}")
    manifest = manifest_glob(build_dir).replace("'", "''")
    _plan(con, manifest, settings, mode)
    _lookup_cache(con, cache_dir, scorer_digest(settings, mode), columns)
    report.pairs, report.exempt, report.cached = con.execute(
        "SELECT count(cache_key), count(*) - count(cache_key), (SELECT count(*) FROM hits) FROM plan").fetchall()[0]

    fresh = Path(storage.scratch_file(".parquet"))  # this run's new scores, on the driver's disk
    try:
        pending, shards = con.execute("SELECT count(*), count(DISTINCT shard) FROM plan WHERE cache_key IS NOT NULL "
                                      "AND id NOT IN (SELECT id FROM hits)").fetchall()[0]
        if pending:
            report.models = _describe(settings, mode)  # a missing model fails here, before any work
            report.shards_read = shards
            _run(con, manifest, storage.location(fs, storage.join(root, "shards")), recipe, settings, mode, cache_dir,
                 columns, fresh, ray_address)
            con.execute(f"CREATE TABLE fresh AS SELECT * FROM read_parquet('{_sql_path(fresh)}')")
        else:
            con.execute(f"CREATE TABLE fresh AS SELECT '' AS id, {_nulls(columns)} LIMIT 0")
        report.scored = con.execute("SELECT count(*) FROM fresh").fetchall()[0][0]
        report.missing = pending - report.scored
        if report.missing:
            log.warning("%d samples to score were not found in their shards; they stay without a score",
                        report.missing)
        # Exempt samples get their reason (`exempt`); a BiomedCLIP-only scoring leaves them as they are.
        exempt = "" if mode else "UNION ALL BY NAME SELECT id, align_reason FROM plan WHERE cache_key IS NULL"
        con.execute(f"CREATE TABLE scores AS SELECT * FROM hits UNION ALL BY NAME SELECT * FROM fresh {exempt}")
        if mode:
            _write_bmc(con, build_dir, recipe)
        else:
            report.finalized = _finalize_aligned(con, build_dir, recipe, resolved_sources, settings, columns, cut,
                                                 report.models)
    finally:
        fresh.unlink(missing_ok=True)
    return report


def _sql_path(path: Path) -> str:
    return path.as_posix().replace("'", "''")


def _nulls(columns: tuple[str, ...]) -> str:
    types = {pa.float32(): "FLOAT", pa.string(): "VARCHAR"}
    return ", ".join(f"CAST(NULL AS {types[COLUMN_TYPES[c]]}) AS {c}" for c in columns)


def _manifest_record(row: dict) -> tuple[Record, list[str], list[str]]:
    """A kept manifest row as a `Record` (no pixels; its first image carries only its `pixel_hash`).

    Enough for the text policy and the cache key; the image paths say which shard members it has.
    """
    sample = json.loads(row["sample"])
    inputs = [ref["path"] for ref in sample.get("input_img") or []]
    outputs = [ref["path"] for ref in sample.get("output_img") or []]
    first = Image(width=row["width"] or 0, height=row["height"] or 0, bit_depth=8, channels=1,
                  pixel_hash=row["pixel_hash"] or "", pixel_std=0.0, format="png")
    record = Record(id=row["id"], source=row["source"], split=row["split"], modality=row["modality"],
                    task_family=row["task_family"], main_task_type=row["main_task_type"],
                    sub_task_type=row["sub_task_type"], message=sample.get("message") or [],
                    input_images=[first] if inputs else [], output_images=[] if inputs or not outputs else [first],
                    status="kept")
    return record, inputs, outputs


def _plan(con, manifest: str, settings: AlignmentSettings, mode: str | None) -> None:
    """Table `plan`: per kept sample, its shard and key, its cache key (NULL: not scored) and why not."""
    reader = con.sql(
        f"SELECT id, key, shard, source, split, modality, task_family, main_task_type, sub_task_type, width, height, "
        f"pixel_hash, sample FROM read_parquet('{manifest}') WHERE status = 'kept' ORDER BY id"
    ).to_arrow_reader(PLAN_BATCH)
    schema = pa.schema([("id", pa.string()), ("shard", pa.string()), ("key", pa.string()),
                        ("cache_key", pa.string()), ("align_reason", pa.string())])
    tables = []
    for batch in reader:
        rows = batch.to_pylist()
        records = [_manifest_record(row)[0] for row in rows]
        prepare(records, settings, None, mode)
        tables.append(pa.Table.from_pylist(
            [{"id": row["id"], "shard": row["shard"], "key": row["key"], "cache_key": record.scores.get(KEY),
              "align_reason": None if KEY in record.scores else record.scores.get("align_reason")}
             for row, record in zip(rows, records)], schema=schema))
    plan = pa.concat_tables(tables) if tables else schema.empty_table()
    con.register("plan_arrow", plan)
    con.execute("CREATE TABLE plan AS SELECT * FROM plan_arrow")
    con.unregister("plan_arrow")


def _lookup_cache(con, cache_dir: Path, digest: str, columns: tuple[str, ...]) -> None:
    """Table `hits`: the cached raw scores of planned pairs (one row per sample id)."""
    cached = [c for c in columns if c in CACHE_SCHEMA.names]
    relation = cache_relation(con, cache_dir, digest)
    if relation is None:
        con.execute(f"CREATE TABLE hits AS SELECT '' AS id, {_nulls(tuple(cached))} LIMIT 0")
        return
    names = ", ".join(f"c.{c}" for c in cached)
    con.execute(f"""
        CREATE TABLE hits AS SELECT p.id, {names}
        FROM plan p JOIN {relation} c ON p.cache_key = c.key
        QUALIFY row_number() OVER (PARTITION BY p.id ORDER BY c._cache_order) = 1
    """)


def _describe(settings: AlignmentSettings, mode: str | None) -> dict:
    from filters.alignment.pairs import describe_models

    if mode == BIOMEDCLIP:
        only_bmc = copy.deepcopy(settings)
        only_bmc.captioner.model = only_bmc.embedder.model = only_bmc.siglip.model = ""
        return describe_models(only_bmc)
    return describe_models(settings)


def _run(con, manifest: str, shards_dir: str, recipe: Recipe, settings: AlignmentSettings, mode: str | None,
         cache_dir: Path, columns: tuple[str, ...], out: Path, ray_address: str | None) -> None:
    """Ray Data: one task per shard reads the pending samples -> the alignment stages -> score rows."""
    import ray.data

    from pipeline.engine.ray_setup import ensure_ray

    rows = con.sql(
        "SELECT p.shard, p.key, m.* FROM plan p JOIN (SELECT id, source, split, modality, task_family, "
        "main_task_type, sub_task_type, width, height, pixel_hash, sample FROM read_parquet("
        f"'{manifest}')) m USING (id) "
        "WHERE p.cache_key IS NOT NULL AND p.id NOT IN (SELECT id FROM hits) ORDER BY p.shard, p.key"
    ).to_arrow_table().to_pylist()
    items: dict[str, dict] = {}
    for row in rows:
        items.setdefault(row["shard"], {})[row["key"]] = _manifest_record(row)
    tasks = [{"shard": storage.join(shards_dir, shard), "samples": pickle.dumps(samples, protocol=5)}
             for shard, samples in sorted(items.items())]

    ensure_ray(ray_address)
    context = ray.data.DataContext.get_current()
    context.enable_progress_bars = False
    retries = recipe.execution.max_task_retries
    ds = ray.data.from_items(tasks, override_num_blocks=len(tasks))
    ds = ds.map_batches(read_shard_samples, batch_size=1, max_retries=retries,
                        fn_kwargs={"rows_per_batch": recipe.execution.batch_size,
                                   "bytes_per_batch": getattr(recipe.execution, "batch_bytes", 64 << 20)})
    ds = map_stages(ds, alignment_stages(settings, str(cache_dir), mode), retries)
    ds = ds.map_batches(score_rows, batch_size=None, fn_kwargs={"columns": columns})
    schema = pa.schema([("id", pa.string())] + [(c, COLUMN_TYPES[c]) for c in columns])
    with pq.ParquetWriter(out, schema) as writer:
        for batch in ds.iter_batches(batch_size=None, batch_format="pyarrow"):
            writer.write_table(batch.select(schema.names).cast(schema))


def read_shard_samples(batch: dict[str, np.ndarray], rows_per_batch: int,
                       bytes_per_batch: int):
    """Ray Data UDF: one shard in, its pending samples out as record rows, in bounded batches."""
    from webdataset.tariterators import group_by_keys, tar_file_expander

    from manifests.images import ImageDecodeError, decode_bytes

    for path, blob in zip(batch["shard"], batch["samples"]):
        samples: dict[str, tuple[Record, list[str], list[str]]] = pickle.loads(blob)
        pending, size = [], 0
        with storage.open_input(path) as stream:  # a local file, or the shard streamed from object storage
            for sample in group_by_keys(tar_file_expander([{"stream": stream, "url": str(path)}])):
                if sample["__key__"] not in samples:
                    continue
                record, inputs, outputs = samples[sample["__key__"]]
                try:
                    first_hash = record.images[0].pixel_hash
                    record.input_images = [decode_bytes(sample[p], source_path=f"{path}:{p}") for p in inputs]
                    record.output_images = [decode_bytes(sample[p], source_path=f"{path}:{p}") for p in outputs]
                    # The cache key is the manifest's hash of the image as staged (decoding a 16-bit RGB
                    # PNG, stored with 8 bits, would give another), so a build and `score` share entries.
                    record.images[0].pixel_hash = first_hash
                except (ImageDecodeError, KeyError, tarfile.TarError) as err:
                    log.warning("%s: sample %s unreadable: %s", path, sample["__key__"], err)
                    record.input_images, record.output_images = [], []
                pending.append(record)
                size += sum(len(sample[p]) for p in inputs + outputs if p in sample)
                if len(pending) >= rows_per_batch or size >= bytes_per_batch:
                    yield _record_rows(pending, posixpath.basename(path))
                    pending, size = [], 0
        if pending:
            yield _record_rows(pending, posixpath.basename(path))


def _record_rows(records: list[Record], shard: str) -> dict[str, np.ndarray]:
    """The stage row format (`id`, `unit_id`, `kind`, `blob`), the shard standing in for the unit."""
    return {"id": np.array([r.id for r in records], dtype=object),
            "unit_id": np.array([shard] * len(records), dtype=object),
            "kind": np.array(["record"] * len(records), dtype=object),
            "blob": np.array([pickle.dumps(r, protocol=5) for r in records], dtype=object)}


def score_rows(batch: dict[str, np.ndarray], columns: tuple[str, ...]) -> pa.Table:
    """Ray Data UDF: record rows in, small score rows out (no pixels travel back to the driver)."""
    out: dict[str, list] = {"id": [], **{c: [] for c in columns}}
    for kind, blob in zip(batch["kind"], batch["blob"]):
        if kind != "record":
            continue
        record: Record = pickle.loads(blob)
        out["id"].append(record.id)
        for column in columns:
            out[column].append(record.scores.get(column))
    schema = pa.schema([("id", pa.string())] + [(c, COLUMN_TYPES[c]) for c in columns])
    return pa.Table.from_pydict(out, schema=schema)


def _update_file(con, fs, source: str, target: str, columns: tuple[str, ...], where: str = "") -> str | None:
    """Write `source` with `columns` taken from table `scores` (matching id) to a temporary file (next to
    `target` locally, a scratch file for object storage); its name, or None, writing nothing, when no row of
    it is scored. `_publish` puts it in place."""
    table = pq.read_table(source) if storage.is_local(fs) else pq.read_table(io.BytesIO(storage.read_bytes(fs, source)))
    con.register("part", table.append_column("__row", pa.array(np.arange(table.num_rows))))
    try:
        if not con.execute("SELECT count(*) FROM part p SEMI JOIN scores s ON p.id = s.id").fetchall()[0][0]:
            return None
        replaced = ", ".join(f"CASE WHEN s.id IS NULL THEN p.{c} ELSE s.{c} END AS {c}" for c in columns)
        result = con.sql(f"SELECT p.* REPLACE ({replaced}) FROM part p LEFT JOIN scores s "
                         f"ON p.id = s.id {where} ORDER BY p.__row").to_arrow_table()
    finally:
        con.unregister("part")
    result = result.select(table.schema.names).cast(table.schema)
    written = _tmp(target) if storage.is_local(fs) else storage.scratch_file(".parquet")
    pq.write_table(result, written)
    return written


def _tmp(path: str) -> str:
    folder, name = posixpath.split(path)
    return posixpath.join(folder, f".{name}.tmp")


def _publish(fs, written: list[tuple[str, str]]) -> None:
    """(temporary file, target) pairs into place: a rename locally, an upload (one PUT each) on a store."""
    for tmp, target in written:
        if storage.is_local(fs):
            os.replace(tmp, target)
        else:
            storage.put_file(fs, tmp, target)


def _write_bmc(con, build_dir: Path | str, recipe: Recipe) -> None:
    """`align_bmc` into the staged rows (so a later finalisation keeps it) and the manifest."""
    fs, root = storage.filesystem(build_dir)
    staging = storage.join(root, ".state", "staging", recipe.processing_digest())
    staged = [(tmp, p) for p in storage.glob(fs, storage.join(staging, "*.parquet"))
              if (tmp := _update_file(con, fs, p, p, ("align_bmc",), "AND p.kind = 'record'"))]
    manifest = [(tmp, p) for p in storage.glob(fs, storage.join(root, "manifest", "part-*.parquet"))
                if (tmp := _update_file(con, fs, p, p, ("align_bmc",)))]
    _publish(fs, staged)  # every file is written before any is put in place: a failure leaves the old ones
    _publish(fs, manifest)


def _link(fs, source: str, target: str) -> None:
    """`target` holds `source`'s bytes: a hard link (no copy) where the file system allows; a copy inside the
    store (no download) on object storage."""
    if not storage.is_local(fs):
        if not (fs.isfile(target) and fs.size(target) == fs.size(source)):
            fs.copy(source, target)
        return
    if os.path.exists(target) and os.path.samefile(source, target):
        return
    tmp = _tmp(target)
    if os.path.exists(tmp):
        os.unlink(tmp)
    try:
        os.link(source, tmp)
    except OSError:  # another file system, or no hard links: copy
        shutil.copyfile(source, tmp)
    os.replace(tmp, target)


def _finalize_aligned(con, build_dir: Path | str, recipe: Recipe, resolved_sources: dict, settings: AlignmentSettings,
                      columns: tuple[str, ...], cut: bool, models: dict):
    """The staging area of the aligned recipe (staged bytes linked, rows with scores), then finalise."""
    aligned = copy.deepcopy(recipe)
    aligned.alignment = copy.deepcopy(settings)
    if not cut:
        aligned.alignment.keep_fraction, aligned.alignment.unscored = 1.0, "keep"
    fs, root = storage.filesystem(build_dir)
    source = storage.join(root, ".state", "staging", recipe.processing_digest())
    target = storage.join(root, ".state", "staging", aligned.processing_digest())
    storage.makedirs(fs, target)
    if target != source:
        for tar in storage.glob(fs, storage.join(source, "*.tar")):
            _link(fs, tar, storage.join(target, posixpath.basename(tar)))
    written = []
    for part in storage.glob(fs, storage.join(source, "*.parquet")):
        name = storage.join(target, posixpath.basename(part))
        tmp = _update_file(con, fs, part, name, columns, "AND p.kind = 'record'")
        if tmp:
            written.append((tmp, name))
        elif target != source:
            _link(fs, part, name)
    _publish(fs, written)
    return refinalize(build_dir, aligned, resolved_sources, models or previous_models(build_dir))
