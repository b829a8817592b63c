"""Where a build lives: a local folder or any fsspec URL (`s3://bucket/prefix`, `gs://...`, `memory://`).

Every read and write of a build's outputs and state goes through these few functions, so that the same
code writes a local folder and an object store. A file appears under its final name whole or not at
all: locally by writing a temporary name and renaming it; on an object store by one PUT (or a completed
multipart upload), which the store publishes atomically.

Credentials and endpoints come from the usual environment (`AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`,
`AWS_ENDPOINT_URL` for an S3-compatible server); nothing here names a host.
"""

from __future__ import annotations

import os
import posixpath
import shutil
import tempfile
from pathlib import Path

import fsspec
from fsspec.implementations.local import LocalFileSystem


def filesystem(url: str | os.PathLike) -> tuple[fsspec.AbstractFileSystem, str]:
    """(filesystem, path inside it) for a local path or an fsspec URL."""
    return fsspec.core.url_to_fs(str(url))


def is_local(fs: fsspec.AbstractFileSystem) -> bool:
    return isinstance(fs, LocalFileSystem)


def is_url(location: str | os.PathLike) -> bool:
    """True for `scheme://...` locations other than plain files."""
    text = str(location)
    return "://" in text and not text.startswith("file://")


def as_location(location: str | os.PathLike) -> Path | str:
    """A build's location as callers hold it: a `Path` for a local folder, the URL string otherwise."""
    return location if isinstance(location, str) and is_url(location) else Path(location)


def join(base: str, *parts: str) -> str:
    return posixpath.join(str(base), *parts)


def write_bytes(fs: fsspec.AbstractFileSystem, path: str, data: bytes) -> None:
    """Publish `data` at `path` atomically (tmp + rename locally; one PUT on an object store)."""
    if is_local(fs):
        target = Path(path)
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")  # two workers may publish the same name
        with open(tmp, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, target)
    else:
        fs.pipe_file(path, data)


def write_text(fs: fsspec.AbstractFileSystem, path: str, text: str) -> None:
    write_bytes(fs, path, text.encode("utf-8"))


def put_file(fs: fsspec.AbstractFileSystem, local_file: str | os.PathLike, path: str) -> None:
    """Publish a finished local file at `path` atomically; the local file is moved (local) or uploaded."""
    if is_local(fs):
        target = Path(path)
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(f".{target.name}.tmp")
        with open(local_file, "rb") as handle:  # on disk before any name says it is done
            os.fsync(handle.fileno())
        shutil.move(local_file, tmp)  # a rename, or a copy when the scratch file is on another disk
        os.replace(tmp, target)
    else:
        fs.put_file(str(local_file), path)
        os.unlink(local_file)


def duckdb_connect(fs: fsspec.AbstractFileSystem | None = None, connection=None):
    """A DuckDB connection that reads `fs`'s URLs (registered through fsspec when it is not local)."""
    import duckdb

    con = connection or duckdb.connect()
    if fs is not None and not is_local(fs):
        con.register_filesystem(fs)
    return con


def location(fs: fsspec.AbstractFileSystem, path: str) -> str:
    """The string to hand a worker or DuckDB: a plain path locally, the full URL (`s3://...`) otherwise."""
    return path if is_local(fs) else fs.unstrip_protocol(path)


def exists(fs: fsspec.AbstractFileSystem, path: str) -> bool:
    return fs.exists(path)


def read_bytes(fs: fsspec.AbstractFileSystem, path: str) -> bytes:
    return fs.cat_file(path)


def read_many(fs: fsspec.AbstractFileSystem, paths: list[str]) -> dict[str, bytes]:
    """The files among `paths` that exist, by path, in one call: local reads in a loop; on an object store
    the filesystem's concurrent GETs (`cat` with missing files omitted), never a listing."""
    if is_local(fs):
        found = {}
        for path in paths:
            try:
                with open(path, "rb") as handle:
                    found[path] = handle.read()
            except FileNotFoundError:
                continue
        return found
    if not paths:
        return {}
    listed = fs.cat(list(paths), on_error="omit")
    return {fs._strip_protocol(path): data for path, data in listed.items() if isinstance(data, bytes)}


def object_version(info: dict) -> str:
    """What changes when a file or object is rewritten, from `fs.info`: its size with its ETag, else its
    modification or creation time (a cache of something read from a store is keyed by this)."""
    stamp = next((info[key] for key in ("ETag", "etag", "mtime", "LastModified", "last_modified", "created")
                  if info.get(key)), "")
    return f"{info.get('size')}-{str(stamp).strip(chr(34))}"


def read_text(fs: fsspec.AbstractFileSystem, path: str) -> str:
    return read_bytes(fs, path).decode("utf-8")


def read_range(fs: fsspec.AbstractFileSystem, path: str, offset: int, size: int) -> bytes:
    """`size` bytes at `offset` (one ranged GET on an object store)."""
    return fs.cat_file(path, start=offset, end=offset + size)


def glob(fs: fsspec.AbstractFileSystem, pattern: str) -> list[str]:
    """Paths matching `pattern`, sorted; the store is listed afresh (no stale listing cache)."""
    fs.invalidate_cache()
    return sorted(fs.glob(pattern))


def remove(fs: fsspec.AbstractFileSystem, path: str) -> None:
    """Delete a file; a missing one is not an error."""
    try:
        fs.rm_file(path)
    except FileNotFoundError:
        pass


def makedirs(fs: fsspec.AbstractFileSystem, path: str) -> None:
    """A folder locally; nothing on an object store (prefixes need no creating)."""
    if is_local(fs):
        fs.makedirs(path, exist_ok=True)


def scratch_file(suffix: str = "") -> str:
    """A fresh local file for a worker to build an output in before `put_file` publishes it.

    It lives in the worker's own temporary folder (`TMPDIR`), never on the build's storage, so a
    half-written file is never visible under the build.
    """
    handle, path = tempfile.mkstemp(prefix="unimed-", suffix=suffix)
    os.close(handle)
    os.chmod(path, 0o666 & ~current_umask())  # mkstemp makes it 0600; a published output follows the umask
    return path


def current_umask() -> int:
    """The process's umask, read without changing it (Linux /proc), else by setting and restoring it."""
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except OSError:
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def find(fs: fsspec.AbstractFileSystem, folder: str, suffix: str = "") -> list[str]:
    """Every file under `folder` (at any depth) whose name ends with `suffix`, sorted; none when it is absent."""
    fs.invalidate_cache()
    if not fs.exists(folder):
        return []
    return sorted(path for path in fs.find(folder) if path.endswith(suffix))


def open_input(location: str | os.PathLike):
    """A seekable binary reader of a local path or a URL (ranged GETs on an object store)."""
    fs, path = filesystem(location)
    return fs.open(path, "rb")
