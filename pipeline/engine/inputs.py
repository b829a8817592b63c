"""Input fingerprints: what a work unit read, as sizes and modification times, taken when it is listed.

A unit counts as done only for the fingerprint it was staged with (pipeline/engine/finalize.py), so
a file added, removed, resized or touched since, an annotation file included, re-runs its unit. The
adapter names the paths (`Source.unit_inputs`); this module only stats them, once per path per build.
Nothing is read or hashed but the unit's items and `stat` results, so listing stays cheap.
"""

from __future__ import annotations

import hashlib
import os
from collections import OrderedDict
from pathlib import Path

from sources.base import Source, WorkUnit


class StatCache:
    """`(size, mtime_ns)` of each path under a root; `-` for a path that is absent.

    The paths every unit names (annotation files, folders) are stat-ed once; the cache is bounded
    (least recently used out), so the paths of each unit's own items do not pile up on the driver.
    """

    def __init__(self, root: Path, capacity: int = 1 << 16):
        self.root = Path(root)
        self.capacity = capacity
        self._seen: OrderedDict[str, str] = OrderedDict()

    def __call__(self, relative: str) -> str:
        state = self._seen.get(relative)
        if state is not None:
            self._seen.move_to_end(relative)
            return state
        try:
            info = os.stat(self.root / relative)
            state = f"{info.st_size}@{info.st_mtime_ns}"
        except OSError:
            state = "-"
        self._seen[relative] = state
        if len(self._seen) > self.capacity:
            self._seen.popitem(last=False)
        return state


def unit_fingerprint(adapter: Source, unit: WorkUnit, stats: StatCache) -> str:
    """A digest of the unit's items and of the size and mtime of every input path the adapter names."""
    digest = hashlib.blake2b(repr(unit.items).encode("utf-8", "surrogateescape"), digest_size=12)
    for relative in sorted(set(adapter.unit_inputs(unit))):
        digest.update(f"\n{relative}\t{stats(relative)}".encode("utf-8", "surrogateescape"))
    return digest.hexdigest()
