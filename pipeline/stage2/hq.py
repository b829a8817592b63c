"""The high-quality subset of a finished stage-1 build, chosen from its manifest alone (no model runs).

Ranked families (I2T, T2I): within each scope (task family x modality by default), the kept rows with a
stored score (`align_final`, S_final) are ordered best first (ties by id) and the top
ceil(keep_fraction * n) are chosen. Replayed families (interleaved, text; exempt from alignment) are
chosen whole. Only kept rows of the recipe's splits take part. The choice is written to
`<stage2>/.state/hq_selection.parquet` with everything the replay adapter needs to rebuild each record
(the sample document, meta, provenance, shard and key), and summarised in `hq_summary.json`.
"""

from __future__ import annotations

import io
import json
from pathlib import Path

import duckdb
import pyarrow.parquet as pq

from filters.settings import RecipeError
from manifests import storage
from pipeline.stage2.settings import HqSettings

COLUMNS = ("id", "source", "split", "modality", "task_family", "main_task_type", "sub_task_type", "provenance",
           "sample", "meta", "shard", "key")
SCOPE_COLUMNS = {"modality": "task_family, modality", "source": "task_family, source", "global": "task_family"}


def check_build(build_dir: Path | str, settings: HqSettings, con: duckdb.DuckDBPyConnection | None = None) -> str:
    """The manifest glob (a path or a URL) of a finished stage-1 build that has the HQ score column."""
    fs, root = storage.filesystem(build_dir)
    manifest = storage.join(root, "manifest", "*.parquet")
    if not storage.glob(fs, manifest) or not fs.exists(storage.join(root, "shards")):
        raise RecipeError(f"hq.build {build_dir} is not a finished build (no manifest/*.parquet and shards/): "
                          "build stage 1 first (`make build-stage1`) or pass --hq-build DIR")
    glob = storage.location(fs, manifest).replace("'", "''")
    con = con or storage.duckdb_connect(fs)
    columns = con.sql(f"DESCRIBE SELECT * FROM read_parquet('{glob}', union_by_name = true)").fetchall()
    if settings.score not in {row[0] for row in columns}:
        raise RecipeError(f"{build_dir} has no `{settings.score}` column: build stage 1 with --align "
                          "(or `unimed score` it) before choosing its high-quality subset")
    return glob


def select_hq(build_dir: Path | str, settings: HqSettings) -> duckdb.DuckDBPyRelation:
    """The chosen rows (COLUMNS + the score + `hq_rank`, `hq_pool`), ordered by id."""
    con = storage.duckdb_connect(storage.filesystem(build_dir)[0])
    manifest = check_build(build_dir, settings, con)
    con.execute(f"CREATE VIEW m AS SELECT * FROM read_parquet('{manifest}', union_by_name = true)")
    score, scope = settings.score, SCOPE_COLUMNS[settings.scope]
    columns = ", ".join(COLUMNS)
    ranked = ", ".join(f"'{family}'" for family in settings.ranked_families) or "NULL"
    replay = ", ".join(f"'{family}'" for family in settings.replay_families) or "NULL"
    splits = ", ".join(f"'{split}'" for split in settings.splits) or "NULL"
    query = f"""
        WITH pool AS (
            SELECT {columns}, "{score}" AS hq_score FROM m
            WHERE status = 'kept' AND split IN ({splits})),
        scored AS (
            SELECT *, row_number() OVER (PARTITION BY {scope} ORDER BY hq_score DESC, id) AS hq_rank,
                   count(*) OVER (PARTITION BY {scope}) AS hq_pool
            FROM pool WHERE task_family IN ({ranked}) AND hq_score IS NOT NULL)
        SELECT * FROM scored WHERE hq_rank <= ceil(hq_pool * {float(settings.keep_fraction)})
        UNION ALL
        SELECT *, NULL AS hq_rank, NULL AS hq_pool FROM pool WHERE task_family IN ({replay})
        ORDER BY id"""
    return con.sql(query)


def write_selection(build_dir: Path | str, settings: HqSettings, state_dir: Path | str) -> str:
    """Choose and write `hq_selection.parquet` (published whole) and a summary; returns the selection's
    location (a path, or a URL when the stage-2 build is on object storage)."""
    relation = select_hq(build_dir, settings)
    table = relation.fetch_arrow_table()
    fs, state = storage.filesystem(state_dir)
    path = storage.join(state, "hq_selection.parquet")
    buffer = io.BytesIO()
    pq.write_table(table, buffer)
    storage.write_bytes(fs, path, buffer.getvalue())
    con = duckdb.connect()
    con.register("chosen", table)
    counts = con.execute("SELECT task_family, modality, count(*) FROM chosen GROUP BY ALL ORDER BY ALL").fetchall()
    summary = {"build": str(build_dir if storage.is_url(build_dir) else Path(build_dir).resolve()),
               "selected": table.num_rows,
               "settings": settings.digest(),
               "by_family_modality": [{"task_family": f, "modality": m, "count": n} for f, m, n in counts]}
    storage.write_text(fs, storage.join(state.rstrip("/").rsplit("/", 1)[0], "hq_summary.json"),
                       json.dumps(summary, indent=2, sort_keys=True))
    return storage.location(fs, path)
