"""Medical alignment F_align (spec 3.2): which text and image of a pair are scored, the score cache,
and the decision (normalise S and M, S_final = lambda * S + M, keep the top fraction).

Score first, decide later. The model stages (medgemma, e5, medsiglip, biomedclip) only write score
columns. The cut needs every score, so it runs at finalisation over the staged rows (`apply_cut`),
and again, with new settings and without any model, in `unimed rethreshold`.

Text policy (the paper does not say how pairs without free text are scored): per task family,
sub-task or source, the scored text is the answer turns (captions, reports), the prompt turns
(text-to-image), question and answer together (VQA), or the pair is exempt (templated interleaved
prompts): exempt pairs are neither scored nor cut.

Cache: raw scores are stored per (scoring settings, image pixels, scored text) under the build's
`.state/align_cache/`, so a rebuild with new sources or thresholds never rescores an old pair. Only
complete scores are cached: a pair whose captioner failed is tried again next build. Workers append
one Parquet file per batch; at the start of each scoring the driver folds those files into one
DuckDB table indexed by key (`compact_cache`), and lookups probe that index only: a batch's lookup
is an index probe, not a scan of everything ever cached (which grew with the square of the corpus).

What is scored (`only`): None, the full F_align (every model stage); or "biomedclip", the BiomedCLIP
column alone (`unimed score --only biomedclip`), cached in a folder of its own.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import os
import re
from pathlib import Path
from typing import ClassVar

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from pipeline.config import AlignmentSettings, ModelResources
from pipeline.records import IMAGE_TOKEN, Image, Record
from pipeline.stages import Stage

log = logging.getLogger(__name__)

# Raw score columns a model stage writes into `record.scores` (and the manifest keeps).
RAW_COLUMNS = ("align_s_raw", "align_m_logit", "align_m_prob", "align_bmc", "align_reason", "align_caption")
EXEMPT = "exempt"
CUT_REASON = "alignment_below_cut"
UNSCORED_REASON = "alignment_unscored"
# Transient per-record keys (pickled between stages, never written to the manifest).
TEXT, KEY, TODO, CAPTIONS = "_align_text", "_align_key", "_align_todo", "_align_captions"

CACHE_SCHEMA = pa.schema([("key", pa.string()), ("align_s_raw", pa.float32()), ("align_m_logit", pa.float32()),
                          ("align_m_prob", pa.float32()), ("align_bmc", pa.float32()),
                          ("align_caption", pa.string()), ("captions", pa.string())])


def text_policy(record: Record, settings: AlignmentSettings) -> str:
    for table, value in ((settings.policy_by_source, record.source),
                         (settings.policy_by_sub_task, record.sub_task_type),
                         (settings.policy_by_family, record.task_family)):
        if value in table:
            return table[value]
    return EXEMPT  # a task nobody named is not scored: say so in the recipe to score it


def scored_text(record: Record, policy: str) -> str | None:
    roles = {"answer": ("gpt",), "prompt": ("human",), "question_answer": ("human", "gpt")}.get(policy)
    if roles is None:
        return None
    parts = [turn["value"].replace(IMAGE_TOKEN, " ") for turn in record.message if turn["from"] in roles]
    return " ".join(" ".join(parts).split())


def scored_image(record: Record) -> Image | None:
    """The first image of the sample: the input of an I2T pair, the output of a T2I pair."""
    images = record.images
    return images[0] if images else None


def to_pil(image: Image):
    """8-bit RGB for a model's own preprocessing; 16-bit data is min-max windowed (display only)."""
    from PIL import Image as PILImage

    from sources.io.image import load_pixels

    pixels = load_pixels(image)
    if pixels.dtype != np.uint8:
        values = pixels.astype(np.float32)
        low, high = float(values.min()), float(values.max())
        values = (values - low) / (high - low) * 255.0 if high > low else np.zeros_like(values)
        pixels = values.round().astype(np.uint8)
    if pixels.ndim == 3 and pixels.shape[2] == 1:
        pixels = pixels[:, :, 0]
    if pixels.ndim == 3 and pixels.shape[2] == 4:
        pixels = pixels[:, :, :3]
    return PILImage.fromarray(pixels).convert("RGB")


