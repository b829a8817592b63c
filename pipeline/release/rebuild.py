"""`unimed rebuild RELEASE --sources-root DIR --out OUT`: the release's samples, rebuilt from the user's own copies.

The release's recipe runs through the normal engine (pipeline/engine/build.py) over the sources the
release names. Alignment models are not run again: the release carries the decisions. At finalisation
a `ReleaseFilter` applies them, on manifest columns, before the global rules:

- a kept row the release does not keep: rejected, `not_in_release` (or the release's own reason);
- a released sample whose file is missing (no row at all, or the adapter's missing-file rejection):
  a rejected row `source_missing`;
- a released sample whose decoded pixels (or text) differ from the released hashes, or that the same
  recipe no longer keeps (a changed file that no longer decodes, say): rejected, `source_changed`;
- the release's alignment scores are copied onto the rebuilt rows.

With the same files present every released sample is kept again, and the shards are byte-identical
(compared with the sha256s in release.json). `rebuild.json` next to the outputs says how much of the
release was reproduced.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import duckdb
import yaml

from manifests.schema import ALIGNMENT_COLUMNS
from pipeline.config import Recipe, parse_recipe
from pipeline.engine.build import BuildReport, build
from pipeline.release.write import RELEASE_FORMAT, RECORDS_FILE, ReleaseError, _sha256

# Adapter rejections that mean "the file is not there" (sources/*.py), as opposed to "it is there but different".
MISSING_REASONS = ("missing_file", "missing_volume", "missing_report", "missing_reference", "missing_images_root",
                   "reconstruction_missing", "annotation_missing")
RELEASE_REASONS = ("not_in_release", "source_missing", "source_changed")


def load_release(release_dir: Path) -> tuple[dict, Recipe]:
    release_dir = Path(release_dir)
    manifest = release_dir / "release.json"
    if not manifest.is_file():
        raise ReleaseError(f"{release_dir} is not a release (no release.json); `unimed release BUILD --out DIR` "
                           "writes one")
    release = json.loads(manifest.read_text(encoding="utf-8"))
    if release.get("format") != RELEASE_FORMAT:
        raise ReleaseError(f"{manifest} is not a {RELEASE_FORMAT} file")
    if not (release_dir / RECORDS_FILE).is_file():
        raise ReleaseError(f"{release_dir / RECORDS_FILE} is missing; copy the whole release folder")
    recipe = parse_recipe(yaml.safe_load((release_dir / "recipe.yaml").read_text(encoding="utf-8")))
    return release, recipe


@dataclass
class ReleaseFilter:
    """A finalisation rule (pipeline/engine/finalize.py `release_filter`): the release's decisions and hashes."""

    records: str  # the release's records Parquet

    def apply(self, con: duckdb.DuckDBPyConnection) -> None:
        path = self.records.replace("'", "''")
        align = [name for name in ALIGNMENT_COLUMNS if name != "align_caption"]
        con.execute(
            f"""CREATE OR REPLACE TABLE release AS SELECT id, source, dataset, split, modality, task_family,
                   main_task_type, sub_task_type, licence, access, unit_id, provenance, status AS r_status,
                   reason AS r_reason, pixel_hash AS r_pixel_hash, content_hash AS r_content_hash,
                   {", ".join(f'"{name}"' for name in align)}
                FROM read_parquet('{path}')"""
        )
        # Rebuilt rows the release does not keep: its own decision, or not part of it at all.
        con.execute(
            """UPDATE chosen SET status = 'rejected', reason = coalesce(x.r_reason, 'not_in_release'),
                   detail = CASE WHEN x.rid IS NULL THEN 'not a sample of the release' ELSE 'decision from the release' END
               FROM (SELECT c.id AS cid, r.id AS rid, r.r_reason FROM chosen c LEFT JOIN release r ON c.id = r.id
                     WHERE c.status = 'kept' AND (r.id IS NULL OR r.r_status <> 'kept')) x
               WHERE chosen.id = x.cid"""
        )
        # Released samples the rebuild could not read or no longer keeps.
        missing = ", ".join(f"'{reason}'" for reason in MISSING_REASONS)
        con.execute(
            f"""UPDATE chosen SET status = 'rejected',
                   reason = CASE WHEN chosen.reason IN ({missing}) THEN 'source_missing' ELSE 'source_changed' END,
                   detail = CASE WHEN chosen.reason IN ({missing})
                                 THEN 'the released sample''s file is missing here: ' || chosen.reason
                                 ELSE 'released as kept; the same recipe now rejects it: ' || chosen.reason
                                      || coalesce(' (' || chosen.detail || ')', '') END
               FROM release r
               WHERE chosen.id = r.id AND r.r_status = 'kept' AND chosen.status <> 'kept'"""
        )
        con.execute(
            """UPDATE chosen SET status = 'rejected', reason = 'source_changed',
                   detail = CASE WHEN chosen.pixel_hash IS DISTINCT FROM r.r_pixel_hash
                                 THEN 'decoded pixels differ from the released hash ' || coalesce(r.r_pixel_hash, '-')
                                 ELSE 'images or text differ from the released content hash' END
               FROM release r
               WHERE chosen.id = r.id AND r.r_status = 'kept' AND chosen.status = 'kept'
                 AND (chosen.pixel_hash IS DISTINCT FROM r.r_pixel_hash
                      OR chosen.content_hash IS DISTINCT FROM r.r_content_hash)"""
        )
        con.execute(
            """INSERT INTO chosen (id, source, dataset, split, modality, task_family, main_task_type, sub_task_type,
                                   licence, access, unit_id, provenance, status, reason, detail)
               SELECT id, source, dataset, split, modality, task_family, main_task_type, sub_task_type, licence,
                      access, unit_id, provenance, 'rejected', 'source_missing',
                      'released as kept; not found under the sources given (file or whole source missing)'
               FROM release r WHERE r.r_status = 'kept' AND NOT EXISTS (SELECT 1 FROM chosen c WHERE c.id = r.id)"""
        )
        sets = ", ".join(f'"{name}" = r."{name}"' for name in align)
        con.execute(f"UPDATE chosen SET {sets} FROM release r WHERE chosen.id = r.id")


