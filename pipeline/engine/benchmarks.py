"""Benchmark items for decontamination: the recipe's evaluation splits, read by the same adapters.

`collect_benchmarks` reads every listed benchmark found under --sources-root (on the driver: evaluation
splits are small next to a training corpus), hashes each item with the near-duplicate scores, and writes
`<build>/.state/benchmarks.parquet` with a `missing` note per benchmark that was not found. Finalisation
and `unimed rethreshold`-style re-decisions read that file, so benchmarks are hashed once per build.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from filters.near_duplicates import image_phash, text_minhash
from filters.settings import NearDuplicateSettings
from manifests.records import Record
from sources import get_source
from sources.base import SourceError

log = logging.getLogger(__name__)

BENCHMARK_SCHEMA = pa.schema([("benchmark", pa.string()), ("item_id", pa.string()), ("split", pa.string()),
                              ("pixel_hash", pa.string()), ("phash", pa.int64()), ("text_minhash", pa.binary()),
                              ("is_slice", pa.bool_())])


def benchmark_file(build_dir: Path) -> Path:
    return Path(build_dir) / ".state" / "benchmarks.parquet"


def read_benchmarks(settings: NearDuplicateSettings, sources_root: Path | None) -> tuple[pa.Table, dict[str, str]]:
    """Every item of the listed evaluation splits, hashed; and why any benchmark was not read."""
    rows: list[dict] = []
    missing: dict[str, str] = {}
    for entry in settings.benchmarks:
        try:
            adapter_cls = get_source(entry.name)
        except KeyError:
            missing[entry.name] = "not a registered source (see `unimed sources`)"
            continue
        root = adapter_cls.find_root(Path(sources_root)) if sources_root else None
        if root is None:
            missing[entry.name] = (f"none of {list(adapter_cls.card.root_names)} under {sources_root}"
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
            missing[entry.name] = f"no items in splits {entry.splits} under {root}"
    return pa.Table.from_pylist(rows, schema=BENCHMARK_SCHEMA), missing


def collect_benchmarks(settings: NearDuplicateSettings, sources_root: Path | None, build_dir: Path) -> dict[str, str]:
    """Read and hash the benchmarks into the build's state folder; returns the missing ones."""
    table, missing = read_benchmarks(settings, sources_root)
    for name, why in missing.items():
        log.warning("benchmark %s not read: %s", name, why)
    write_benchmarks(table, missing, build_dir)
    return missing


def write_benchmarks(table: pa.Table, missing: dict[str, str], build_dir: Path) -> None:
    path = benchmark_file(build_dir)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    metadata = {b"unimed5m.missing": repr(sorted(missing.items())).encode()}
    pq.write_table(table.replace_schema_metadata(metadata), tmp)
    os.replace(tmp, path)


def load_benchmarks(build_dir: Path) -> pa.Table | None:
    path = benchmark_file(build_dir)
    return pq.read_table(path).cast(BENCHMARK_SCHEMA) if path.is_file() else None
