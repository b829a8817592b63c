"""The score cache: raw scores stored per (scoring settings, image pixels, scored text).

Raw scores live under the build's `.state/align_cache/` (a folder, or a prefix on object storage: every
read and write goes through manifests/storage.py), so a rebuild with new sources or thresholds never
rescores an old pair. Only complete scores are cached: a pair whose captioner failed is tried
again next build. Workers append one Parquet file per batch; at the start of each scoring the driver
folds those files into one DuckDB table indexed by key (`compact_cache`), and lookups probe that index
only: a batch's lookup is an index probe, not a scan of everything ever cached (which grew with the
square of the corpus). On object storage the compacted table is published with one PUT and each machine
probes a local copy of it, fetched once per version (the driver names the version, so a lookup makes
no request).
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
import shutil
import tempfile
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from filters.alignment.pairs import (CAPTIONS, EXEMPT, KEY, RAW_COLUMNS, TEXT, TODO, cache_key, is_complete,
                                     score_columns, scored_image, scored_text, scorer_digest, text_policy)
from filters.settings import AlignmentSettings
from manifests import storage
from manifests.records import Record

CACHE_SCHEMA = pa.schema([("key", pa.string()), ("align_s_raw", pa.float32()), ("align_m_logit", pa.float32()),
                          ("align_m_prob", pa.float32()), ("align_bmc", pa.float32()),
                          ("align_caption", pa.string()), ("captions", pa.string())])


def prepare(records: list[Record], settings: AlignmentSettings, cache_dir: str | None,
            only: str | None = None, version: str | None = None) -> None:
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
    for row in read_cache(cache_dir, scorer_digest(settings, only), list(pending), version):
        for record in pending[row["key"]]:
            record.scores.update({column: row[column] for column in columns if column in CACHE_SCHEMA.names})
            record.scores[TODO] = False


CACHE_INDEX = "index.duckdb"
HEX_KEY = re.compile(r"[0-9a-f]{32}")


def _sql_path(path: Path | str) -> str:
    return str(path).replace("\\", "/").replace("'", "''")


def compact_cache(cache_dir: str, digest: str) -> int:
    """Fold a scorer's per-batch cache files into its indexed table; returns the rows it now holds.

    The new table is written beside the old one (locally) or in a scratch folder (object storage) and
    then published over it whole (a rename, or one PUT); only then are the folded files deleted: a crash
    at any point leaves either the old table and the files, or the new table (files folded twice are
    harmless: the first score of a key wins, so a decision never moves).
    """
    import duckdb

    fs, folder = storage.filesystem(cache_dir)
    folder = storage.join(folder, digest)
    files = storage.glob(fs, storage.join(folder, "*.parquet"))
    if not files:
        return 0
    index = storage.join(folder, CACHE_INDEX)
    scratch = None if storage.is_local(fs) else tempfile.mkdtemp(prefix="unimed-align-")
    tmp = storage.join(scratch or folder, f".{CACHE_INDEX}.tmp")
    if os.path.exists(tmp):
        os.unlink(tmp)
    previous = _local_index(fs, index) if storage.exists(fs, index) else None
    listed = ", ".join(f"'{_sql_path(storage.location(fs, path))}'" for path in files)
    con = storage.duckdb_connect(fs, duckdb.connect(tmp))
    try:
        parts = [f"SELECT *, 1 AS _batch_order, filename AS _file FROM read_parquet([{listed}], filename = true)"]
        if previous:
            con.execute(f"ATTACH '{_sql_path(previous)}' AS previous (READ_ONLY)")
            parts.insert(0, "SELECT *, 0 AS _batch_order, '' AS _file FROM previous.scores")
        con.execute(f"""
            CREATE TABLE scores AS SELECT * EXCLUDE (_batch_order, _file)
            FROM ({" UNION ALL BY NAME ".join(parts)})
            QUALIFY row_number() OVER (PARTITION BY key ORDER BY _batch_order, _file) = 1
            ORDER BY key""")
        con.execute("CREATE UNIQUE INDEX scores_key ON scores (key)")
        rows = con.execute("SELECT count(*) FROM scores").fetchall()[0][0]
    finally:
        con.close()
    if scratch is None:
        os.replace(tmp, index)
    else:
        storage.put_file(fs, tmp, index)
        shutil.rmtree(scratch, ignore_errors=True)
    for path in files:
        storage.remove(fs, path)
    return rows


NO_INDEX = "none"  # the version of a cache that has no compacted table yet


def index_version(cache_dir: str, digest: str) -> str:
    """What identifies the compacted table now (its size and ETag or mtime), or NO_INDEX. The driver asks
    once per build, after compaction; workers fetch a table of that version at most once per machine."""
    fs, folder = storage.filesystem(cache_dir)
    try:
        return storage.object_version(fs.info(storage.join(folder, digest, CACHE_INDEX)))
    except FileNotFoundError:
        return NO_INDEX


def _local_index(fs, index: str, version: str | None = None) -> str:
    """A local file holding the compacted table: the table itself locally; on object storage a copy in
    this machine's temporary folder, downloaded once per version (so a batch's lookup is a local index
    probe, never a request per key)."""
    if storage.is_local(fs):
        return index
    version = version or storage.object_version(fs.info(index))
    name = hashlib.blake2b(f"{fs.unstrip_protocol(index)}|{version}".encode(), digest_size=12).hexdigest()
    replica = os.path.join(tempfile.gettempdir(), "unimed-align-cache", f"{name}.duckdb")
    if not os.path.exists(replica):
        os.makedirs(os.path.dirname(replica), exist_ok=True)
        partial = f"{replica}.{os.getpid()}.part"
        fs.get_file(index, partial)
        os.replace(partial, replica)  # concurrent workers on one machine publish identical copies
    return replica


def read_cache(cache_dir: str, digest: str, keys: list[str], version: str | None = None) -> list[dict]:
    """The cached rows of `keys`, by index probes into the compacted table.

    `version` (from `index_version`, taken by the driver after compaction) names the table without a
    request; without it the store is asked whether there is one."""
    if not keys or version == NO_INDEX:
        return []
    fs, folder = storage.filesystem(cache_dir)
    index = storage.join(folder, digest, CACHE_INDEX)
    if version is None and not storage.exists(fs, index):
        return []
    import duckdb

    if not all(HEX_KEY.fullmatch(key) for key in keys):
        raise ValueError("cache keys are 32 hex digits")
    con = duckdb.connect(_local_index(fs, index, version), read_only=True)
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
    `compact_cache`, the first score of a key wins. `con` reads the cache's filesystem
    (`storage.duckdb_connect`)."""
    fs, folder = storage.filesystem(str(cache_dir))
    folder = storage.join(folder, digest)
    parts = []
    index = storage.join(folder, CACHE_INDEX)
    if storage.exists(fs, index):
        alias = f"cache_{digest.replace('-', '_')}"
        if not con.execute("SELECT count(*) FROM duckdb_databases() WHERE database_name = ?", [alias]).fetchone()[0]:
            con.execute(f"ATTACH '{_sql_path(_local_index(fs, index))}' AS {alias} (READ_ONLY)")
        parts.append(f"SELECT *, 0 AS _cache_order FROM {alias}.scores")
    files = storage.glob(fs, storage.join(folder, "*.parquet"))
    if files:
        listed = ", ".join(f"'{_sql_path(storage.location(fs, path))}'" for path in files)
        parts.append(f"SELECT *, 1 AS _cache_order FROM read_parquet([{listed}])")
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
    fs, root = storage.filesystem(cache_dir)
    name = hashlib.blake2b("|".join(sorted(r["key"] for r in rows)).encode(), digest_size=12).hexdigest()
    buffer = io.BytesIO()
    pq.write_table(pa.Table.from_pylist(rows, schema=CACHE_SCHEMA), buffer)
    storage.write_bytes(fs, storage.join(root, scorer_digest(settings, only), f"{name}.parquet"), buffer.getvalue())
    return len(rows)
