"""The score cache: raw scores stored per (scoring settings, image pixels, scored text).

Raw scores live under the build's `.state/align_cache/`, so a rebuild with new sources or thresholds
never rescores an old pair. Only complete scores are cached: a pair whose captioner failed is tried
again next build. Workers append one Parquet file per batch; at the start of each scoring the driver
folds those files into one DuckDB table indexed by key (`compact_cache`), and lookups probe that index
only: a batch's lookup is an index probe, not a scan of everything ever cached (which grew with the
square of the corpus).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from filters.alignment.pairs import (CAPTIONS, EXEMPT, KEY, RAW_COLUMNS, TEXT, TODO, cache_key, is_complete,
                                     score_columns, scored_image, scored_text, scorer_digest, text_policy)
from filters.settings import AlignmentSettings
from manifests.records import Record

CACHE_SCHEMA = pa.schema([("key", pa.string()), ("align_s_raw", pa.float32()), ("align_m_logit", pa.float32()),
                          ("align_m_prob", pa.float32()), ("align_bmc", pa.float32()),
                          ("align_caption", pa.string()), ("captions", pa.string())])


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
