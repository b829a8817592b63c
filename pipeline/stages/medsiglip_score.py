"""Stage `medsiglip_score`: M, MedSigLIP's image-text logit and sigmoid (F_align step 3)."""

from __future__ import annotations

from typing import ClassVar

from filters.alignment.medsiglip import load_siglip, siglip_scores
from filters.alignment.pairs import TODO
from manifests.records import Record
from pipeline.stages.base import ModelStage


class MedSigLIPScoreStage(ModelStage):
    name: ClassVar[str] = "medsiglip_score"
    section: ClassVar[str] = "siglip"

    def load(self):
        return load_siglip(self.settings)

    def wants(self, record: Record) -> bool:
        return bool(record.scores.get(TODO))

    def score(self, todo: list[Record]) -> None:
        siglip_scores(self.model, todo, self.settings)
