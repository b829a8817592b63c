"""The write step, in the Ray workers: every pixel of a build is written here, once, in its final form.

Each batch becomes, per (unit, part, shard group) it holds, a *piece*: a WebDataset tar of that part's
kept samples, in id order, exactly as a final shard holds them (`write_samples`: member order, mtime 0);
plus one `<name>.parquet` of manifest rows for every row of the batch (no pixels), with each sample's
piece and member offsets. Finalisation (pipeline/engine/finalize.py) moves a piece into `shards/` when it
holds exactly its shard's kept samples, and copies members out of it only when global rules rejected
some. Pieces are written first, the Parquet file last: it marks the batch done, so a batch interrupted
half-way is simply absent. Names derive from the build run and the ids inside, so a task that Ray
re-executes rewrites the same files. All I/O goes through manifests/storage.py (a folder or a URL).
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
from manifests.records import Record, shard_key
from manifests.schema import STAGING_SCHEMA, member_suffix, record_row, rejection_row
from manifests.shards import shard_group

TAR_BLOCK = tarfile.BLOCKSIZE
SUMMARY_COLUMNS = ("id", "unit_id", "kind", "source", "status", "reason", "piece_bytes", "row_bytes")


def write_samples(stream, samples: Iterable[tuple[str, bytes, list[tuple[str, bytes]]]]) -> list[list]:
    """Write (key, sample JSON, [(suffix, bytes), ...]) as WebDataset samples; the one writer of shard bytes.

    Returns, per sample, its members as [suffix, data offset, size] (the JSON first): where each member's
    bytes sit in the tar, so a later copy reads them without parsing the tar.

    The bytes are webdataset's TarWriter's (members in sorted suffix order, mtime 0, mode 0444, empty
    user and group, Python's default tar format), written with tarfile itself: importing webdataset
    imports torch (webdataset.pytorch), some 300 MiB and seconds of start-up in every Ray worker.
    """
    offsets: list[list] = []
    with tarfile.open(fileobj=stream, mode="w|") as tar:
        for key, sample, images in samples:
            start = tar.offset
            members = dict([("json", sample), *images])
            for suffix in sorted(members):
                info = tarfile.TarInfo(f"{key}.{suffix}")
                info.size, info.mtime, info.mode, info.uname, info.gname = len(members[suffix]), 0, 0o444, "", ""
                tar.addfile(info, io.BytesIO(members[suffix]))
            offsets.append(_member_offsets(start, [("json", sample), *images]))
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


def write_staging_batch(
    batch: dict[str, np.ndarray],
    staging_dir: str,
    run: int,
    cards: dict[str, tuple[str, str]],
    png_compress_level: int,
) -> dict[str, np.ndarray]:
    """Ray Data UDF: write one batch's pieces and rows; return a small summary row per input row."""
    with spans.task():  # spans: this batch's spans are written when it ends (manifests/spans.py)
        return _write_staging_batch(batch, staging_dir, run, cards, png_compress_level)


def _write_staging_batch(batch: dict[str, np.ndarray], staging_dir: str, run: int, cards: dict[str, tuple[str, str]],
                         png_compress_level: int) -> dict[str, np.ndarray]:
    fs, staging = storage.filesystem(staging_dir)
    ids = [str(i) for i in batch["id"]]
    name = "b-" + hashlib.blake2b(f"{run}|{'|'.join(ids)}".encode(), digest_size=12).hexdigest()
    parts = batch["part"] if "part" in batch else [0] * len(ids)
    rows: list[dict[str, Any]] = []
    pending: dict[tuple[str, int, str], list[tuple[dict, Record]]] = {}  # (unit, part, group) -> kept rows
    for record_id, unit_id, part, kind, blob in zip(ids, batch["unit_id"], parts, batch["kind"], batch["blob"]):
        with spans.span("serialise"):  # spans
            item = pickle.loads(blob)
        if kind == "unit_end":
            count, fingerprint = item
            row = {"id": record_id, "unit_id": unit_id, "kind": "unit_end", "unit_count": int(count),
                   "unit_fingerprint": fingerprint}
        elif kind == "record":
            licence, access = cards[item.source]
            row = record_row(item, licence, access, unit_id)
            row["kind"] = "record"
            if item.status == "kept":
                suffixes = [member_suffix(role, index, image)
                            for role, images in (("in", item.input_images), ("out", item.output_images))
                            for index, image in enumerate(images)]
                group = shard_group(item.task_family or "unknown", suffixes)
                pending.setdefault((str(unit_id), int(part), group), []).append((row, item))
        else:  # a rejection from the adapter, or a unit_error
            licence, access = cards[item.source]
            row = rejection_row(item, licence, access, unit_id)
            row["kind"] = kind
        row["run"], row["part"] = run, int(part)
        rows.append(row)

    piece_bytes = 0
    for index, (_, kept) in enumerate(sorted(pending.items())):
        piece = f"{name}-{index:04d}.tar"
        kept = sorted(kept, key=lambda pair: pair[0]["id"])
        piece_bytes += _write_piece(fs, storage.join(staging, piece), piece, kept, png_compress_level)
    with spans.span("write"):  # spans
        buffer = io.BytesIO()
        pq.write_table(pa.Table.from_pylist(rows, schema=STAGING_SCHEMA), buffer)
        storage.write_bytes(fs, storage.join(staging, f"{name}.parquet"), buffer.getvalue())
    row_bytes = buffer.tell()

    summary: dict[str, list] = {column: [] for column in SUMMARY_COLUMNS}
    for position, row in enumerate(rows):
        summary["id"].append(row["id"])
        summary["unit_id"].append(str(row["unit_id"]))
        summary["kind"].append(str(row["kind"]))
        summary["source"].append(row.get("source") or str(row["unit_id"]).split("/", 1)[0])
        summary["status"].append(row.get("status"))
        summary["reason"].append(row.get("reason"))
        summary["piece_bytes"].append(piece_bytes if position == 0 else 0)  # the batch's, counted once
        summary["row_bytes"].append(row_bytes if position == 0 else 0)
    return {column: np.array(values, dtype=object) for column, values in summary.items()}


def _write_piece(fs, path: str, piece: str, kept: list[tuple[dict, Record]], png_compress_level: int) -> int:
    """One piece: the kept samples of a (unit, part, group), in id order; sets each row's `piece` and `members`."""
    samples = []
    for row, record in kept:
        images = [(member_suffix(role, index, image), shard_bytes(image, png_compress_level))
                  for role, images in (("in", record.input_images), ("out", record.output_images))
                  for index, image in enumerate(images)]
        row["stored_bytes"] = sum(len(data) for _, data in images)
        samples.append((row["key"] or shard_key(record.id), row["sample"].encode("utf-8"), images))
    with spans.span("write", len(samples)):  # spans
        buffer = io.BytesIO()
        offsets = write_samples(buffer, samples)
        storage.write_bytes(fs, path, buffer.getvalue())
    for (row, _), members in zip(kept, offsets):
        row["piece"], row["members"] = piece, json.dumps([m for m in members if m[0] != "json"])
    return buffer.tell()
