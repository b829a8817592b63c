"""Stage `near_duplicate_hashes`: per-record pHash and text MinHash score columns (filters/near_duplicates.py).

No decision here: clustering and benchmark decontamination are global and run at finalisation from these
columns (pipeline/engine/finalize.py), so their thresholds change without hashing again.
"""

from __future__ import annotations

from filters.near_duplicates import score_record
from filters.settings import NearDuplicateSettings
from manifests.records import Record
from pipeline.stages.base import Stage


class NearDuplicateHashStage(Stage):
    """`phash` and `text_minhash` for every kept record (a rejected one never reaches a cluster)."""

    name = "near_duplicate_hashes"

    def __init__(self, settings: NearDuplicateSettings):
        self.settings = settings

    def process(self, record: Record) -> None:
        if record.status == "kept":
            score_record(record, self.settings.num_perm, self.settings.shingle)
