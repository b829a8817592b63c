"""Stage `biomedclip_score`: the optional BiomedCLIP column `align_bmc` (never part of the cut)."""

from __future__ import annotations

from typing import ClassVar

from filters.alignment.biomedclip import biomedclip_scores, load_biomedclip
from filters.alignment.pairs import TODO
from manifests.records import Record
from pipeline.stages.base import ModelStage


class BiomedCLIPScoreStage(ModelStage):
    name: ClassVar[str] = "biomedclip_score"
    section: ClassVar[str] = "biomedclip"

    def load(self):
        return load_biomedclip(self.settings)

    def wants(self, record: Record) -> bool:
        return bool(record.scores.get(TODO))

    def score(self, todo: list[Record]) -> None:
        biomedclip_scores(self.model, todo, self.settings)
