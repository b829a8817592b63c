"""The second pass: every shard is written here, once, after the global rules have decided.

The first pass stages manifest rows only (pipeline/engine/staging.py); finalisation plans the shards
(pipeline/engine/finalize.py) and runs `write_shard` once per shard it has to write, as a Ray task on
the recipe's writer nodes. A sample's JSON comes from its staged row (a text sample is nothing more);
its image members come
- from the published shard that held the sample before (a rerun after a changed unit, `rethreshold`),
  copied byte for byte, or else
- from its source, read again by the adapter for its own work unit (the pickled `UnitTask` of the
  build's listing), with what stages did to a kept record's images redone (`Stage.redo_pixels`: the
  loaders' size limits, the task builders of interleaved samples). No model runs: texts and scores are
  in the staged rows, and the sample JSON is taken from there.
Either way the bytes must have the size and digest the staged row recorded. When they do not, the
source changed since it was staged: a one-line error that says to rebuild, never a shard with other
pixels than its manifest row describes.

Why read again rather than keep what the first pass decoded: the first pass cannot know which
samples the global rules (duplicates, the alignment cut, a release's decisions) will keep, nor which
shard a sample lands in once shards are filled across units. Writing pixels there means writing them
twice (a piece, then the shard); reading the kept samples again costs a second read and decode instead,
and no byte is written but the shard's own.
"""

from __future__ import annotations

import json
import logging
import tarfile
from collections.abc import Iterator
from dataclasses import dataclass

import pyarrow.parquet as pq

from manifests import spans, storage
from manifests.records import Record
from pipeline.engine.staging import member_digest, record_members, write_samples

log = logging.getLogger(__name__)

PLAN_COLUMNS = ["id", "unit_id", "source", "key", "sample", "members", "previous"]


class MissingPixels(RuntimeError):
    """A kept sample whose images are in no shard and cannot be read again as they were staged."""


@dataclass(frozen=True)
class SourceLocation:
    """Where a source was read from, and how: enough to list its units and read one again."""

    root: str
    options_json: str
    splits: tuple[str, ...] | None


@dataclass(frozen=True)
class ShardJob:
    """One shard to write: its name (relative to shards/), how many samples, and the plan files listing them."""

    name: str
    samples: int
    samples_file: str  # location of the Parquet rows of this shard's samples (and its neighbours')
    units_file: str | None  # location of the pickled unit tasks those samples are read from


@dataclass
class ShardWritten:
    size: int = 0
    copied: int = 0  # samples whose image members were copied from the shard that held them before
    reread: int = 0  # samples whose images were read again from their sources
    units_read: int = 0  # unit reads (a unit whose samples span k shards is read by each)


def staged_members(row: dict) -> list[tuple[str, int, str | None]]:
    """A staged row's image members as (suffix, size, digest); older rows carry no digest."""
    return [(entry[0], entry[2], entry[3] if len(entry) > 3 else None) for entry in json.loads(row["members"] or "[]")]


def members_match(row: dict, members: list[tuple[str, bytes]]) -> bool:
    """Do these bytes have the suffixes, sizes and digests the staged row recorded?"""
    staged = sorted(staged_members(row))
    found = sorted((suffix, len(data), member_digest(data)) for suffix, data in members)
    return len(staged) == len(found) and all(
        s[:2] == f[:2] and (s[2] is None or s[2] == f[2]) for s, f in zip(staged, found))


def tmp_name(path: str) -> str:
    """Where a shard is written before it is published under `path`."""
    folder, _, name = path.rpartition("/")
    return f"{folder}/.{name}.tmp"


