"""Image size rules: the paper's shorter side >= 128 px, an aspect-ratio bound, and the loaders' limits.

UniMedVL's loaders skip an image with a side >= 4096 px or more than 20M pixels; the recipe says
whether such images are downscaled to fit (the coarse_decision stage does it for kept records) or rejected.
Scores are over all images of a sample (the smallest side, the most extreme aspect ratio).
"""

from __future__ import annotations

from filters.settings import FilterSettings
from manifests.records import Record


def score(record: Record, settings: FilterSettings) -> dict:
    images = record.images
    if not images:
        return {"min_side": None, "aspect_ratio": None, "max_side": None, "max_pixels": None}
    return {
        "min_side": min(min(im.width, im.height) for im in images),
        "max_side": max(max(im.width, im.height) for im in images),
        "max_pixels": max(im.width * im.height for im in images),
        "aspect_ratio": max(max(im.width, im.height) / max(1, min(im.width, im.height)) for im in images),
    }


def exceeds_loader_limits(width: int, height: int, settings: FilterSettings) -> bool:
    return max(width, height) > settings.max_side or width * height > settings.max_pixels


def decide(scores: dict, settings: FilterSettings) -> tuple[str, str] | None:
    if scores["min_side"] is None:
        return None
    if scores["min_side"] < settings.min_side:
        return "image_too_small", f"shorter side {scores['min_side']} px < {settings.min_side}"
    if scores["aspect_ratio"] > settings.max_aspect_ratio:
        return "aspect_ratio", f"aspect ratio {scores['aspect_ratio']:.2f} > {settings.max_aspect_ratio}"
    if settings.oversize == "reject" and (
        scores["max_side"] > settings.max_side or scores["max_pixels"] > settings.max_pixels
    ):
        return "image_too_large", (
            f"{scores['max_side']} px side / {scores['max_pixels']} pixels beyond "
            f"{settings.max_side} px / {settings.max_pixels}"
        )
    return None
