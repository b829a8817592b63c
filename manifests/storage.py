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


def join(base: str, *parts: str) -> str:
    return posixpath.join(str(base), *parts)


def write_bytes(fs: fsspec.AbstractFileSystem, path: str, data: bytes) -> None:
    """Publish `data` at `path` atomically (tmp + rename locally; one PUT on an object store)."""
    if is_local(fs):
        target = Path(path)
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(f".{target.name}.tmp")
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
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        os.replace(local_file, path)
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
