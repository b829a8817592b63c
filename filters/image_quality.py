"""Blank or near-constant images: the intensity spread (std on a [0, 1] scale) of the flattest image.

A segmentation record's output is a mask: an all-background mask is an image with no spread by
nature, and whether it is wanted is the segmentation builder's rule (`mask_empty`, or kept under
`tasks.keep_empty_masks`), so only the input images of such a record are judged here.
"""

from __future__ import annotations

from filters.settings import FilterSettings
from manifests.records import Record


def judged_images(record: Record) -> list:
    return record.input_images if record.main_task_type == "segmentation" else record.images


def score(record: Record, settings: FilterSettings) -> dict:
    images = judged_images(record)
    return {"pixel_std": min(im.pixel_std for im in images) if images else None}


def decide(scores: dict, settings: FilterSettings) -> tuple[str, str] | None:
    if scores["pixel_std"] is not None and scores["pixel_std"] < settings.min_pixel_std:
        return "image_blank", f"intensity std {scores['pixel_std']:.4f} < {settings.min_pixel_std}"
    return None
