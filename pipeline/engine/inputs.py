"""Input fingerprints: what a work unit read, as sizes and modification times, taken when it is listed.

A unit counts as done only for the fingerprint it was staged with (pipeline/engine/finalize.py), so
a file added, removed, resized or touched since, an annotation file included, re-runs its unit. The
adapter names the paths (`Source.unit_inputs`); this module only stats them, once per path per build.
Nothing is read or hashed but the unit's items and `stat` results, so listing stays cheap.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from sources.base import Source, WorkUnit


class StatCache:
    """`(size, mtime_ns)` of each path under a root, stat-ed once; `-` for a path that is absent."""

    def __init__(self, root: Path):
        self.root = Path(root)
        self._seen: dict[str, str] = {}

    def __call__(self, relative: str) -> str:
        state = self._seen.get(relative)
        if state is None:
            try:
                info = os.stat(self.root / relative)
                state = f"{info.st_size}@{info.st_mtime_ns}"
            except OSError:
                state = "-"
            self._seen[relative] = state
        return state


def unit_fingerprint(adapter: Source, unit: WorkUnit, stats: StatCache) -> str:
    """A digest of the unit's items and of the size and mtime of every input path the adapter names."""
    digest = hashlib.blake2b(repr(unit.items).encode("utf-8", "surrogateescape"), digest_size=12)
    for relative in sorted(set(adapter.unit_inputs(unit))):
        digest.update(f"\n{relative}\t{stats(relative)}".encode("utf-8", "surrogateescape"))
    return digest.hexdigest()
