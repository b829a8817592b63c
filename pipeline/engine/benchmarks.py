"""Benchmark items for decontamination: the recipe's evaluation splits, read by the same adapters.

`collect_benchmarks` reads every listed benchmark found under --sources-root (on the driver: evaluation
splits are small next to a training corpus), hashes each item with the near-duplicate scores, and writes
`<build>/.state/benchmarks.parquet` with a `missing` note per benchmark that was not found. Finalisation
and `unimed rethreshold`-style re-decisions read that file, so benchmarks are hashed once per build.
"""

from __future__ import annotations

import io
import logging
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from filters.near_duplicates import image_phash, text_minhash
from filters.settings import NearDuplicateSettings
from manifests import storage
from manifests.records import Record
from sources import get_source
from sources.base import SourceError
from sources.io.files import source_path

log = logging.getLogger(__name__)

BENCHMARK_SCHEMA = pa.schema([("benchmark", pa.string()), ("item_id", pa.string()), ("split", pa.string()),
                              ("pixel_hash", pa.string()), ("phash", pa.int64()), ("text_minhash", pa.binary()),
                              ("is_slice", pa.bool_())])


def benchmark_file(build_dir: Path | str) -> str:
    """Where a build keeps its hashed benchmarks: a path, or a URL on object storage."""
    fs, root = storage.filesystem(build_dir)
    return storage.location(fs, storage.join(root, ".state", "benchmarks.parquet"))


def read_benchmarks(settings: NearDuplicateSettings,
                    sources_root: Path | str | None) -> tuple[pa.Table, dict[str, str]]:
    """Every item of the listed evaluation splits, hashed; and why any benchmark was not read."""
    rows: list[dict] = []
    missing: dict[str, str] = {}
    for entry in settings.benchmarks:
        try:
            adapter_cls = get_source(entry.name)
        except KeyError:
            missing[entry.name] = "not a registered source (see `unimed sources`)"
            continue
        root = adapter_cls.find_root(source_path(sources_root)) if sources_root else None
        if root is None:
            # no machine's path in the note: it goes into stats.json and so into a release
            missing[entry.name] = (f"none of {list(adapter_cls.card.root_names)} under --sources-root"
                                   if sources_root else "no --sources-root")
            continue
        adapter = adapter_cls(root, entry.options, entry.splits)
        before = len(rows)
        try:
            for unit in adapter.work_units():
                for item in adapter.iter_records(unit):
                    if not isinstance(item, Record):
                        continue
                    first = item.images[0] if item.images else None
                    rows.append({"benchmark": entry.name, "item_id": item.id, "split": item.split,
                                 "pixel_hash": first.pixel_hash if first else None,
                                 "phash": image_phash(first) if first else None,
                                 "text_minhash": text_minhash(item.text, settings.num_perm, settings.shingle),
                                 "is_slice": bool(first is not None and first.slice_index is not None)})
        except SourceError as err:
            missing[entry.name] = str(err)
            del rows[before:]
            continue
        if len(rows) == before:
            missing[entry.name] = f"no items in splits {entry.splits} in {root.name}/"
    return pa.Table.from_pylist(rows, schema=BENCHMARK_SCHEMA), missing


def collect_benchmarks(settings: NearDuplicateSettings, sources_root: Path | str | None,
                       build_dir: Path | str) -> dict[str, str]:
    """Read and hash the benchmarks into the build's state folder; returns the missing ones."""
    table, missing = read_benchmarks(settings, sources_root)
    for name, why in missing.items():
        log.warning("benchmark %s not read: %s (sources root %s)", name, why, sources_root)
    write_benchmarks(table, missing, build_dir)
    return missing


def write_benchmarks(table: pa.Table, missing: dict[str, str], build_dir: Path | str) -> None:
    fs, path = storage.filesystem(benchmark_file(build_dir))
    metadata = {b"unimed5m.missing": repr(sorted(missing.items())).encode()}
    buffer = io.BytesIO()
    pq.write_table(table.replace_schema_metadata(metadata), buffer)
    storage.write_bytes(fs, path, buffer.getvalue())  # published whole (tmp + rename, or one PUT)


def load_benchmarks(build_dir: Path | str) -> pa.Table | None:
    fs, path = storage.filesystem(benchmark_file(build_dir))
    if not fs.isfile(path):
        return None
    table = pq.read_table(io.BytesIO(storage.read_bytes(fs, path)))
    return table.cast(BENCHMARK_SCHEMA.with_metadata(table.schema.metadata))  # keeps the `missing` note
