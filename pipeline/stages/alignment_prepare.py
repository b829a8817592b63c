"""Stage `alignment_prepare`: text policy, cache key and cache lookup per coarse-kept record."""

from __future__ import annotations

from filters.alignment.cache import compact_cache, index_version, prepare
from filters.alignment.pairs import scorer_digest
from filters.settings import AlignmentSettings
from manifests.records import Record
from pipeline.stages.base import Stage


class AlignmentPrepareStage(Stage):
    """Plain tasks before the models; the cache is folded into its index once, on the driver, which then
    names the index's version for the workers (no request per batch to find it)."""

    name = "alignment_prepare"

    def __init__(self, settings: AlignmentSettings, cache_dir: str | None, only: str | None = None):
        self.settings, self.cache_dir, self.only = settings, cache_dir, only
        self.index_version: str | None = None  # None until before_run: read_cache asks the store

    def before_run(self) -> None:
        if self.cache_dir:
            digest = scorer_digest(self.settings, self.only)
            compact_cache(self.cache_dir, digest)
            self.index_version = index_version(self.cache_dir, digest)

    def process_batch(self, records: list[Record]) -> None:
        prepare(records, self.settings, self.cache_dir, self.only, self.index_version)