BIOMEDCLIP = "biomedclip"


def scorer_digest(settings: AlignmentSettings, only: str | None = None) -> str:
    """The cache folder of a scoring: it names every setting that changes the raw scores."""
    if only == BIOMEDCLIP:
        text = json.dumps({"biomedclip_only": settings.biomedclip.model})
        return "bmc-" + hashlib.blake2b(text.encode(), digest_size=8).hexdigest()
    text = json.dumps(settings.scoring_digest(), sort_keys=True)
    return hashlib.blake2b(text.encode(), digest_size=8).hexdigest()


def score_columns(settings: AlignmentSettings, only: str | None = None) -> tuple[str, ...]:
    """The raw manifest columns a scoring fills."""
    if only == BIOMEDCLIP:
        return ("align_bmc",)
    return tuple(c for c in RAW_COLUMNS if c != "align_bmc" or settings.biomedclip.model)


def is_complete(scores: dict, settings: AlignmentSettings, only: str | None = None) -> bool:
    """Every model of the scoring gave a value: only then is a pair cached."""
    if only == BIOMEDCLIP:
        return scores.get("align_bmc") is not None
    if scores.get("align_s_raw") is None or scores.get("align_m_logit") is None:
        return False
    return not settings.biomedclip.model or scores.get("align_bmc") is not None


def cache_key(image: Image, text: str) -> str:
    return hashlib.blake2b(f"{image.pixel_hash}\0{text}".encode(), digest_size=16).hexdigest()


def prepare(records: list[Record], settings: AlignmentSettings, cache_dir: str | None,
            only: str | None = None) -> None:
    """Mark each coarse-kept record: exempt, filled from the cache, or to be scored by the models."""
    pending: dict[str, list[Record]] = {}
    for record in records:
        if record.status != "kept":
            continue  # only pairs that passed the coarse filters are scored
        policy = text_policy(record, settings)
        text = scored_text(record, policy)
        image = scored_image(record)
        if text is None or image is None or not text:
            record.scores["align_reason"] = EXEMPT if text is None else "alignment_no_text_or_image"
            continue
        key = cache_key(image, text)
        record.scores.update({TEXT: text, KEY: key, TODO: True})
        pending.setdefault(key, []).append(record)
    if not pending or not cache_dir:
        return
    columns = score_columns(settings, only)
    for row in read_cache(cache_dir, scorer_digest(settings, only), list(pending)):
        for record in pending[row["key"]]:
            record.scores.update({column: row[column] for column in columns if column in CACHE_SCHEMA.names})
            record.scores[TODO] = False


CACHE_INDEX = "index.duckdb"
HEX_KEY = re.compile(r"[0-9a-f]{32}")


def _sql_path(path: Path) -> str:
    return path.as_posix().replace("'", "''")


def compact_cache(cache_dir: str, digest: str) -> int:
    """Fold a scorer's per-batch cache files into its indexed table; returns the rows it now holds.

    The new table is written beside the old one and renamed over it, then the folded files are
    deleted: a crash at any point leaves either the old table and the files, or the new table
    (files folded twice are harmless: the first score of a key wins, so a decision never moves).
    """
    import duckdb

    folder = Path(cache_dir) / digest
    files = sorted(folder.glob("*.parquet"))
    if not files:
        return 0
    index, tmp = folder / CACHE_INDEX, folder / f".{CACHE_INDEX}.tmp"
    tmp.unlink(missing_ok=True)
    listed = ", ".join(f"'{_sql_path(path)}'" for path in files)
    con = duckdb.connect(str(tmp))
    try:
        parts = [f"SELECT *, 1 AS _batch_order, filename AS _file FROM read_parquet([{listed}], filename = true)"]
        if index.exists():
            con.execute(f"ATTACH '{_sql_path(index)}' AS previous (READ_ONLY)")
            parts.insert(0, "SELECT *, 0 AS _batch_order, '' AS _file FROM previous.scores")
        con.execute(f"""
            CREATE TABLE scores AS SELECT * EXCLUDE (_batch_order, _file)
            FROM ({" UNION ALL BY NAME ".join(parts)})
            QUALIFY row_number() OVER (PARTITION BY key ORDER BY _batch_order, _file) = 1
            ORDER BY key""")
        con.execute("CREATE UNIQUE INDEX scores_key ON scores (key)")
        rows = con.execute("SELECT count(*) FROM scores").fetchone()[0]
    finally:
        con.close()
    os.replace(tmp, index)
    for path in files:
        path.unlink(missing_ok=True)
    return rows