class PublishedShards:
    """Sample members copied out of the build's published shards (one header walk per shard, on first use)."""

    def __init__(self, fs, root: str):
        self.fs, self.root = fs, root
        self.index: dict[str, dict[str, tuple[int, int]]] = {}

    def _members(self, shard: str) -> dict[str, tuple[int, int]]:
        if shard not in self.index:
            path, found = storage.join(self.root, "shards", shard), {}
            if self.fs.isfile(path):
                with self.fs.open(path, "rb") as handle, tarfile.open(fileobj=handle, mode="r:") as tar:
                    found = {m.name: (m.offset_data, m.size) for m in tar.getmembers() if m.isfile()}
            self.index[shard] = found
        return self.index[shard]

    def read(self, row: dict) -> list[tuple[str, bytes]] | None:
        """The row's members from its previous shard, when that shard still holds exactly these bytes."""
        shard = row.get("previous")
        if not shard:
            return None
        index = self._members(shard)
        wanted = [(suffix, f"{row['key']}.{suffix}") for suffix, _, _ in staged_members(row)]
        if not all(name in index for _, name in wanted):
            return None
        members = []
        with self.fs.open(storage.join(self.root, "shards", shard), "rb") as handle:
            for suffix, name in wanted:
                offset, size = index[name]
                handle.seek(offset)
                members.append((suffix, handle.read(size)))
        return members if members_match(row, members) else None


def replay_stages(recipe) -> list:
    """The recipe's stages that change a kept record's images, in plan order (`Stage.redo_pixels`)."""
    from pipeline.engine.plan import stage_plan
    from pipeline.stages.base import Stage

    return [stage for stage in stage_plan(recipe, None, None) if type(stage).redo_pixels is not Stage.redo_pixels]


class UnitReader:
    """Reads kept samples of a work unit again through its adapter, as the first pass made them."""

    def __init__(self, recipe, sources: dict[str, SourceLocation] | None = None):
        self.png = recipe.shards.png_compress_level
        self.stages = replay_stages(recipe)
        self.sources = sources or {}
        self.listed: dict[str, dict] = {}  # older listings without unit tasks: each source listed once

    def task(self, unit_id: str, source: str, tasks: dict[str, object]):
        """The unit's task from the listing, else (a build listed before tasks were kept) from the source."""
        from pipeline.engine.units import UnitTask, _adapter

        if unit_id in tasks:
            return tasks[unit_id]
        location = self.sources.get(source)
        if location is None:
            raise MissingPixels(_message(unit_id, f"source {source} is not where this build can read it"))
        if source not in self.listed:
            adapter = _adapter(source, location.root, location.options_json, location.splits)
            self.listed[source] = {unit.id: unit for unit in adapter.work_units()}
        unit = self.listed[source].get(unit_id)
        if unit is None:
            raise MissingPixels(_message(unit_id, f"work unit {unit_id} is no longer listed"))
        return UnitTask(source, location.root, location.options_json, location.splits, unit)

    def read(self, task, wanted: dict[str, dict]) -> dict[str, list[tuple[str, bytes]]]:
        """{id: [(suffix, bytes), ...]} for the `wanted` rows (by id) of one unit; MissingPixels otherwise."""
        from pipeline.engine.units import _adapter

        adapter = _adapter(task.source, task.root, task.options_json, task.splits)
        found: dict[str, list[tuple[str, bytes]]] = {}
        for item in adapter.iter_records(task.unit):
            if not isinstance(item, Record) or item.id not in wanted or item.id in found:
                continue
            item.status = "kept"  # the staged row says so; the stages below act on kept records
            for stage in self.stages:
                stage.redo_pixels(item)
            members = record_members(item, self.png)
            if not members_match(wanted[item.id], members):
                raise MissingPixels(_message(item.id, "its source gives other bytes than the build staged"))
            found[item.id] = members
        absent = sorted(set(wanted) - set(found))
        if absent:
            raise MissingPixels(_message(absent[0], "its source no longer gives it"))
        return found


def _unit_tasks(location: str | None, unit_ids: set[str]) -> dict[str, object]:
    import pickle

    if location is None or not unit_ids:
        return {}
    fs, path = storage.filesystem(location)
    table = pq.read_table(path, filesystem=_arrow_fs(fs), columns=["unit_id", "task"],
                          filters=[("unit_id", "in", sorted(unit_ids))])
    return {unit: pickle.loads(blob) for unit, blob in zip(table.column("unit_id").to_pylist(),
                                                         table.column("task").to_pylist())}


def _arrow_fs(fs):
    """A pyarrow filesystem for an fsspec one (None locally: pyarrow opens plain paths itself)."""
    if storage.is_local(fs):
        return None
    from pyarrow.fs import FSSpecHandler, PyFileSystem

    return PyFileSystem(FSSpecHandler(fs))


