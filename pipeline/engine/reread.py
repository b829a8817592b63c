"""Pixels no shard holds, read again from the sources: how a looser decision brings a sample back.

A build keeps no pixels of the samples its global rules rejected (pipeline/engine/staging.py). When a
later finalisation keeps one (`unimed rethreshold` with a lower cut, another normalisation), its images
are read again from its source by the adapter, for its own work unit only, and written as a piece that
finalisation copies from. No model runs: the scores are in the staged rows. The bytes must have the
sizes the build recorded; a source that changed since, or a sample made by a stage rather than an
adapter (stage 3's interleaved tasks), is a one-line error that says to rebuild.
"""

from __future__ import annotations

import io
import json
from dataclasses import dataclass

from manifests import storage
from manifests.images import shard_bytes
from manifests.records import Record
from manifests.schema import member_suffix
from manifests.shards import unit_tag
from pipeline.engine.staging import write_samples


class MissingPixels(RuntimeError):
    """A kept sample whose images are in no piece, no shard, and cannot be read again as they were."""


@dataclass(frozen=True)
class SourceLocation:
    """Where a source was read from, and how: enough to list its units and read one again."""

    root: str
    options_json: str
    splits: tuple[str, ...] | None


def read_samples(rows: list[dict], sources: dict[str, SourceLocation],
                 png_compress_level: int) -> dict[tuple[str, str], list[tuple[str, str, bytes, list]]]:
    """`rows` (id, unit_id, source, key, sample, members) read again from their sources, grouped by
    (source, unit): {(source, unit_id): [(id, key, sample JSON bytes, [(suffix, bytes), ...]), ...]} in id order.
    Raises MissingPixels when a source is gone, changed, or does not give the sample."""
    from pipeline.engine.units import _adapter

    by_unit: dict[tuple[str, str], dict[str, dict]] = {}
    for row in rows:
        by_unit.setdefault((row["source"], row["unit_id"]), {})[row["id"]] = row
    listed: dict[str, dict] = {}
    found: dict[tuple[str, str], list] = {}
    for (source, unit_id), wanted in sorted(by_unit.items()):
        location = sources.get(source)
        if location is None:
            raise MissingPixels(_message(next(iter(wanted)), f"source {source} is not where this build can read it"))
        adapter = _adapter(source, location.root, location.options_json, location.splits)
        if source not in listed:
            listed[source] = {unit.id: unit for unit in adapter.work_units()}
        unit = listed[source].get(unit_id)
        if unit is None:
            raise MissingPixels(_message(next(iter(wanted)), f"work unit {unit_id} is no longer listed"))
        samples = []
        for item in adapter.iter_records(unit):
            row = wanted.get(item.id)
            if row is None or not isinstance(item, Record):
                continue
            images = [(member_suffix(role, index, image), shard_bytes(image, png_compress_level))
                      for role, images in (("in", item.input_images), ("out", item.output_images))
                      for index, image in enumerate(images)]
            recorded = sorted((suffix, size) for suffix, _, size in json.loads(row["members"] or "[]"))
            if sorted((suffix, len(data)) for suffix, data in images) != recorded:
                raise MissingPixels(_message(item.id, "its source gives other bytes than the build stored"))
            samples.append((row["id"], row["key"], row["sample"].encode("utf-8"), images))
        absent = sorted(set(wanted) - {sample[0] for sample in samples})
        if absent:
            raise MissingPixels(_message(absent[0], "its source does not give it (made by a stage, or removed)"))
        found[(source, unit_id)] = sorted(samples)
    return found


def reread_pieces(rows: list[dict], sources: dict[str, SourceLocation], staging_dir: str,
                  png_compress_level: int) -> dict[str, tuple[str, str]]:
    """Write one piece per work unit holding `rows` (id, unit_id, source, key, sample, members) read again;
    return {id: (piece, members JSON)} for finalisation to copy from."""
    fs, staging = storage.filesystem(staging_dir)
    found: dict[str, tuple[str, str]] = {}
    for (_, unit_id), samples in read_samples(rows, sources, png_compress_level).items():
        piece = f"r-{unit_tag(unit_id)}.tar"
        buffer = io.BytesIO()
        offsets = write_samples(buffer, [(key, sample, images) for _, key, sample, images in samples])
        storage.write_bytes(fs, storage.join(staging, piece), buffer.getvalue())
        for (record_id, *_), members in zip(samples, offsets):
            found[record_id] = (piece, json.dumps([m for m in members if m[0] != "json"]))
    return found


def _message(record_id: str, why: str) -> str:
    return (f"the images of {record_id} are in no shard of this build and cannot be read again ({why}): "
            "rebuild with `unimed build ... --refresh`")
