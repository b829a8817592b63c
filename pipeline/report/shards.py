"""Sample members read back from a build's outputs: the final shards for kept samples; for samples rejected
at finalisation (e.g. below the alignment cut), whose pixels a build does not keep, the bytes of an older
build's staging tars where they still exist, else the images read again from the sources
(pipeline/engine/reread.py). Nothing here writes into the build.
"""

from __future__ import annotations

import json
import posixpath
from pathlib import Path

from manifests import storage


def staged_members(build_dir: Path | str, ids: list[str]) -> dict[str, dict[str, bytes]]:
    """{id: {suffix: bytes}} for the given staged ids: from BUILD/.state/staging tars where an older build kept
    them, else read again from the build's sources (samples whose source cannot give them are left out).
    BUILD is a folder or a URL (everything is read through manifests/storage.py)."""
    fs, root = storage.filesystem(build_dir)
    staged = storage.glob(fs, storage.join(root, ".state", "staging", "*", "*.parquet"))
    files = [storage.location(fs, path) for path in staged]
    if not ids or not files:
        return {}
    con = storage.duckdb_connect(fs)
    con.execute("CREATE TEMP TABLE wanted (id VARCHAR)")
    con.executemany("INSERT INTO wanted VALUES (?)", [(i,) for i in ids])
    rows = []
    if _has_members(con, files):
        cursor = con.execute(
            "SELECT s.id, s.unit_id, s.source, s.key, s.sample, s.staging_tar, s.members, s.filename "
            "FROM read_parquet(?, filename = true, union_by_name = true) s JOIN wanted USING (id) "
            "WHERE s.members IS NOT NULL QUALIFY row_number() OVER (PARTITION BY s.id ORDER BY s.filename DESC) = 1",
            [files])
        columns = [d[0] for d in cursor.description]
        rows = [dict(zip(columns, values)) for values in cursor.fetchall()]
    out: dict[str, dict[str, bytes]] = {}
    for row in rows:
        if not row.get("staging_tar"):
            continue
        tar = posixpath.join(posixpath.dirname(storage.filesystem(row["filename"])[1]), row["staging_tar"])
        try:
            for suffix, offset, size in json.loads(row["members"] or "[]"):
                out.setdefault(row["id"], {})[suffix] = storage.read_range(fs, tar, offset, size)
        except OSError:
            out.pop(row["id"], None)
            continue
    missing = [row for row in rows if row["id"] not in out and row.get("sample")]
    if missing:
        out.update(_read_again(build_dir, missing))
    return out


def _has_members(con, files: list[str]) -> bool:
    columns = {r[0] for r in con.execute("DESCRIBE SELECT * FROM read_parquet(?, union_by_name = true)",
                                         [files]).fetchall()}
    return {"unit_id", "source", "key", "sample", "staging_tar", "members"} <= columns


def _read_again(build_dir: Path | str, rows: list[dict]) -> dict[str, dict[str, bytes]]:
    """The images of `rows` read again from the build's sources, unit by unit; a unit that cannot be read
    (a source moved or changed since) is skipped with a warning: a report never fails for a gallery picture."""
    import logging

    from pipeline.engine.build import source_locations
    from pipeline.engine.reread import MissingPixels, read_samples
    from pipeline.rescore.rethreshold import load_build_recipe, recorded_sources

    recipe, resolved = load_build_recipe(build_dir)
    sources = source_locations(recorded_sources(recipe, resolved))
    out: dict[str, dict[str, bytes]] = {}
    by_unit: dict[tuple[str, str], list[dict]] = {}
    for row in rows:
        by_unit.setdefault((row["source"], row["unit_id"]), []).append(row)
    for unit_rows in by_unit.values():
        try:
            found = read_samples(unit_rows, sources, recipe.shards.png_compress_level)
        except (MissingPixels, OSError, ValueError) as err:
            logging.getLogger(__name__).warning("gallery images not read again: %s", err)
            continue
        for samples in found.values():
            for record_id, _, _, images in samples:
                out[record_id] = dict(images)
    return out
