"""The staging area: where decided records land before the final, deterministic shards are packed.

Each batch becomes `<name>.tar` (kept records' images, uncompressed members) plus `<name>.parquet`
(a manifest row for every row of the batch, with the byte offset of each image in the tar). Both are
written under a temporary name and renamed; the Parquet file is renamed last and is what marks the
batch done, so a batch interrupted half-way is simply absent. Batch names derive from the build run
and the ids inside, so a task that Ray re-executes rewrites the same files. The staging folder is a
location (a local path or an fsspec URL, manifests/storage.py): the tar is built in the worker's own
scratch file and then published.
"""

from __future__ import annotations

import hashlib
import json
import pickle
import tarfile
from io import BytesIO
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from manifests.schema import STAGING_SCHEMA, member_suffix, record_row, rejection_row
from manifests.records import Record, shard_key
from manifests.images import shard_bytes
from manifests import storage

TAR_BLOCK = tarfile.BLOCKSIZE


def _tarinfo(name: str, size: int) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.size, info.mtime, info.mode, info.uname, info.gname = size, 0, 0o444, "", ""
    return info


def write_staging_batch(
    batch: dict[str, np.ndarray],
    staging_dir: str,
    run: int,
    cards: dict[str, tuple[str, str]],
    png_compress_level: int,
) -> dict[str, np.ndarray]:
    """Ray Data UDF: stage one batch, return a small summary row per input row (for progress/stats)."""
    fs, staging = storage.filesystem(staging_dir)
    ids = [str(i) for i in batch["id"]]
    name = "b-" + hashlib.blake2b(f"{run}|{'|'.join(ids)}".encode(), digest_size=12).hexdigest()
    tar_tmp, tar_name = storage.scratch_file(".tar"), f"{name}.tar"
    rows: list[dict[str, Any]] = []
    summary = {"id": [], "unit_id": [], "kind": [], "source": [], "status": [], "reason": []}

    with tarfile.open(tar_tmp, "w", format=tarfile.GNU_FORMAT) as tar:
        for record_id, unit_id, kind, blob in zip(ids, batch["unit_id"], batch["kind"], batch["blob"]):
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
                    row["members"], row["stored_bytes"] = _add_images(tar, item, png_compress_level)
                    row["staging_tar"] = tar_name
            else:  # a rejection from the adapter, or a unit_error
                licence, access = cards[item.source]
                row = rejection_row(item, licence, access, unit_id)
                row["kind"] = kind
            row["run"] = run
            rows.append(row)
            summary["id"].append(record_id)
            summary["unit_id"].append(str(unit_id))
            summary["kind"].append(str(kind))
            summary["source"].append(row.get("source") or str(unit_id).split("/", 1)[0])
            summary["status"].append(row.get("status"))
            summary["reason"].append(row.get("reason"))
    storage.put_file(fs, tar_tmp, storage.join(staging, tar_name))

    buffer = BytesIO()
    pq.write_table(pa.Table.from_pylist(rows, schema=STAGING_SCHEMA), buffer)
    storage.write_bytes(fs, storage.join(staging, f"{name}.parquet"), buffer.getvalue())  # last: marks the batch done
    return {column: np.array(values, dtype=object) for column, values in summary.items()}


def _add_images(tar: tarfile.TarFile, record: Record, png_compress_level: int) -> tuple[str, int]:
    """Write a kept record's images into the staging tar; return the member table and total bytes."""
    key = shard_key(record.id)
    members, total = [], 0
    for role, images in (("in", record.input_images), ("out", record.output_images)):
        for index, image in enumerate(images):
            data = shard_bytes(image, png_compress_level)
            suffix = member_suffix(role, index, image)
            tar.addfile(_tarinfo(f"{key}.{suffix}", len(data)), BytesIO(data))
            data_offset = tar.offset - -(-len(data) // TAR_BLOCK) * TAR_BLOCK
            members.append([suffix, data_offset, len(data)])
            total += len(data)
    return json.dumps(members), total


def read_member(staging_dir: str, tar_name: str, offset: int, size: int) -> bytes:
    fs, staging = storage.filesystem(staging_dir)
    data = storage.read_range(fs, storage.join(staging, tar_name), offset, size)
    if len(data) != size:
        raise OSError(f"staging file {tar_name} is truncated at offset {offset}")
    return data
