"""The chosen stage-1 samples read back out of that build's shards as records (the `hq_replay` source).

Not a dataset adapter (it is not in `sources.SOURCES`): the build adds its units when the recipe's `hq`
section is on. Each unit is a slice of one stage-1 shard's chosen samples; each sample comes back with its
original id, source, modality, task types, message and images (bytes as stored: a passthrough JPEG stays
byte-identical), and `meta["hq"]` records where it came from and its score. For a chosen T2I sample it
also yields the CAG rows: `<id>/cag` (plain CAG T2I) and `<id>/plan` (T2I with planning, sub-task
`<sub>_planning`), whose texts the CAG stages write (pipeline/stages/cag_*.py); the original row is kept
only when `hq.t2i_original` says so. A member missing from its shard is a rejected row, `hq_image_missing`.
"""

from __future__ import annotations

import copy
import hashlib
import io
import json
from collections.abc import Iterator
from functools import lru_cache
from pathlib import Path

import pyarrow.parquet as pq

from manifests import storage
from manifests.images import decode_bytes
from manifests.records import Record, Rejection
from manifests.shards import ShardReader
from sources.base import DatasetCard, Source, SourceError, WorkUnit

NAME = "hq_replay"
ROLE_SUFFIX = {"t2i": "cag", "plan": "plan"}


@lru_cache(maxsize=4)
def _selection(location: str, version: str) -> dict[str, dict]:
    fs, path = storage.filesystem(location)
    return {row["id"]: row for row in pq.read_table(io.BytesIO(storage.read_bytes(fs, path))).to_pylist()}


@lru_cache(maxsize=4)
def _reader(build_dir: str) -> ShardReader:
    return ShardReader(build_dir)


class HqReplay(Source):
    card = DatasetCard(
        name=NAME, title="High-quality subset of a stage-1 build (replayed)", modalities=("other",),
        tasks=("replay",), licence="per source (the stage-1 rows' own)", access="open",
        url="(a local stage-1 build)", citation="UniMed-5M stage 2 (spec 5, 6.1)", root_names=("stage1",))

    def _rows(self) -> dict[str, dict]:
        location = self.options["selection"]  # a path, or a URL: every worker reads it itself
        fs, path = storage.filesystem(location)
        try:
            info = fs.info(path)
        except FileNotFoundError:
            raise SourceError(f"{location} is missing: the stage-2 build writes it from hq.build before reading") \
                from None
        return _selection(location, storage.object_version(info))

    def work_units(self) -> list[WorkUnit]:
        size = int(self.options.get("items_per_unit", self.items_per_unit))
        by_shard: dict[str, list[str]] = {}
        for record_id, row in self._rows().items():
            by_shard.setdefault(row["shard"], []).append(record_id)
        units = []
        for shard in sorted(by_shard):
            ids = sorted(by_shard[shard])
            for start in range(0, len(ids), size):
                chunk = tuple(ids[start:start + size])
                digest = hashlib.blake2b("|".join(chunk).encode(), digest_size=4).hexdigest()
                units.append(WorkUnit(NAME, f"{NAME}/train/{Path(shard).stem}-{start // size:04d}-{digest}",
                                      "train", chunk))
        return units

    def iter_records(self, unit: WorkUnit) -> Iterator[Record | Rejection]:
        rows, reader = self._rows(), _reader(str(self.root))
        roles = list(self.options.get("cag_roles", []))
        for record_id in unit.items:
            row = rows[record_id]
            try:
                record = self._record(row, reader)
            except FileNotFoundError as err:
                yield Rejection(id=record_id, source=row["source"], split=row["split"], reason="hq_image_missing",
                                detail=str(err)[:300], task_family=row["task_family"], modality=row["modality"],
                                provenance=list(row["provenance"] or []))
                continue
            if record.task_family != "t2i":
                yield record
                continue
            if self.options.get("t2i_original", True):
                yield record
            for role in roles:
                yield cag_row(record, role)

    def _record(self, row: dict, reader: ShardReader) -> Record:
        doc = json.loads(row["sample"])
        images = {}
        for role in ("input_img", "output_img"):
            images[role] = [decode_bytes(reader.read(row["shard"], row["key"], ref["path"]),
                                         source_path=f"{row['shard']}:{row['key']}.{ref['path']}")
                            for ref in doc.get(role) or []]
        meta = json.loads(row["meta"] or "{}")
        meta["hq"] = {"from_id": row["id"], "score": row.get("hq_score"), "rank": row.get("hq_rank"),
                      "pool": row.get("hq_pool")}
        return Record(id=row["id"], source=row["source"], split=row["split"], modality=row["modality"],
                      task_family=row["task_family"], main_task_type=row["main_task_type"],
                      sub_task_type=row["sub_task_type"], message=doc["message"],
                      input_images=images["input_img"], output_images=images["output_img"],
                      provenance=list(row["provenance"] or []), meta=meta)


def cag_row(record: Record, role: str) -> Record:
    """The CAG row of one chosen T2I record: same image, texts to be written by the CAG stages."""
    from filters.cag.steps import original_caption

    row = copy.copy(record)
    row.id = f"{record.id}/{ROLE_SUFFIX[role]}"
    row.message = copy.deepcopy(record.message)
    row.meta = {**copy.deepcopy(record.meta), "cag": {"role": role, "caption": original_caption(record)}}
    if role == "plan":
        row.sub_task_type = f"{record.sub_task_type}_planning"
    return row


def hq_units(settings, build_dir: Path | str, state_dir: Path | str) -> tuple[str, str, list[WorkUnit]]:
    """Choose the subset (pipeline/stage2/hq.py, no model); the replay's root, options (JSON) and units.
    `build_dir` and `state_dir` are folders or URLs (a stage-1 build on object storage is read in place)."""
    from pipeline.stage2.hq import write_selection

    build_dir = str(build_dir) if storage.is_url(build_dir) else str(Path(build_dir).resolve())
    selection = write_selection(build_dir, settings, state_dir)
    options = {"selection": selection, "t2i_original": settings.t2i_original,
               "cag_roles": list(settings.cag_roles), "items_per_unit": settings.items_per_unit}
    units = HqReplay(build_dir, options, ("train",)).work_units()
    return build_dir, json.dumps(options, sort_keys=True), units