def read_cache(cache_dir: str, digest: str, keys: list[str]) -> list[dict]:
    """The cached rows of `keys`, by index probes into the compacted table."""
    index = Path(cache_dir) / digest / CACHE_INDEX
    if not keys or not index.exists():
        return []
    import duckdb

    if not all(HEX_KEY.fullmatch(key) for key in keys):
        raise ValueError("cache keys are 32 hex digits")
    con = duckdb.connect(str(index), read_only=True)
    try:
        # a constant IN list is answered from the key index; a join would scan the table
        cursor = con.execute(f"SELECT * FROM scores WHERE key IN ({', '.join(repr(key) for key in keys)})")
        names = [column[0] for column in cursor.description]
        return [dict(zip(names, row)) for row in cursor.fetchall()]
    finally:
        con.close()


def cache_relation(con, cache_dir: str | Path, digest: str) -> str | None:
    """SQL over everything cached for a scorer (indexed table and files not yet folded), or None.

    Its `_cache_order` column is 0 for the table and 1 for files: order by it so that, as in
    `compact_cache`, the first score of a key wins."""
    folder = Path(cache_dir) / digest
    parts = []
    if (folder / CACHE_INDEX).exists():
        alias = f"cache_{digest.replace('-', '_')}"
        if not con.execute("SELECT count(*) FROM duckdb_databases() WHERE database_name = ?", [alias]).fetchone()[0]:
            con.execute(f"ATTACH '{_sql_path(folder / CACHE_INDEX)}' AS {alias} (READ_ONLY)")
        parts.append(f"SELECT *, 0 AS _cache_order FROM {alias}.scores")
    if any(folder.glob("*.parquet")):
        parts.append(f"SELECT *, 1 AS _cache_order FROM read_parquet('{_sql_path(folder)}/*.parquet')")
    return f"({' UNION ALL BY NAME '.join(parts)})" if parts else None


def write_cache(records: list[Record], settings: AlignmentSettings, cache_dir: str, only: str | None = None) -> int:
    """Append the complete scores computed in this batch; one file per batch, renamed into place."""
    rows = []
    for record in records:
        scores = record.scores
        if not scores.get(TODO) or not is_complete(scores, settings, only):
            continue
        rows.append({"key": scores[KEY], **{c: scores.get(c) for c in CACHE_SCHEMA.names if c in RAW_COLUMNS},
                     "captions": json.dumps(scores.get(CAPTIONS) or [], ensure_ascii=False)})
    if not rows:
        return 0
    folder = Path(cache_dir) / scorer_digest(settings, only)
    folder.mkdir(parents=True, exist_ok=True)
    name = hashlib.blake2b("|".join(sorted(r["key"] for r in rows)).encode(), digest_size=12).hexdigest()
    tmp = folder / f".{name}.parquet.tmp"
    pq.write_table(pa.Table.from_pylist(rows, schema=CACHE_SCHEMA), tmp)
    os.replace(tmp, folder / f"{name}.parquet")
    return len(rows)


def _scope(scope: str) -> str:
    return {"global": "1", "source": "source", "modality": "modality"}[scope]


