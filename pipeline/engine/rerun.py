"""What a rerun compares: the unit listing as written, and the record of the last finalisation.

The listing (`write_listing`) is streamed into Parquet as the adapters list units, one pickled `UnitTask`
per row and a digest of them all in the file's footer: the driver holds one row group of tasks, never the
list, and Ray Data reads the tasks back (pipeline/engine/build.py). After a complete finalisation the build
records what it was made from and what it published (`record_finalisation`: the listing's digest, the
recipe's, and a signature of every output file's name, size and modification time). A rerun whose listing,
recipe and outputs all match (`unchanged_finalisation`) stops there: nothing is staged, finalised or
rewritten, and the work is proportional to listing the inputs' metadata.
"""

from __future__ import annotations

import hashlib
import json
import pickle
import posixpath
from collections.abc import Iterable
from dataclasses import dataclass

import pyarrow as pa
import pyarrow.parquet as pq

from manifests import storage
from pipeline.config import Recipe
from pipeline.engine.finalize import FinalizeResult
from pipeline.engine.units import UnitTask


@dataclass
class Listing:
    """The build's unit listing, written as it was listed: where, how many units, and a digest of them all."""

    path: str  # a local scratch file, until the build publishes it as .state/units.parquet
    count: int
    digest: str


LISTING_SCHEMA = pa.schema([("unit_id", pa.string()), ("source", pa.string()), ("fingerprint", pa.string()),
                            ("task", pa.binary())])
LISTING_KEY = b"unimed5m.listing_digest"


def write_listing(tasks: Iterable[UnitTask], rows_per_group: int = 512) -> Listing:
    """Stream unit tasks into a Parquet listing (a local scratch file) as they are listed: the driver holds one
    row group of them, never the list. The digest covers every task in listing order (its source, root,
    options, splits, unit and input fingerprint): equal digests mean the same units from the same inputs."""
    path = storage.scratch_file(".parquet")
    digest = hashlib.blake2b(digest_size=16)
    count, pending = 0, []
    with pq.ParquetWriter(path, LISTING_SCHEMA) as writer:
        def flush() -> None:
            writer.write_table(pa.Table.from_pylist(pending, schema=LISTING_SCHEMA))
            pending.clear()

        for task in tasks:
            blob = pickle.dumps(task, protocol=5)
            digest.update(hashlib.blake2b(blob, digest_size=16).digest())
            pending.append({"unit_id": task.unit.id, "source": task.source, "fingerprint": task.fingerprint,
                            "task": blob})
            count += 1
            if len(pending) >= rows_per_group:
                flush()
        if pending or not count:
            flush()
        writer.add_key_value_metadata({LISTING_KEY: digest.hexdigest()})
    return Listing(path, count, digest.hexdigest())


def listing_digest(fs, units_file: str) -> str | None:
    """The digest a listing was written with (None for listings written before it was kept)."""
    with fs.open(units_file, "rb") as handle:
        metadata = pq.ParquetFile(handle).metadata.metadata or {}
    value = metadata.get(LISTING_KEY)
    return value.decode() if value else None


def recipe_digest(recipe: Recipe, access: str | None) -> str:
    """Everything in the recipe (decisions included) and the licence gate: what a finalisation depends on
    besides the staged rows."""
    text = json.dumps({"recipe": recipe.to_dict(), "access": access}, sort_keys=True, default=str)
    return hashlib.blake2b(text.encode(), digest_size=16).hexdigest()


def outputs_signature(fs, build_root: str) -> str:
    """A digest of the name, size and modification time of every output file (everything but .state)."""
    fs.invalidate_cache()
    if not fs.exists(build_root):
        return ""
    digest = hashlib.blake2b(digest_size=16)
    for path, info in sorted(fs.find(build_root, detail=True).items()):
        relative = posixpath.relpath(path, build_root)
        if relative.split("/", 1)[0] == ".state":
            continue
        stamp = info.get("mtime") or info.get("LastModified") or info.get("last_modified") or ""
        digest.update(f"{relative}\t{info.get('size')}\t{stamp}\n".encode())
    return digest.hexdigest()


FINALIZED = "finalized.json"


def record_finalisation(fs, build_root: str, listing: str | None, recipe: Recipe, access: str | None,
                        result: FinalizeResult, benchmarks: str | None = None) -> None:
    """After a complete finalisation (outputs, stats and resolved recipe written): what it was made from and
    what it published, so that a rerun with the same listing, recipe and outputs stops there."""
    if listing is None:
        return
    record = {"listing": listing, "recipe": recipe_digest(recipe, access), "benchmarks": benchmarks,
              "outputs": outputs_signature(fs, build_root), "failed_units": len(result.failed_units),
              "result": {"kept": result.kept, "rejected": result.rejected, "shards": result.shards,
                         "shard_bytes": result.shard_bytes, "alignment": result.alignment,
                         "near_duplicates": result.near_duplicates}}
    storage.write_text(fs, storage.join(build_root, ".state", FINALIZED), json.dumps(record))


def forget_finalisation(fs, build_root: str) -> None:
    """Outputs are about to change: a rerun must not take them for the recorded ones."""
    storage.remove(fs, storage.join(build_root, ".state", FINALIZED))


def unchanged_finalisation(fs, build_root: str, listing: str, recipe: Recipe, access: str | None,
                           benchmarks: str | None) -> FinalizeResult | None:
    """The recorded finalisation's result when it was made from this listing and recipe, completed every
    unit, and its outputs are still as it left them; else None (the build finalises again)."""
    path = storage.join(build_root, ".state", FINALIZED)
    if not storage.exists(fs, path):
        return None
    try:
        record = json.loads(storage.read_text(fs, path))
        same = (record["listing"] == listing and record["recipe"] == recipe_digest(recipe, access)
                and record["benchmarks"] == benchmarks and record["failed_units"] == 0)
        if not same or record["outputs"] != outputs_signature(fs, build_root):
            return None
        return FinalizeResult(**record["result"])
    except (ValueError, KeyError, TypeError):
        return None
