"""Which text and image of a pair the alignment models score, and the identity of a scoring.

Text policy (the paper does not say how pairs without free text are scored): per task family,
sub-task or source, the scored text is the answer turns (captions, reports), the prompt turns
(text-to-image), question and answer together (VQA), or the pair is exempt (templated interleaved
prompts): exempt pairs are neither scored nor cut.

What is scored (`only`): None, the full F_align (every model); or "biomedclip", the BiomedCLIP column
alone (`unimed score --only biomedclip`), cached in a folder of its own.
"""

from __future__ import annotations

import hashlib
import json
import logging

import numpy as np

from filters.settings import AlignmentSettings
from manifests.records import IMAGE_TOKEN, Image, Record
from manifests.schema import ALIGN_RAW_COLUMNS

log = logging.getLogger(__name__)

# Raw score columns a model stage writes into `record.scores` (and the manifest keeps).
RAW_COLUMNS = ALIGN_RAW_COLUMNS  # what the model stages write (manifests/schema.py has their types)
EXEMPT = "exempt"
# Transient per-record keys (pickled between stages, never written to the manifest).
TEXT, KEY, TODO, CAPTIONS = "_align_text", "_align_key", "_align_todo", "_align_captions"


def text_policy(record: Record, settings: AlignmentSettings) -> str:
    for table, value in ((settings.policy_by_source, record.source),
                         (settings.policy_by_sub_task, record.sub_task_type),
                         (settings.policy_by_family, record.task_family)):
        if value in table:
            return table[value]
    return EXEMPT  # a task nobody named is not scored: say so in the recipe to score it


def scored_text(record: Record, policy: str) -> str | None:
    roles = {"answer": ("gpt",), "prompt": ("human",), "question_answer": ("human", "gpt")}.get(policy)
    if roles is None:
        return None
    parts = [turn["value"].replace(IMAGE_TOKEN, " ") for turn in record.message if turn["from"] in roles]
    return " ".join(" ".join(parts).split())


def scored_image(record: Record) -> Image | None:
    """The first image of the sample: the input of an I2T pair, the output of a T2I pair."""
    images = record.images
    return images[0] if images else None


def to_pil(image: Image, input_side: int | None = None):
    """8-bit RGB for a model's own preprocessing; 16-bit data is min-max windowed (display only).

    `input_side`: the side the model's processor resizes to; a passthrough JPEG is then decoded at the
    smallest DCT scale that keeps both sides at least that large (manifests/images.py `reduced_view`).
    None: decoded in full."""
    from PIL import Image as PILImage

    from manifests.images import load_pixels, pil_to_array, reduced_view

    if image.pixels is None and input_side:
        pixels = pil_to_array(reduced_view(image, input_side))
    else:
        pixels = load_pixels(image)
    if pixels.dtype != np.uint8:
        values = pixels.astype(np.float32)
        low, high = float(values.min()), float(values.max())
        values = (values - low) / (high - low) * 255.0 if high > low else np.zeros_like(values)
        pixels = values.round().astype(np.uint8)
    if pixels.ndim == 3 and pixels.shape[2] == 1:
        pixels = pixels[:, :, 0]
    if pixels.ndim == 3 and pixels.shape[2] == 4:
        pixels = pixels[:, :, :3]
    return PILImage.fromarray(pixels).convert("RGB")


def processor_side(image_processor) -> int | None:
    """The side a transformers image processor resizes to (`size` as height/width or shortest_edge), if it says."""
    size = getattr(image_processor, "size", None) or {}
    if isinstance(size, int):
        return size
    sides = [size.get(key) for key in ("height", "width", "shortest_edge") if size.get(key)]
    return max(sides) if sides else None


BIOMEDCLIP = "biomedclip"


def scorer_digest(settings: AlignmentSettings, only: str | None = None) -> str:
    """The cache folder of a scoring: it names every setting that changes the raw scores."""
    if only == BIOMEDCLIP:
        text = json.dumps({"biomedclip_only": settings.biomedclip.model})
        return "bmc-" + hashlib.blake2b(text.encode(), digest_size=8).hexdigest()
    text = json.dumps(settings.scoring_digest(), sort_keys=True)
    return hashlib.blake2b(text.encode(), digest_size=8).hexdigest()


def score_columns(settings: AlignmentSettings, only: str | None = None) -> tuple[str, ...]:
    """The raw manifest columns a scoring fills."""
    if only == BIOMEDCLIP:
        return ("align_bmc",)
    return tuple(c for c in RAW_COLUMNS if c != "align_bmc" or settings.biomedclip.model)


def is_complete(scores: dict, settings: AlignmentSettings, only: str | None = None) -> bool:
    """Every model of the scoring gave a value: only then is a pair cached."""
    if only == BIOMEDCLIP:
        return scores.get("align_bmc") is not None
    if scores.get("align_s_raw") is None or scores.get("align_m_logit") is None:
        return False
    return not settings.biomedclip.model or scores.get("align_bmc") is not None


def cache_key(image: Image, text: str) -> str:
    return hashlib.blake2b(f"{image.pixel_hash}\0{text}".encode(), digest_size=16).hexdigest()


def describe_models(settings: AlignmentSettings) -> dict[str, dict]:
    """Which weights each model stage will load (resolved offline, nothing loaded); demo ones flagged.

    Raises `ModelNotAvailable` before any work starts when a model is missing.
    """
    from filters.models import is_demo, resolve_model

    named = {"medgemma": settings.captioner.model, "e5": settings.embedder.model, "medsiglip": settings.siglip.model,
             "biomedclip": settings.biomedclip.model}
    out = {}
    for role, model in named.items():
        if not model:
            continue
        if role == "medgemma" and settings.captioner.backend == "openai":
            out[role] = {"model": model, "served_by": settings.captioner.endpoint, "demo": False}
            continue
        path = resolve_model(model, settings.models_dir)
        out[role] = {"model": model, "path": str(path), "demo": is_demo(path)}
    return out