@dataclass
class RebuildSummary:
    report: BuildReport
    released: int = 0
    reproduced: int = 0
    by_reason: dict = field(default_factory=dict)  # source_missing / source_changed counts
    shards_identical: int = 0
    shards_released: int = 0

    @property
    def fraction(self) -> float:
        return self.reproduced / self.released if self.released else 1.0


def rebuild(release_dir: Path, out: Path, sources_root: Path | None = None,
            source_paths: dict[str, Path] | None = None, ray_address: str | None = None,
            progress: bool = True) -> RebuildSummary:
    release_dir = Path(release_dir)
    release, recipe = load_release(release_dir)
    recipe.alignment.enabled = False  # the release carries the alignment decisions: no model runs again
    released_sources = sorted(release.get("sources") or {})
    only = [entry.name for entry in recipe.sources if entry.name in released_sources]
    records = str((release_dir / RECORDS_FILE).resolve())
    report = build(recipe, Path(out), sources_root, source_paths, only or None, ray_address, progress,
                   release_filter=ReleaseFilter(records))

    con = duckdb.connect()
    con.execute(f"CREATE VIEW rebuilt AS SELECT * FROM read_parquet('{(report.out_dir / 'manifest').as_posix()}/*.parquet')")
    con.execute(f"CREATE VIEW release AS SELECT id, status FROM read_parquet('{records}')")
    summary = RebuildSummary(report)
    summary.released, summary.reproduced = con.execute(
        "SELECT count(*), count(*) FILTER (b.status = 'kept') FROM release r LEFT JOIN rebuilt b USING (id) "
        "WHERE r.status = 'kept'").fetchone()
    summary.by_reason = dict(con.execute(
        "SELECT reason, count(*) FROM rebuilt WHERE reason IN ('source_missing', 'source_changed') "
        "GROUP BY ALL ORDER BY 1").fetchall())
    shards = release.get("shards") or []
    summary.shards_released = len(shards)
    summary.shards_identical = sum(
        1 for shard in shards
        if (report.out_dir / "shards" / shard["name"]).is_file()
        and _sha256(report.out_dir / "shards" / shard["name"]) == shard["sha256"])
    _write_json(report.out_dir / "rebuild.json", {
        "release_recipe": release.get("recipe"), "release_processing_digest": release.get("processing_digest"),
        "released": summary.released, "reproduced": summary.reproduced,
        "fraction_reproduced": round(summary.fraction, 6), "by_reason": summary.by_reason,
        "shards_released": summary.shards_released, "shards_identical": summary.shards_identical})
    return summary


def _write_json(path: Path, data: dict) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(data, indent=2, sort_keys=True), encoding="utf-8")
    os.replace(tmp, path)
