"""Coarse filters: each scores records into columns; `decide` applies the recipe's thresholds.

Score first, decide later: a filter never drops a record itself. `score_record` fills the score
columns, `decide_record` turns them into kept / rejected with the first failing rule's reason, in
the fixed order of `COARSE_FILTERS`. Exact-duplicate removal needs the whole build and runs at
finalisation (filters/dedup.py).
"""

from __future__ import annotations

from filters import image_quality, resolution, text_quality
from filters.settings import FilterSettings
from manifests.records import Record
from manifests.spans import span

COARSE_FILTERS = (resolution, image_quality, text_quality)


def score_record(record: Record, settings: FilterSettings) -> None:
    """Light text cleaning first (the paper's), then every filter's score columns."""
    with span("check.text_quality"):
        text_quality.clean_record(record)
    for module in COARSE_FILTERS:
        with span(f"check.{module.__name__.rpartition('.')[2]}"):
            record.scores.update(module.score(record, settings))


def decide_record(record: Record, settings: FilterSettings) -> None:
    with span("decide"):
        _decide(record, settings)


def _decide(record: Record, settings: FilterSettings) -> None:
    for module in COARSE_FILTERS:
        verdict = module.decide(record.scores, settings)
        if verdict is not None:
            record.status, (record.reason, record.detail) = "rejected", verdict
            return
    record.status, record.reason, record.detail = "kept", None, None