def apply_cut(con, settings: AlignmentSettings, table: str = "chosen") -> dict[str, int]:
    """Normalise S and M, combine, and reject everything below the top `keep_fraction` per scope.

    Works on a DuckDB table of manifest rows with the raw score columns. Exempt rows stay as they
    are; scored rows whose S or M is null are rejected (`alignment_unscored`) or kept, per recipe.
    Ties at the cut are broken by id, so the same scores always give the same decision.
    """
    m_column = "align_m_logit" if settings.m_score == "logit" else "align_m_prob"
    scored = (f"status = 'kept' AND align_reason IS DISTINCT FROM '{EXEMPT}' "
              f"AND align_s_raw IS NOT NULL AND {m_column} IS NOT NULL")
    unscored = (f"status = 'kept' AND (align_reason IS NULL OR align_reason <> '{EXEMPT}') "
                f"AND (align_s_raw IS NULL OR {m_column} IS NULL)")
    counts = {"unscored": con.execute(f"SELECT count(*) FROM {table} WHERE {unscored}").fetchone()[0]}
    con.execute(f"UPDATE {table} SET align_s = NULL, align_m = NULL, align_final = NULL")
    if settings.unscored == "reject":
        con.execute(f"UPDATE {table} SET status = 'rejected', reason = '{UNSCORED_REASON}', "
                    f"detail = coalesce(align_reason, 'no alignment score') WHERE {unscored}")
    norm_part, keep_part = _scope(settings.normalize_scope), _scope(settings.keep_scope)
    if settings.normalize == "minmax":
        def norm(column: str) -> str:
            window = f"OVER (PARTITION BY {norm_part})"
            return (f"coalesce(({column} - min({column}) {window}) / "
                    f"nullif(max({column}) {window} - min({column}) {window}, 0), 0.5)")
    else:
        def norm(column: str) -> str:
            return f"percent_rank() OVER (PARTITION BY {norm_part} ORDER BY {column})"
    con.execute(
        f"""
        UPDATE {table} SET align_s = n.s, align_m = n.m, align_final = ? * n.s + n.m
        FROM (SELECT id, {norm('align_s_raw')} AS s, {norm(m_column)} AS m FROM {table} WHERE {scored}) n
        WHERE {table}.id = n.id
        """,
        [settings.lambda_s],
    )
    con.execute(
        f"""
        UPDATE {table} SET status = 'rejected', reason = '{CUT_REASON}',
               detail = printf('align_final %.4f ranks %d of %d in its %s scope; top %.0f%% kept',
                               r.final, r.rank, r.n, '{settings.keep_scope}', ? * 100)
        FROM (
            SELECT id, align_final AS final,
                   row_number() OVER (PARTITION BY {keep_part} ORDER BY align_final DESC, id) AS rank,
                   count(*) OVER (PARTITION BY {keep_part}) AS n
            FROM {table} WHERE align_final IS NOT NULL AND status = 'kept'
        ) r
        WHERE {table}.id = r.id AND r.rank > ceil(? * r.n)
        """,
        [settings.keep_fraction, settings.keep_fraction],
    )
    counts["below_cut"] = con.execute(f"SELECT count(*) FROM {table} WHERE reason = '{CUT_REASON}'").fetchone()[0]
    counts["scored"] = con.execute(f"SELECT count(*) FROM {table} WHERE align_final IS NOT NULL").fetchone()[0]
    return counts


class PrepareStage(Stage):
    """Task stage before the models: policy, cache key and cache lookup per coarse-kept record."""

    name = "alignment_prepare"

    def __init__(self, settings: AlignmentSettings, cache_dir: str | None, only: str | None = None):
        self.settings, self.cache_dir, self.only = settings, cache_dir, only

    def process_batch(self, records: list[Record]) -> None:
        prepare(records, self.settings, self.cache_dir, self.only)


