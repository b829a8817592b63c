"""Git LFS pointer files: what `git clone` leaves in place of a large file when Git LFS is not installed.

A pointer is a ~130-byte text file (`version https://git-lfs.github.com/spec/v1`, `oid sha256:...`,
`size N`). Read as JSON or CSV it looks like a malformed file; it is a download that did not finish,
so it is reported as one whole-source problem that says what to run.
"""

from __future__ import annotations

from pathlib import Path

from sources.io.errors import SourceError
from sources.io.files import open_file

SIGNATURE = b"version https://git-lfs.github.com/spec/v1"
MAX_POINTER_BYTES = 1024  # the spec caps a pointer file well below this


def lfs_pointer_size(path: Path | str) -> int | None:
    """The size of the real file when `path` is a Git LFS pointer (0 if the pointer names none), else None."""
    try:
        with open_file(path, "rb") as handle:
            head = handle.read(MAX_POINTER_BYTES + 1)
    except OSError:
        return None
    if len(head) > MAX_POINTER_BYTES or not head.startswith(SIGNATURE):
        return None
    for line in head.decode("ascii", "replace").splitlines():
        key, _, value = line.partition(" ")
        if key == "size" and value.strip().isdigit():
            return int(value.strip())
    return 0


def lfs_message(path: Path | str, size: int) -> str:
    expected = f" (the real file has {size:,} bytes)" if size else ""
    return (f"{path}: a Git LFS pointer, not the file{expected}; run `git lfs pull` in the clone "
            "(or the dataset's download script), then rerun")


def check_lfs_pointer(path: Path | str) -> None:
    """Raise SourceError, saying to run `git lfs pull`, when `path` is a Git LFS pointer file."""
    size = lfs_pointer_size(path)
    if size is not None:
        raise SourceError(lfs_message(path, size))
