"""Prompt segmentation: an image + "segment the X" -> the mask of X, rendered as an image to generate.

The class name X comes from the adapter (`meta.target`, the name in the source's label map). The mask is
rendered as single-channel 8-bit 0/255 (foreground white) at the input's size, so a generator learns
one binary image format for every source; a mask without foreground is `mask_empty` unless the recipe
sets `tasks.keep_empty_masks`.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from manifests.records import Record
from pipeline.tasks.base import Problem, TaskBuilder
from manifests.images import image_from_array, load_pixels

RENDERING = "binary uint8, 0 background / 255 foreground, one channel, input size"


def render_mask(pixels: np.ndarray) -> np.ndarray:
    grey = pixels.max(axis=2) if pixels.ndim == 3 else pixels
    return np.where(grey > 0, 255, 0).astype(np.uint8)


class Segmentation(TaskBuilder):
    task = "segmentation"

    def construct(self, record: Record) -> dict[str, Any] | Problem:
        target = record.meta.get("target")
        if not target:
            return "task_target_missing", "meta.target names no class to segment"
        image, mask_image = record.input_images[0], record.output_images[0]
        if (image.width, image.height) != (mask_image.width, mask_image.height):
            return "mask_size_mismatch", (f"image {image.width}x{image.height} "
                                          f"vs mask {mask_image.width}x{mask_image.height}")
        pixels = load_pixels(mask_image)
        mask = render_mask(pixels)
        fraction = float(np.count_nonzero(mask)) / mask.size
        if not fraction and not self.settings.keep_empty_masks:
            return "mask_empty", f"no foreground for {target!r}"
        if mask.dtype != pixels.dtype or mask.shape != pixels.shape or not np.array_equal(mask, pixels):
            record.output_images[0] = image_from_array(mask, source_path=mask_image.source_path,
                                                       slice_index=mask_image.slice_index,
                                                       slice_axis=mask_image.slice_axis)
        return {"target": target, "mask_rendering": RENDERING, "foreground_fraction": round(fraction, 6),
                "mask_source": mask_image.source_path}

    def fields(self, record: Record) -> dict[str, str]:
        target = str(record.meta["target"])
        return {"target": target, "target_title": target[:1].upper() + target[1:]}
