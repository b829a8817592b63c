"""Stage `e5_similarity`: S, the E5 max-cosine between the original text and the K captions (F_align step 2)."""

from __future__ import annotations

from typing import ClassVar

from filters.alignment.e5 import has_captions, load_embedder, similarity_scores
from manifests.records import Record
from pipeline.stages.base import ModelStage


class E5SimilarityStage(ModelStage):
    name: ClassVar[str] = "e5_similarity"
    section: ClassVar[str] = "embedder"

    def load(self):
        return load_embedder(self.settings)

    def wants(self, record: Record) -> bool:
        return has_captions(record)

    def score(self, todo: list[Record]) -> None:
        similarity_scores(self.model, todo, self.settings)
