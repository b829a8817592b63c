"""Input fingerprints: what a work unit read, as sizes and modification times, taken when it is listed.

A unit counts as done only for the fingerprint it was staged with (pipeline/engine/finalize.py), so
a file added, removed, resized or touched since, an annotation file included, re-runs its unit. The
adapter names the paths (`Source.unit_inputs`); this module only stats them, once per path per build.
Nothing is read or hashed but the unit's items and `stat` results, so listing stays cheap.

On object storage (a `--sources-root s3://...`) the source's prefix is listed once (one LIST request per
1,000 objects) and every path is looked up in that listing: a file's state is its size and ETag (else its
modification time), a folder's the names it holds (a store has no folder mtimes), never a request per file.
"""

from __future__ import annotations

import hashlib
import os
import posixpath
from collections import OrderedDict
from pathlib import Path

from sources.base import Source, WorkUnit
from sources.io.files import is_remote, source_path


class StatCache:
    """`(size, mtime_ns)` of each path under a root; `-` for a path that is absent.

    The paths every unit names (annotation files, folders) are stat-ed once; the cache is bounded
    (least recently used out), so the paths of each unit's own items do not pile up on the driver. On object
    storage the root is listed once instead (one listing request per page, not one per file).
    """

    def __init__(self, root: Path | str, capacity: int = 1 << 16):
        self.root = source_path(root)
        self.capacity = capacity
        self._seen: OrderedDict[str, str] = OrderedDict()
        self._listing: dict[str, str] | None = None  # object storage: relative path -> state

    def __call__(self, relative: str) -> str:
        state = self._seen.get(relative)
        if state is not None:
            self._seen.move_to_end(relative)
            return state
        if is_remote(self.root):
            state = self._remote_listing().get(posixpath.normpath(relative), "-")
        else:
            try:
                info = os.stat(self.root / relative)
                state = f"{info.st_size}@{info.st_mtime_ns}"
            except OSError:
                state = "-"
        self._seen[relative] = state
        if len(self._seen) > self.capacity:
            self._seen.popitem(last=False)
        return state

    def _remote_listing(self) -> dict[str, str]:
        """Every object under the root, listed once: files by size and ETag, folders by their entries."""
        if self._listing is None:
            fs, base = self.root.fs, self.root.path.rstrip("/")
            fs.invalidate_cache(base)
            states: dict[str, str] = {}
            children: dict[str, list[str]] = {}
            for name, info in sorted(fs.find(base, withdirs=True, detail=True).items()):
                relative = posixpath.relpath(name.rstrip("/"), base)
                if relative == ".":
                    continue
                parent, _, leaf = relative.rpartition("/")
                children.setdefault(parent or ".", []).append(leaf)
                if info.get("type") == "directory":
                    children.setdefault(relative, [])
                else:
                    version = info.get("ETag") or info.get("LastModified") or info.get("mtime") or ""
                    states[relative] = f"{info.get('size')}@{str(version).strip(chr(34))}"
            for folder, names in children.items():
                digest = hashlib.blake2b("\n".join(sorted(set(names))).encode("utf-8", "surrogateescape"),
                                         digest_size=8).hexdigest()
                states[folder] = f"dir@{digest}"
            self._listing = states
        return self._listing


def unit_fingerprint(adapter: Source, unit: WorkUnit, stats: StatCache) -> str:
    """A digest of the unit's items and of the size and mtime of every input path the adapter names."""
    digest = hashlib.blake2b(repr(unit.items).encode("utf-8", "surrogateescape"), digest_size=12)
    for relative in sorted(set(adapter.unit_inputs(unit))):
        digest.update(f"\n{relative}\t{stats(relative)}".encode("utf-8", "surrogateescape"))
    return digest.hexdigest()