def write_shard(job: ShardJob, root: str, recipe, sources: dict[str, SourceLocation] | None = None) -> ShardWritten:
    """Write one shard under its temporary name (`tmp_name`): samples in plan order, members copied from the
    shard that held them or read again from their sources. Finalisation publishes it."""
    with spans.task():  # spans: the second pass's steps (read, decode, encode, write) are recorded too
        return _write_shard(job, root, recipe, sources)


def _write_shard(job: ShardJob, root: str, recipe, sources: dict[str, SourceLocation] | None) -> ShardWritten:
    fs, root = storage.filesystem(root)
    plan_fs, plan_path = storage.filesystem(job.samples_file)
    rows = pq.read_table(plan_path, filesystem=_arrow_fs(plan_fs), filters=[("shard", "=", job.name)],
                         columns=[*PLAN_COLUMNS, "position"]).sort_by("position").to_pylist()
    if len(rows) != job.samples:
        raise RuntimeError(f"the plan lists {len(rows)} samples for {job.name}, expected {job.samples}")
    written = ShardWritten()
    published = PublishedShards(fs, root)
    reader = UnitReader(recipe, sources)
    tasks: dict[str, object] | None = None  # the unit tasks of this shard's samples, read when one is needed

    def samples() -> Iterator[tuple[str, bytes, list[tuple[str, bytes]]]]:
        nonlocal tasks
        start = 0
        while start < len(rows):  # one work unit at a time (the plan orders a shard's samples by unit)
            stop = start
            while stop < len(rows) and rows[stop]["unit_id"] == rows[start]["unit_id"]:
                stop += 1
            unit_rows = rows[start:stop]
            # a sample without images is its JSON alone, which the staged row holds: nothing to read again
            members = {row["id"]: published.read(row) if staged_members(row) else [] for row in unit_rows}
            written.copied += sum(bool(found) for found in members.values())
            wanted = {row["id"]: row for row in unit_rows if members[row["id"]] is None}
            if wanted:
                if tasks is None:
                    tasks = _unit_tasks(job.units_file, {row["unit_id"] for row in rows})
                task = reader.task(unit_rows[0]["unit_id"], unit_rows[0]["source"], tasks)
                members.update(reader.read(task, wanted))
                written.reread += len(wanted)
                written.units_read += 1
            for row in unit_rows:
                yield row["key"], row["sample"].encode("utf-8"), members[row["id"]]
            start = stop

    target = tmp_name(storage.join(root, "shards", job.name))
    storage.makedirs(fs, target.rpartition("/")[0])
    with fs.open(target, "wb") as handle:
        write_samples(handle, samples())
    written.size = fs.size(target)
    return written


def read_samples(rows: list[dict], sources: dict[str, SourceLocation],
                 png_compress_level: int) -> dict[tuple[str, str], list[tuple[str, str, bytes, list]]]:
    """`rows` (id, unit_id, source, key, sample, members) read again from their sources, grouped by
    (source, unit): {(source, unit_id): [(id, key, sample JSON bytes, [(suffix, bytes), ...]), ...]} in id order.
    For pictures of samples no shard holds (the report's gallery); raises MissingPixels when a source is
    gone, changed, or does not give the sample."""
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
            images = record_members(item, png_compress_level)
            recorded = sorted((suffix, size) for suffix, size, _ in staged_members(row))
            if sorted((suffix, len(data)) for suffix, data in images) != recorded:
                raise MissingPixels(_message(item.id, "its source gives other bytes than the build stored"))
            samples.append((row["id"], row["key"], row["sample"].encode("utf-8"), images))
        absent = sorted(set(wanted) - {sample[0] for sample in samples})
        if absent:
            raise MissingPixels(_message(absent[0], "its source does not give it (made by a stage, or removed)"))
        found[(source, unit_id)] = sorted(samples)
    return found


def _message(record_id: str, why: str) -> str:
    return (f"the images of {record_id} are in no shard of this build and cannot be read again ({why}): "
            "rebuild with `unimed build ... --refresh`")
