"""Stage `coarse_scores`: the coarse filters' score columns (size, blankness, text length, garbage, language)."""

from __future__ import annotations

from filters import score_record
from filters.settings import FilterSettings
from manifests.records import Record
from pipeline.stages.base import Stage


class CoarseScoreStage(Stage):
    """Coarse filter scores into score columns; no decision here (score first, decide later)."""

    name = "coarse_scores"

    def __init__(self, settings: FilterSettings):
        self.settings = settings

    def process(self, record: Record) -> None:
        score_record(record, self.settings)
