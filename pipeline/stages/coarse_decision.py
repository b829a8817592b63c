"""Stage `coarse_decision`: the recipe's thresholds over the coarse score columns, and the loaders' size limits."""

from __future__ import annotations

from filters import decide_record, resolution
from filters.settings import FilterSettings
from manifests.images import downscale_to_fit
from manifests.records import Record
from pipeline.stages.base import Stage


class CoarseDecisionStage(Stage):
    """Kept, or rejected with the first failing rule; a kept image over the loaders' limits is downscaled."""

    name = "coarse_decision"

    def __init__(self, settings: FilterSettings):
        self.settings = settings

    def process(self, record: Record) -> None:
        decide_record(record, self.settings)
        if record.status == "kept" and self.settings.oversize == "downscale":
            self._fit_loader_limits(record)

    def redo_pixels(self, record: Record) -> None:
        if self.settings.oversize == "downscale":
            self._fit_loader_limits(record)

    def _fit_loader_limits(self, record: Record) -> None:
        for images in (record.input_images, record.output_images):
            for index, image in enumerate(images):
                if resolution.exceeds_loader_limits(image.width, image.height, self.settings):
                    images[index] = downscale_to_fit(image, self.settings.max_side, self.settings.max_pixels)
                    record.scores["downscaled"] = True