class CacheWriteStage(Stage):
    """Task stage after the models: new complete scores into the cache, transient keys dropped."""

    name = "alignment_cache_write"

    def __init__(self, settings: AlignmentSettings, cache_dir: str | None, only: str | None = None):
        self.settings, self.cache_dir, self.only = settings, cache_dir, only

    def process_batch(self, records: list[Record]) -> None:
        if self.cache_dir:
            write_cache(records, self.settings, self.cache_dir, self.only)
        for record in records:
            for transient in (TEXT, KEY, TODO, CAPTIONS):
                record.scores.pop(transient, None)


class ModelStage(Stage):
    """An actor stage around one model: resources from the recipe section `section`, the model loaded
    once per actor on first use, and only the pairs still to be scored passed to `score`."""

    section: ClassVar[str]

    def __init__(self, settings: AlignmentSettings):
        self.settings = settings
        resources = getattr(settings, self.section).resources
        self.num_gpus, self.num_cpus, self.batch_size = resources.num_gpus, resources.num_cpus, resources.batch_size
        self.model = None

    def load(self):
        raise NotImplementedError

    def setup(self) -> None:
        self.model = self.load()

    def wants(self, record: Record) -> bool:
        return bool(record.scores.get(TODO))

    def score(self, records: list[Record]) -> None:
        raise NotImplementedError

    def process_batch(self, records: list[Record]) -> None:
        todo = [record for record in records if self.wants(record)]
        if not todo:
            return
        if self.model is None:
            self.setup()
        self.score(todo)


def model_stage_classes() -> list[type[ModelStage]]:
    """The actor stages in order: captions, then S, then M, then the optional BiomedCLIP column."""
    from filters.biomedclip import BiomedCLIPStage
    from filters.e5 import E5Stage
    from filters.medgemma import CaptionStage
    from filters.medsiglip import MedSigLIPStage

    return [CaptionStage, E5Stage, MedSigLIPStage, BiomedCLIPStage]


def model_stages(settings: AlignmentSettings, only: str | None = None) -> list[Stage]:
    captions, similarity, siglip, biomedclip = model_stage_classes()
    if only == BIOMEDCLIP:
        return [biomedclip(settings)]
    stages: list[Stage] = [captions(settings), similarity(settings), siglip(settings)]
    if settings.biomedclip.model:
        stages.append(biomedclip(settings))
    return stages


def stage_resources(settings: AlignmentSettings) -> dict[str, ModelResources]:
    return {stage.name: getattr(settings, stage.section).resources for stage in model_stage_classes()}


def describe_models(settings: AlignmentSettings) -> dict[str, dict]:
    """Which weights each model stage will load (resolved offline, nothing loaded); demo ones flagged.

    Raises `ModelNotAvailable` before any work starts when a model is missing.
    """
    from pipeline.models import is_demo, resolve_model

    named = {"medgemma": settings.captioner.model, "e5": settings.embedder.model, "medsiglip": settings.siglip.model,
             "biomedclip": settings.biomedclip.model}
    out = {}
    for role, model in named.items():
        if not model:
            continue
        if role == "medgemma" and settings.captioner.backend == "openai":
            out[role] = {"model": model, "served_by": settings.captioner.endpoint, "demo": False}
            continue
        path = resolve_model(model, settings.models_dir)
        out[role] = {"model": model, "path": str(path), "demo": is_demo(path)}
    return out


def settings_summary(settings: AlignmentSettings) -> dict:
    return {k: v for k, v in dataclasses.asdict(settings).items()
            if k in ("normalize", "normalize_scope", "m_score", "lambda_s", "keep_fraction", "keep_scope", "unscored")}


class ClusterTooSmall(RuntimeError):
    """The model stages ask for more than the Ray cluster has: Ray would wait for it forever."""


