"""Hub-cache sample trees: the same items as a source's own sample, in its Hugging Face Hub layout.

`write_snapshot` lays files out as `huggingface_hub` does (docs/sources/hub/README.md §1)::

    <root>/hub/datasets--<owner>--<name>/refs/main
                                         blobs/<sha256>
                                         snapshots/<commit>/<path>  -> ../../blobs/<sha256> (relative symlink)

`parquet_bytes` writes rows the way `datasets.push_to_hub` does (images as struct {bytes, path}), with
small row groups so that readers meet several. Each source's `write_hub(root)` in its sample module first
writes the original sample (its own writer, in a temporary folder) and converts those very items, so that
tests can compare the two layouts item by item.
"""

from __future__ import annotations

import hashlib
import io
import os
import tempfile
from collections.abc import Callable
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

IMAGE_TYPE = pa.struct([("bytes", pa.binary()), ("path", pa.string())])


def write_snapshot(root: Path, repo_id: str, files: dict[str, bytes], symlinks: bool = True) -> Path:
    """A Hub-cache entry for `repo_id` holding `files` (relative path -> bytes); returns the snapshot folder."""
    repo = Path(root) / "hub" / ("datasets--" + repo_id.replace("/", "--"))
    commit = hashlib.sha1(repr(sorted((k, hashlib.sha256(v).hexdigest()) for k, v in files.items())).encode()
                          + repo_id.encode()).hexdigest()
    snapshot = repo / "snapshots" / commit
    for relative, data in sorted(files.items()):
        target = snapshot / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        if not symlinks:  # the Windows layout: plain copies, no blobs
            target.write_bytes(data)
            continue
        blob = repo / "blobs" / hashlib.sha256(data).hexdigest()
        blob.parent.mkdir(parents=True, exist_ok=True)
        blob.write_bytes(data)
        if target.is_symlink() or target.exists():
            target.unlink()
        target.symlink_to(os.path.relpath(blob, target.parent))
    (repo / "refs").mkdir(parents=True, exist_ok=True)
    (repo / "refs" / "main").write_text(commit, encoding="utf-8")
    return snapshot


def image_cell(data: bytes | None, path: str | None = None) -> dict | None:
    return None if data is None else {"bytes": data, "path": path}


def parquet_bytes(rows: list[dict], schema: pa.Schema, row_group_size: int = 2) -> bytes:
    buffer = io.BytesIO()
    pq.write_table(pa.Table.from_pylist(rows, schema=schema), buffer, row_group_size=row_group_size)
    return buffer.getvalue()


def zip_bytes(members: dict[str, bytes]) -> bytes:
    """A zip as the uploaders made them (stored members, fixed timestamps: the same bytes on every run)."""
    import zipfile

    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_STORED) as archive:
        for name, data in sorted(members.items()):
            archive.writestr(zipfile.ZipInfo(name, date_time=(2024, 1, 1, 0, 0, 0)), data)
    return buffer.getvalue()


def zipped_folders(files: dict[str, bytes], folders: dict[str, tuple[str, str]]) -> dict[str, bytes]:
    """`files` with each folder packed as the Hub keeps it: folder -> (zip name, member prefix to drop)."""
    out, packed = {}, {}
    for relative, data in files.items():
        folder = relative.split("/", 1)[0]
        if folder in folders and "/" in relative:
            zip_name, drop = folders[folder]
            packed.setdefault(zip_name, {})[relative.removeprefix(drop)] = data
        else:
            out[relative] = data
    out.update({name: zip_bytes(members) for name, members in packed.items()})
    return out


def original_files(writer: Callable[[Path], Path]) -> dict[str, bytes]:
    """Every file of a source's own sample tree, by path relative to its dataset folder."""
    with tempfile.TemporaryDirectory() as tmp:
        base = writer(Path(tmp))
        return {p.relative_to(base).as_posix(): p.read_bytes() for p in sorted(base.rglob("*")) if p.is_file()}
