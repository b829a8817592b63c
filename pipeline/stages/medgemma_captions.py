"""Stage `medgemma_captions`: K MedGemma captions per pair still to be scored (F_align step 1)."""

from __future__ import annotations

from typing import ClassVar

from filters.alignment.captioner import caption_pairs, load_captioner
from filters.alignment.pairs import TODO
from manifests.records import Record
from pipeline.stages.base import ModelStage


class MedGemmaCaptionStage(ModelStage):
    name: ClassVar[str] = "medgemma_captions"
    section: ClassVar[str] = "captioner"

    def load(self):
        return load_captioner(self.settings)

    def wants(self, record: Record) -> bool:
        return bool(record.scores.get(TODO))

    def score(self, todo: list[Record]) -> None:
        caption_pairs(self.model, todo, self.settings)
