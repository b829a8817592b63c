"""Stage `alignment_cache_write`: new complete scores into the cache; the transient keys dropped."""

from __future__ import annotations

from filters.alignment.cache import write_cache
from filters.alignment.pairs import CAPTIONS, KEY, TEXT, TODO
from filters.settings import AlignmentSettings
from manifests.records import Record
from pipeline.stages.base import Stage


class AlignmentCacheWriteStage(Stage):
    """Plain tasks after the models."""

    name = "alignment_cache_write"

    def __init__(self, settings: AlignmentSettings, cache_dir: str | None, only: str | None = None):
        self.settings, self.cache_dir, self.only = settings, cache_dir, only

    def process_batch(self, records: list[Record]) -> None:
        if self.cache_dir:
            write_cache(records, self.settings, self.cache_dir, self.only)
        for record in records:
            for transient in (TEXT, KEY, TODO, CAPTIONS):
                record.scores.pop(transient, None)
