"""Hugging Face Hub copies of datasets, as `huggingface-cli download` leaves them: no network, files only.

The Hub cache (docs/sources/hub/README.md §1)::

    <hub cache>/datasets--<owner>--<name>/
        refs/main                 one line: the commit of `main`
        snapshots/<commit>/...    the repo tree; files are relative symlinks into ../../blobs (copies on Windows)
        blobs/<sha>

A `--local-dir` download is one snapshot folder with real files. Both are read the same way: a snapshot
folder is the dataset root. The cache may be given as the `hub/` folder, as `$HF_HOME` (holding `hub/`),
or as one `datasets--owner--name` folder.

Parquet shards are read in row groups (pyarrow), never whole: a work unit names a file and a row-group
range, `iter_parquet_rows` streams that range in record batches. Images the `datasets` library embedded
(struct `{bytes, path}`) go through the same decoder as files (`decode_bytes`), so JPEG bytes pass through
unchanged. Zips the cache keeps packed are read member by member, matched by basename or path suffix.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import zipfile
from collections.abc import Iterator, Sequence
from functools import lru_cache
from pathlib import Path
from typing import Any

from manifests.records import Image
from sources.io.files import mtime_ns, open_file, source_path
from sources.io.image import ImageDecodeError, decode_bytes

REVISION = re.compile(r"^[0-9a-f]{40}$")
ROWS_PER_UNIT = 2048  # a unit holds whole row groups up to about this many rows (at least one group)
BATCH_ROWS = 64  # rows decoded at once inside a row group: memory is bounded by this, not the shard


def cache_folder_name(repo_id: str) -> str:
    """`owner/name` -> `datasets--owner--name` (case kept, as huggingface_hub writes it)."""
    return "datasets--" + repo_id.replace("/", "--")


def download_command(repo_id: str) -> str:
    """The command that would fetch a missing copy (this project never downloads)."""
    return f"huggingface-cli download --repo-type dataset {repo_id}"


def _hub_dirs(sources_root: Path) -> list[Path]:
    """Folders that may hold `datasets--*` entries, given a root that is a cache, `$HF_HOME`, or a parent."""
    root = source_path(sources_root)
    return [folder for folder in (root, root / "hub", root / "huggingface" / "hub") if folder.is_dir()]


def is_hub_cache(sources_root: Path) -> bool:
    return any(next(folder.glob("datasets--*--*"), None) is not None for folder in _hub_dirs(sources_root))


def snapshot_of(repo_folder: Path) -> Path | None:
    """The snapshot folder `refs/main` names, else the newest snapshot present; None when there is none."""
    snapshots = repo_folder / "snapshots"
    ref = repo_folder / "refs" / "main"
    if ref.is_file():
        commit = ref.read_text(encoding="utf-8", errors="replace").strip()
        if REVISION.match(commit) and (snapshots / commit).is_dir():
            return snapshots / commit
    present = sorted((p for p in snapshots.iterdir() if p.is_dir()), key=lambda p: (p.stat().st_mtime_ns, p.name)) \
        if snapshots.is_dir() else []
    return present[-1] if present else None


def find_snapshot(sources_root: Path, repo_ids: Sequence[str]) -> Path | None:
    """The snapshot of the first of `repo_ids` present in the Hub cache at (or under) `sources_root`."""
    root = source_path(sources_root)
    for repo_id in repo_ids:
        folder_name = cache_folder_name(repo_id)
        if root.name == folder_name and root.is_dir():
            found = snapshot_of(root)
            if found:
                return found
        for hub in _hub_dirs(root):
            if (hub / folder_name).is_dir():
                found = snapshot_of(hub / folder_name)
                if found:
                    return found
    return None


def default_hub_cache() -> Path | None:
    """`$HF_HUB_CACHE`, else `$HF_HOME/hub`, when set (the home-folder default is not guessed)."""
    if os.environ.get("HF_HUB_CACHE"):
        return source_path(os.environ["HF_HUB_CACHE"])
    if os.environ.get("HF_HOME"):
        return source_path(os.environ["HF_HOME"]) / "hub"
    return None


# Parquet ---------------------------------------------------------------------------------------------------


def split_files(root: Path, pattern: str, splits: dict[str, str]) -> dict[str, list[str]]:
    """Parquet files per canonical split: `pattern` has `{split}` for the Hub split name (`data/{split}-*.parquet`)."""
    found = {}
    for hub_split, split in splits.items():
        files = sorted(p.relative_to(root).as_posix() for p in root.glob(pattern.format(split=hub_split)))
        if files:
            found.setdefault(split, []).extend(files)
    return found


def row_group_ranges(path: Path, rows_per_unit: int = ROWS_PER_UNIT) -> list[tuple[int, int, int]]:
    """(first row group, stop row group, first row index) of each unit; reads only the file footer."""
    import pyarrow.parquet as pq

    with open_file(path) as handle:
        metadata = pq.ParquetFile(handle).metadata
    ranges, start, first_row, rows, row = [], 0, 0, 0, 0
    for group in range(metadata.num_row_groups):
        count = metadata.row_group(group).num_rows
        if rows and rows + count > rows_per_unit:
            ranges.append((start, group, first_row))
            start, first_row, rows = group, row, 0
        rows += count
        row += count
    if start < metadata.num_row_groups:
        ranges.append((start, metadata.num_row_groups, first_row))
    return ranges


def iter_parquet_rows(path: Path, row_groups: tuple[int, int], first_row: int = 0,
                      columns: Sequence[str] | None = None) -> Iterator[tuple[int, dict[str, Any]]]:
    """(row index in the file, row as a dict) for the row groups [start, stop), in small batches."""
    import pyarrow.parquet as pq

    start, stop = row_groups
    with open_file(path) as stream:
        handle = pq.ParquetFile(stream)
        present = set(handle.schema_arrow.names)
        wanted = [c for c in columns if c in present] if columns else None
        row = first_row
        for batch in handle.iter_batches(batch_size=BATCH_ROWS, row_groups=list(range(start, stop)), columns=wanted):
            for values in batch.to_pylist():
                yield row, values
                row += 1


def parquet_columns(path: Path) -> list[str]:
    import pyarrow.parquet as pq

    with open_file(path) as handle:
        return list(pq.ParquetFile(handle).schema_arrow.names)


def image_cell_bytes(cell: Any) -> bytes | None:
    """The bytes of a `datasets` Image cell (struct `{bytes, path}`) or of a plain binary cell."""
    if isinstance(cell, dict):
        cell = cell.get("bytes")
    return bytes(cell) if isinstance(cell, (bytes, bytearray, memoryview)) else None


def decode_image_cell(cell: Any, *, source_path: str) -> Image:
    """An embedded image through the same decoder as a file; a null or path-only cell is `missing_file`."""
    data = image_cell_bytes(cell)
    if data is None:
        raise ImageDecodeError("missing_file", f"{source_path}: no embedded image bytes")
    return decode_bytes(data, source_path=source_path)


def content_key(split: str, image_bytes: bytes, question: str, answer: str) -> str:
    """The join key of a QA row across layouts when no original id survives on the Hub (vqa_rad, pathvqa):
    sha256 of the image bytes with the Hub's text normalisation of question and answer."""
    digest = hashlib.sha256()
    for part in (split.encode(), hashlib.sha256(image_bytes).digest(), hub_text(question).encode(),
                 hub_text(answer).encode()):
        digest.update(len(part).to_bytes(8, "big") + part)
    return digest.hexdigest()


