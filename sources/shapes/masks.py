"""Prompt-segmentation records of classification sources that also ship lesion masks (BUSI, Kvasir-SEG,
ISIC task 1): the image + "segment the X" -> the mask, as 8-bit 0/255 at the image's size.

The counterpart of `sources.shapes.captions` for masks. Several mask files of one image (BUSI's `_mask`,
`_mask_1`, ...) are merged by OR into one mask of the target: the prompt asks for "the lesion", and
UniMedVL's segmentation samples have one output image. A lossy mask (Kvasir-SEG's JPEGs) is thresholded
(grey > `threshold`). An all-zero mask is kept here and judged by the task builder (`mask_empty` unless
`tasks.keep_empty_masks`), so the decision stays a recipe setting.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from manifests.records import IMAGE_TOKEN, Image, Record, Rejection
from sources.base import Source
from sources.io.image import ImageDecodeError, decode_binary_mask, image_from_array

RESPONSES = (
    "Here is the segmentation mask of the {target}.",
    "The {target} has been segmented; the mask is shown below.",
    "Sure, this is the {target} segmentation.",
)


def union_mask(root: Path, paths: Sequence[str], threshold: int = 127) -> np.ndarray:
    """The OR of the masks at `paths` (uint8 0/255). Raises ImageDecodeError, or ValueError on differing sizes."""
    masks = [decode_binary_mask(root / path, path, threshold) for path in paths]  # root: a Path or a UPath
    if any(mask.shape != masks[0].shape for mask in masks):
        raise ValueError(f"mask sizes differ: {[m.shape for m in masks]}")
    return np.where(np.logical_or.reduce(masks), 255, 0).astype(np.uint8)


def mask_record(source: Source, record_id: str, split: str, modality: str, image: Image | ImageDecodeError,
                mask_paths: Sequence[str], target: str, *, threshold: int = 127,
                provenance: Sequence[str] = (), meta: dict[str, Any] | None = None) -> Record | Rejection:
    """One interleaved prompt-segmentation record, or its rejection (decoder reason, no mask, size)."""
    paths = list(provenance) + [path for path in mask_paths if path not in provenance]

    def reject(reason: str, detail: str) -> Rejection:
        return source.reject(record_id, split, reason, detail, modality=modality, task_family="interleaved",
                             main_task_type="segmentation", sub_task_type="prompt_segmentation", provenance=paths)

    if isinstance(image, ImageDecodeError):
        return reject(image.reason, image.detail)
    if not mask_paths:
        return reject("annotation_missing", "no mask file for this image")
    try:
        mask = union_mask(source.root, mask_paths, threshold)
    except ImageDecodeError as err:
        return reject(err.reason, err.detail)
    except ValueError as err:
        return reject("mask_size_mismatch", str(err))
    if mask.shape != (image.height, image.width):
        return reject("mask_size_mismatch",
                      f"image {image.width}x{image.height} vs mask {mask.shape[1]}x{mask.shape[0]}")
    return Record(
        id=record_id, source=source.name, split=split, modality=modality, task_family="interleaved",
        main_task_type="segmentation", sub_task_type="prompt_segmentation",
        message=[{"from": "human", "value": f"{IMAGE_TOKEN}\nPlease help me segment the {target}."},
                 {"from": "gpt", "value": source.pick(record_id, RESPONSES).format(target=target)}],
        input_images=[dataclasses.replace(image)],
        output_images=[image_from_array(mask, source_path=mask_paths[0])],
        provenance=paths,
        meta={**(meta or {}), "target": target, "masks": list(mask_paths), "mask_threshold": threshold,
              "mask_union": len(mask_paths) > 1,
              "foreground_fraction": round(float(np.count_nonzero(mask)) / mask.size, 6)},
    )
