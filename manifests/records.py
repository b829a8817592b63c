"""The record types, at the bottom floor: what an adapter yields, what the stages pass along, what a shard holds.

A `Record` is one training sample in UniMedVL's own shape (main/sub task type, input and output
images, a `message` of human/gpt turns with `<image>` placeholders) plus the facts the manifest keeps.
A `Rejection` is an input item that could not become a sample; it carries the reason instead.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from typing import Any

import numpy as np

MODALITIES = (
    "chest_xray",
    "ct",
    "mri",
    "ultrasound",
    "histopathology",
    "fundus",
    "oct",
    "endoscopy",
    "dermoscopy",
    "other",
)
TASK_FAMILIES = ("i2t", "t2i", "interleaved", "text")
SPLITS = ("train", "validate", "test", "unsplit")
IMAGE_TOKEN = "<image>"


@dataclass
class Image:
    """One image of a sample: decoded pixels and/or the original encoded bytes, plus its facts.

    `encoded` holds the source file's bytes when they can pass into the shard untouched (a JPEG that
    needs no resize); otherwise `pixels` is encoded as PNG when the shard is written.
    """

    width: int
    height: int
    bit_depth: int
    channels: int
    pixel_hash: str
    pixel_std: float
    format: str  # "png" or "jpg": the extension the image gets in the shard
    pixels: np.ndarray | None = None
    encoded: bytes | None = None
    source_path: str = ""
    photometric: str | None = None
    slice_index: int | None = None
    slice_axis: str | None = None


@dataclass
class Record:
    id: str
    source: str
    split: str
    modality: str
    task_family: str
    main_task_type: str
    sub_task_type: str
    message: list[dict[str, str]]
    input_images: list[Image] = field(default_factory=list)
    output_images: list[Image] = field(default_factory=list)
    provenance: list[str] = field(default_factory=list)
    meta: dict[str, Any] = field(default_factory=dict)
    # The text that came from the dataset (caption, report, question and answer, label-derived caption),
    # without any instruction, prompt template or prefix the adapter or a builder adds: what the paper's
    # 10-1024 character rule judges. None for samples whose text is only builder text (interleaved tasks).
    source_text: str | None = None
    # Filled by the stages: score columns, then the decision.
    scores: dict[str, Any] = field(default_factory=dict)
    status: str | None = None
    reason: str | None = None
    detail: str | None = None

    @property
    def images(self) -> list[Image]:
        return self.input_images + self.output_images

    @property
    def text(self) -> str:
        """The sample's whole text (all turns, placeholders removed, whitespace collapsed): what the manifest's
        `text_chars`, the garbage ratio, the language and the duplicate hash see. The length rule judges
        `source_text` instead."""
        parts = [turn["value"].replace(IMAGE_TOKEN, " ") for turn in self.message]
        return " ".join(" ".join(parts).split())

    def content_hash(self) -> str:
        """Identity for exact-duplicate detection: decoded pixels of every image plus the text."""
        digest = hashlib.blake2b(digest_size=16)
        for image in self.images:
            digest.update(image.pixel_hash.encode())
        digest.update(b"\0")
        digest.update(self.text.encode("utf-8"))
        return digest.hexdigest()


@dataclass
class Rejection:
    """An input item that did not become a sample, and why. It still gets a manifest row."""

    id: str
    source: str
    split: str
    reason: str
    detail: str = ""
    modality: str = "other"
    task_family: str | None = None
    provenance: list[str] = field(default_factory=list)
    # What the item would have become, where the adapter knows it (a rejection funnel by task counts it).
    main_task_type: str | None = None
    sub_task_type: str | None = None


def dataset_text(*parts: str | None) -> str:
    """`Record.source_text` from the dataset's own text fields: the non-empty parts, one per line."""
    return "\n".join(str(part).strip() for part in parts if part is not None and str(part).strip())


def turns_text(message: list[dict[str, str]]) -> str:
    """`Record.source_text` of a sample whose every turn is the dataset's text (placeholders removed)."""
    return dataset_text(*(turn["value"].replace(IMAGE_TOKEN, " ") for turn in message))


_UNSAFE_KEY_CHARS = re.compile(r"[^A-Za-z0-9_-]+")


def shard_key(record_id: str) -> str:
    """A WebDataset key for a record id: readable, dot-free, unique, stable across machines.

    A dot ends a key in a tar (DICOM UIDs are full of them), so anything but [A-Za-z0-9_-] becomes
    '_' and a short hash of the raw id keeps distinct ids distinct after that.
    """
    slug = _UNSAFE_KEY_CHARS.sub("_", record_id).strip("_")[-72:]
    suffix = hashlib.blake2b(record_id.encode("utf-8"), digest_size=5).hexdigest()
    return f"{slug}-{suffix}"
