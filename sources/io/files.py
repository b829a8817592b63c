"""Where adapters read their files: a local folder or any fsspec URL (`s3://bucket/datasets`, `memory://...`).

A local root stays a plain `pathlib.Path`, so the hot path of a local build is `open`, `os.scandir` and
`stat` with no indirection. A URL root becomes a `UPath` (universal-pathlib: the pathlib API over fsspec),
so `root / "x"`, `.exists()`, `.is_dir()`, `.glob()`, `.read_bytes()`, `.open()` and `.stat()` in an
adapter work unchanged on an object store: each is a request (listings are cached by the filesystem).
What pathlib cannot cover goes through the few helpers here: `open_file` for a path kept as a string (the
per-process parse caches are keyed by strings), `scan`/`walk` for listings, `local_file` for a C library
that wants a file name (nibabel), `file_object` for one that takes a seekable reader (h5py, zipfile).

A worker reads its unit's files itself: a unit carries the root as a string (the URL), never bytes.
"""

from __future__ import annotations

import contextlib
import os
import posixpath
import shutil
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from manifests import storage


def source_path(location: str | os.PathLike) -> Path:
    """A local folder as `Path`, a URL as `UPath` (typed as Path: adapters use the same API on both)."""
    if isinstance(location, Path):
        return location
    if not isinstance(location, str) and is_remote(location):
        return location  # already a UPath
    text = location if isinstance(location, str) else os.fspath(location)
    if storage.is_url(text):
        from upath import UPath

        return UPath(text)
    return Path(text)


def is_remote(path: Any) -> bool:
    """True for a UPath on a non-local filesystem, or a URL string."""
    if isinstance(path, str):
        return storage.is_url(path)
    if isinstance(path, Path):
        return False
    return hasattr(path, "fs") and not storage.is_local(path.fs)


def open_file(path: str | os.PathLike, mode: str = "rb", **kwargs) -> IO:
    """`open` for a local path; the filesystem's reader (ranged GETs) for a URL or a UPath."""
    if isinstance(path, str) and storage.is_url(path):
        import fsspec

        return fsspec.open(path, mode, **kwargs).open()
    if is_remote(path):
        return path.open(mode, **kwargs)
    return open(path, mode, **kwargs)


def mtime_ns(path: Path | str) -> int:
    """The modification time of a file (nanoseconds), as the per-process parse caches key on it.

    On an object store, a number derived from the object's mtime, ETag and size, asked once per
    `REMOTE_INFO_SECONDS` per file and process (adapters ask it per item, which locally is one `stat`)."""
    if not is_remote(path):
        return os.stat(path).st_mtime_ns
    path = source_path(path)
    key, now = str(path), time.monotonic()
    known = _remote_versions.get(key)
    if known is None or now - known[0] > REMOTE_INFO_SECONDS:
        known = (now, _info_version(path.fs.info(path.path)))
        if len(_remote_versions) >= 4096:  # bounded: a worker reads many files over a long build
            _remote_versions.clear()
        _remote_versions[key] = known
    return known[1]


REMOTE_INFO_SECONDS = 60.0
_remote_versions: dict[str, tuple[float, int]] = {}


def _info_version(info: dict) -> int:
    """An integer that changes when an object changes (its size with its ETag or modification time)."""
    import hashlib

    digest = hashlib.blake2b(storage.object_version(info).encode(), digest_size=7).digest()
    return int.from_bytes(digest, "big")


@dataclass(frozen=True)
class Entry:
    """One entry of a folder listing: like `os.DirEntry`, but `path` is a Path/UPath."""

    name: str
    path: Path
    folder: bool

    def is_dir(self) -> bool:
        return self.folder

    def is_file(self) -> bool:
        return not self.folder


def scan(folder: Path) -> list[Entry]:
    """The entries of one folder (one listing request on an object store); [] when it is absent."""
    if not is_remote(folder):
        try:
            with os.scandir(folder) as entries:
                return [Entry(e.name, Path(e.path), e.is_dir()) for e in entries]
        except (FileNotFoundError, NotADirectoryError):
            return []
    try:
        listed = folder.fs.ls(folder.path, detail=True)
    except FileNotFoundError:
        return []
    found = []
    base = folder.path.rstrip("/")
    for info in listed:
        name = posixpath.basename(info["name"].rstrip("/"))
        if not name or info["name"].rstrip("/") == base:
            continue
        found.append(Entry(name, folder / name, info.get("type") == "directory"))
    return found


def walk(folder: Path) -> Iterator[tuple[Path, list[str], list[str]]]:
    """`os.walk` over a local folder or a URL: (folder, sub-folder names, file names), top down, sorted."""
    if not is_remote(folder):
        for current, dirs, names in os.walk(folder):
            dirs.sort()
            yield Path(current), dirs, sorted(names)
        return
    for current, dirs, names in folder.fs.walk(folder.path):
        relative = posixpath.relpath(current, folder.path)
        yield (folder if relative == "." else folder / relative), sorted(dirs), sorted(names)


@contextlib.contextmanager
def name_or_reader(path: Path) -> Iterator[str | IO[bytes]]:
    """For a library that opens a file name or a seekable reader (h5py): the name locally (its native
    reads), a reader of ranged GETs on an object store."""
    if not is_remote(path):
        yield str(path)
        return
    with path.open("rb") as reader:
        yield reader


@contextlib.contextmanager
def local_file(path: Path) -> Iterator[str]:
    """A local file name with `path`'s bytes, for a C library that only opens names (nibabel's sniffing):
    the path itself locally; on an object store one download into a scratch file, removed afterwards."""
    if not is_remote(path):
        yield str(path)
        return
    handle, scratch = tempfile.mkstemp(prefix="unimed-src-", suffix="".join(Path(path.name).suffixes[-2:]))
    os.close(handle)
    try:
        with path.open("rb") as source, open(scratch, "wb") as target:
            shutil.copyfileobj(source, target, 1 << 20)
        yield scratch
    finally:
        os.unlink(scratch)


def lexical_inside(folder: Path, root: Path) -> str | None:
    """`folder` relative to `root` in POSIX form, lexically (a Hub snapshot's files are links out of it),
    or None when it lies outside `root`; for a local path or a UPath."""
    if is_remote(root) or is_remote(folder):
        relative = posixpath.relpath(str(getattr(folder, "path", folder)), str(getattr(root, "path", root)).rstrip("/"))
    else:
        relative = Path(os.path.relpath(folder, root)).as_posix()
    return None if relative.split("/")[0] == ".." else relative


def relative_to(path: Path, root: Path) -> str:
    """`path` relative to `root`, in POSIX form, for a local path or a UPath."""
    if is_remote(root):
        return posixpath.relpath(str(path.path), str(root.path).rstrip("/"))
    return Path(path).relative_to(root).as_posix()
