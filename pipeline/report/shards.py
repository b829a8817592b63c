"""Sample members read back from a build's outputs: the final shards for kept samples; for samples rejected
at finalisation (e.g. below the alignment cut), whose pixels a build does not keep, the bytes of an older
build's staging tars where they still exist, else the images read again from the sources
(pipeline/engine/reread.py). Nothing here writes into the build.
"""

from __future__ import annotations

import json
from pathlib import Path

import duckdb


def staged_members(build_dir: Path, ids: list[str]) -> dict[str, dict[str, bytes]]:
    """{id: {suffix: bytes}} for the given staged ids: from BUILD/.state/staging tars where an older build kept
    them, else read again from the build's sources (samples whose source cannot give them are left out)."""
    staging = Path(build_dir) / ".state" / "staging"
    files = sorted(staging.glob("*/*.parquet"))
    if not ids or not files:
        return {}
    con = duckdb.connect()
    con.execute("CREATE TEMP TABLE wanted (id VARCHAR)")
    con.executemany("INSERT INTO wanted VALUES (?)", [(i,) for i in ids])
    rows = []
    if _has_members(con, files):
        cursor = con.execute(
            "SELECT s.id, s.unit_id, s.source, s.key, s.sample, s.staging_tar, s.members, s.filename "
            "FROM read_parquet(?, filename = true, union_by_name = true) s JOIN wanted USING (id) "
            "WHERE s.members IS NOT NULL QUALIFY row_number() OVER (PARTITION BY s.id ORDER BY s.filename DESC) = 1",
            [[f.as_posix() for f in files]])
        columns = [d[0] for d in cursor.description]
        rows = [dict(zip(columns, values)) for values in cursor.fetchall()]
    out: dict[str, dict[str, bytes]] = {}
    for row in rows:
        if not row.get("staging_tar"):
            continue
        try:
            with open(Path(row["filename"]).parent / row["staging_tar"], "rb") as handle:
                for suffix, offset, size in json.loads(row["members"] or "[]"):
                    handle.seek(offset)
                    out.setdefault(row["id"], {})[suffix] = handle.read(size)
        except OSError:
            continue
    missing = [row for row in rows if row["id"] not in out and row.get("sample")]
    if missing:
        out.update(_read_again(Path(build_dir), missing))
    return out


def _has_members(con, files: list[Path]) -> bool:
    columns = {r[0] for r in con.execute("DESCRIBE SELECT * FROM read_parquet(?, union_by_name = true)",
                                         [[f.as_posix() for f in files]]).fetchall()}
    return {"unit_id", "source", "key", "sample", "staging_tar", "members"} <= columns


def _read_again(build_dir: Path, rows: list[dict]) -> dict[str, dict[str, bytes]]:
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