def hub_text(value: Any) -> str:
    """flaviagiammarino's processing.py: `re.sub(' +', ' ', str(x).lower()).replace(" ?", "?").strip()`."""
    return re.sub(" +", " ", str(value).lower()).replace(" ?", "?").strip()


# Zips kept packed in the cache ------------------------------------------------------------------------------


@lru_cache(maxsize=32)
def _zip_index(path: str, mtime_ns: int) -> dict[str, tuple[str, ...]]:
    """Member names by basename (the central directory only; nothing is decompressed)."""
    by_basename: dict[str, list[str]] = {}
    with open_file(path) as stream, zipfile.ZipFile(stream) as archive:
        for info in archive.infolist():
            if not info.is_dir():
                by_basename.setdefault(info.filename.rsplit("/", 1)[-1], []).append(info.filename)
    return {name: tuple(sorted(members)) for name, members in by_basename.items()}


@lru_cache(maxsize=8)
def _zip_names(path: str, mtime_ns: int) -> tuple[str, ...]:
    with open_file(path) as stream, zipfile.ZipFile(stream) as archive:
        return tuple(info.filename for info in archive.infolist() if not info.is_dir())


def zip_names(path: Path) -> tuple[str, ...]:
    """Every file member of a zip (central directory only); BadZipFile/OSError when it is not readable."""
    return _zip_names(str(path), mtime_ns(path))


@lru_cache(maxsize=4)
def _zip_json(path: str, mtime_ns: int, member: str):
    with open_file(path) as stream, zipfile.ZipFile(stream) as archive:
        return json.loads(archive.read(member).decode("utf-8"))


def zip_json_list(path: Path, member: str, what: str) -> list:
    """The JSON list in one zip member; ValueError (or UnicodeDecodeError) says why it is not one."""
    items = _zip_json(str(path), mtime_ns(path), member)
    if not isinstance(items, list):
        raise ValueError(f"expected a JSON list of {what}, got {type(items).__name__}")
    return items


class ZipImages:
    """Members of one or more zips, found by relative path suffix (`xmlab0/source.jpg`) or by basename."""

    def __init__(self, zips: Sequence[Path]):
        self.zips = [source_path(z) for z in zips]
        self._open: dict[str, zipfile.ZipFile] = {}
        self._streams: list = []

    def locate(self, relative: str) -> tuple[Path, str] | None:
        relative = relative.strip().lstrip("/")
        basename = relative.rsplit("/", 1)[-1]
        for path in self.zips:
            try:
                members = _zip_index(str(path), mtime_ns(path)).get(basename, ())
            except (zipfile.BadZipFile, OSError) as err:
                raise ImageDecodeError("unreadable_file", f"{path.name}: not a readable zip ({err})") from err
            if "/" in relative:
                members = tuple(n for n in members if n == relative or n.endswith("/" + relative))
            if members:
                return path, members[0]
        return None

    def read(self, relative: str) -> bytes:
        found = self.locate(relative)
        if found is None:
            raise ImageDecodeError("missing_file", f"{relative}: not in {[z.name for z in self.zips]}")
        path, member = found
        if str(path) not in self._open:  # one reader per zip: members are ranged reads of it
            self._streams.append(open_file(path))
            self._open[str(path)] = zipfile.ZipFile(self._streams[-1])
        try:
            return self._open[str(path)].read(member)
        except (zipfile.BadZipFile, OSError, KeyError) as err:
            raise ImageDecodeError("unreadable_file", f"{path.name}:{member}: {err}") from err

    def decode(self, relative: str, *, source_path: str) -> Image:
        return decode_bytes(self.read(relative), source_path=source_path)

    def close(self) -> None:
        for archive in self._open.values():
            archive.close()
        for stream in self._streams:
            stream.close()
        self._streams.clear()
        self._open.clear()