def check_fits(stages: list[Stage], settings: AlignmentSettings, cluster: dict[str, float]) -> None:
    """Every actor of every GPU stage must fit at once (they stream together), next to one CPU for the
    tasks that read and prepare; otherwise the pipeline stalls instead of failing."""
    gpus, cpus = cluster.get("GPU", 0.0), cluster.get("CPU", 1.0)
    if not gpus:
        return  # GPU stages then run on CPU, their CPUs shared out by `ray_stages`
    want_gpus = {s.name: s.num_gpus * max(1, stage_resources(settings)[s.name].actors) for s in stages if s.num_gpus}
    want_cpus = sum(s.num_cpus * max(1, stage_resources(settings)[s.name].actors) for s in stages if s.num_gpus)
    if sum(want_gpus.values()) > gpus + 1e-9:
        detail = ", ".join(f"{name} {value:g}" for name, value in want_gpus.items())
        raise ClusterTooSmall(
            f"the alignment actors need {sum(want_gpus.values()):g} GPUs at once ({detail}; num_gpus x actors) but "
            f"the Ray cluster has {gpus:g}: lower `resources.num_gpus` or `actors` in the recipe's alignment "
            f"section, or serve the captioner elsewhere (captioner.backend: openai)")
    if want_cpus + 1.0 > cpus + 1e-9:
        raise ClusterTooSmall(
            f"the GPU actors of the alignment stages hold {want_cpus:g} CPUs (num_cpus x actors) and the readers "
            f"need 1 more, but the Ray cluster has {cpus:g}: lower `resources.num_cpus` of the model stages")


def ray_stages(ds, settings: AlignmentSettings, cache_dir: str | None, retries: int, only: str | None = None):
    """Cache lookup (task) -> the model stages (one Ray actor pool each) -> cache write (task).

    Each model stage is a pool of actors that load their model once; Ray Data streams batches
    through them while CPU tasks keep reading, so the accelerators are fed. Without GPUs in the
    cluster, a stage that asks for one runs on CPU, its actors sharing half of the CPUs.
    """
    import warnings

    import ray
    import ray.data
    from ray.util.annotations import RayDeprecationWarning

    from pipeline.stages import ActorStage, run_task_stage

    # `max_retries` bounds the re-runs of a task whose worker died (Ray Data's default is forever);
    # Ray 2.60 flags it as a deprecated remote arg without a named replacement (as in pipeline/build.py).
    warnings.filterwarnings("ignore", message=".*ray_remote_args.*", category=RayDeprecationWarning)

    def task(dataset, stage: Stage):
        return dataset.map_batches(run_task_stage, fn_kwargs={"stage": stage}, batch_size=stage.batch_size,
                                   num_cpus=stage.num_cpus, max_retries=retries)

    if cache_dir:
        compact_cache(cache_dir, scorer_digest(settings, only))
    ds = task(ds, PrepareStage(settings, cache_dir, only))
    stages = model_stages(settings, only)
    resources = ray.cluster_resources()
    gpus = resources.get("GPU", 0.0)
    check_fits(stages, settings, resources)
    cpu_budget = resources.get("CPU", 1.0) / 2  # the other half reads and decodes
    actors = {stage.name: max(1, stage_resources(settings)[stage.name].actors) for stage in stages}
    for stage in stages:
        num_gpus, num_cpus = stage.num_gpus, stage.num_cpus
        if num_gpus and not gpus:
            log.warning("%s asks for %s GPU per actor but the Ray cluster has none: running on CPU",
                        stage.name, num_gpus)
            num_gpus = 0.0
        if not num_gpus:  # CPU actors must all fit next to the readers, or the pipeline stalls
            num_cpus = min(num_cpus, max(0.1, cpu_budget / max(1, sum(actors.values()))))
        ds = ds.map_batches(ActorStage, fn_constructor_kwargs={"stage": stage}, batch_size=stage.batch_size,
                            compute=ray.data.ActorPoolStrategy(size=actors[stage.name]),
                            num_gpus=num_gpus, num_cpus=num_cpus)
    return task(ds, CacheWriteStage(settings, cache_dir, only))
