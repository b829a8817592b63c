"""The first pass's write step, in the Ray workers: manifest rows only, never pixels.

Each batch becomes one `<name>.parquet` of manifest rows (no pixels) in the staging area. A kept
sample's row carries what finalisation needs to plan its shard without the pixels: its shard group,
and for every image member the suffix, the size and a blake2b digest of the bytes the shard will hold
(`shard_bytes`: a passthrough JPEG's own bytes, or the PNG encoding). The shards themselves are
written once, after the global rules have decided (pipeline/engine/finalize.py), from the sources read
again (pipeline/engine/reread.py), which must give bytes with these digests.

The Parquet file is written whole or not at all, so a batch interrupted half-way is simply absent. Its
name derives from the build run and the ids inside, so a task that Ray re-executes rewrites the same
file. All I/O goes through manifests/storage.py (a folder or a URL).
"""

from __future__ import annotations

import hashlib
import io
import json
import pickle
import tarfile
from collections.abc import Iterable
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from manifests import spans, storage
from manifests.images import shard_bytes
from manifests.records import Record
from manifests.schema import STAGING_SCHEMA, member_suffix, record_row, rejection_row
from manifests.shards import shard_group

TAR_BLOCK = tarfile.BLOCKSIZE
SUMMARY_COLUMNS = ("rows", "kept", "rejected", "units_done", "row_bytes")


def write_samples(stream, samples: Iterable[tuple[str, bytes, list[tuple[str, bytes]]]]) -> list[list]:
    """Write (key, sample JSON, [(suffix, bytes), ...]) as WebDataset samples; the one writer of shard bytes.

    The bytes are those of webdataset's `TarWriter(encoder=False, mtime=0, user="", group="", mode=0o444)`
    (ustar, each sample's members in sorted suffix order), written with the standard library: a shard
    writer never imports webdataset (which imports torch). Returns, per sample, its members as
    [suffix, data offset, size] (the JSON first): where each member's bytes sit in the tar.
    """
    offsets: list[list] = []
    with tarfile.open(fileobj=stream, mode="w|", format=tarfile.USTAR_FORMAT) as tar:
        for key, sample, images in samples:
            start = tar.offset
            members = [("json", sample), *images]
            for suffix, data in sorted(members):
                info = tarfile.TarInfo(f"{key}.{suffix}")
                info.size, info.mtime, info.mode, info.uname, info.gname = len(data), 0, 0o444, "", ""
                tar.addfile(info, io.BytesIO(data))
            offsets.append(_member_offsets(start, members))
    return offsets


def _member_offsets(start: int, members: list[tuple[str, bytes]]) -> list[list]:
    """Data offsets of members written from `start` in this order, each a 512-byte header plus padded data.

    webdataset's TarWriter writes a sample's members in sorted suffix order (`__key__` aside); names
    stay under 100 characters, so each header is one block.
    """
    found, offset = [], start
    for suffix, data in sorted(members):
        found.append([suffix, offset + TAR_BLOCK, len(data)])
        offset += TAR_BLOCK + -(-len(data) // TAR_BLOCK) * TAR_BLOCK
    return found


def member_digest(data: bytes) -> str:
    """The digest a staged row records for a member's bytes, and a second read must reproduce."""
    return hashlib.blake2b(data, digest_size=16).hexdigest()


def record_members(record: Record, png_compress_level: int) -> list[tuple[str, bytes]]:
    """A kept record's image members as the shard stores them: [(suffix, bytes), ...]."""
    return [(member_suffix(role, index, image), shard_bytes(image, png_compress_level))
            for role, images in (("in", record.input_images), ("out", record.output_images))
            for index, image in enumerate(images)]


def members_json(members: list[tuple[str, bytes]]) -> str:
    """The staged `members` column: [[suffix, null, size, digest], ...] in member order."""
    return json.dumps([[suffix, None, len(data), member_digest(data)] for suffix, data in members])


def write_staging_batch(
    batch: dict[str, np.ndarray],
    staging_dir: str,
    run: int,
    cards: dict[str, tuple[str, str]],
    png_compress_level: int,
) -> dict[str, np.ndarray]:
    """Ray Data UDF: write one batch's manifest rows; return one summary row (counts) for the batch."""
    with spans.task():  # spans: this batch's spans are written when it ends (manifests/spans.py)
        return _write_staging_batch(batch, staging_dir, run, cards, png_compress_level)


def _write_staging_batch(batch: dict[str, np.ndarray], staging_dir: str, run: int, cards: dict[str, tuple[str, str]],
                         png_compress_level: int) -> dict[str, np.ndarray]:
    fs, staging = storage.filesystem(staging_dir)
    ids = [str(i) for i in batch["id"]]
    name = "b-" + hashlib.blake2b(f"{run}|{'|'.join(ids)}".encode(), digest_size=12).hexdigest()
    parts = batch["part"] if "part" in batch else [0] * len(ids)
    rows: list[dict[str, Any]] = []
    kept = units_done = 0
    for record_id, unit_id, part, kind, blob in zip(ids, batch["unit_id"], parts, batch["kind"], batch["blob"]):
        with spans.span("serialise"):  # spans
            item = pickle.loads(blob)
        if kind == "unit_end":
            count, fingerprint = item
            row = {"id": record_id, "unit_id": unit_id, "kind": "unit_end", "unit_count": int(count),
                   "unit_fingerprint": fingerprint}
            units_done += 1
        elif kind == "record":
            licence, access = cards[item.source]
            row = record_row(item, licence, access, unit_id)
            row["kind"] = "record"
            if item.status == "kept":
                members = record_members(item, png_compress_level)
                row["members"] = members_json(members)
                row["stored_bytes"] = sum(len(data) for _, data in members)
                row["shard_group"] = shard_group(item.task_family or "unknown", [suffix for suffix, _ in members])
                kept += 1
        else:  # a rejection from the adapter, or a unit_error
            licence, access = cards[item.source]
            row = rejection_row(item, licence, access, unit_id)
            row["kind"] = kind
            units_done += kind == "unit_error"
        row["run"], row["part"] = run, int(part)
        rows.append(row)

    with spans.span("write"):  # spans
        buffer = io.BytesIO()
        pq.write_table(pa.Table.from_pylist(rows, schema=STAGING_SCHEMA), buffer)
        storage.write_bytes(fs, storage.join(staging, f"{name}.parquet"), buffer.getvalue())
    records = sum(1 for row in rows if row["kind"] in ("record", "rejection"))
    summary = {"rows": records, "kept": kept, "rejected": records - kept, "units_done": units_done,
               "row_bytes": buffer.tell()}
    return {column: np.array([summary[column]], dtype=np.int64) for column in SUMMARY_COLUMNS}
