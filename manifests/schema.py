"""The manifest row: one per input record, kept or rejected, versioned as `SCHEMA_VERSION`.

Columns other tools rely on: `id`, `source`, `split`, `modality`, `task_family`, `status`, `reason`,
`shard`, `key`. `sample` holds the record exactly as it sits in the shard's `<key>.json` (UniMedVL's
own fields: main_task_type, sub_task_type, modality, dataset, input_img, output_img, message), so any
sample can be rebuilt or audited from its row alone. Alignment columns: the raw scores come from the
alignment model stages (filters/alignment: captioner, e5, medsiglip, biomedclip); the normalised ones and
the cut are set at finalisation (filters/alignment/cut.py); all stay empty when a recipe has no alignment.
"""

from __future__ import annotations

import json
from typing import Any

import pyarrow as pa

from manifests.records import Image, Record, Rejection, shard_key

SCHEMA_VERSION = "3"  # 2: source_text_chars, text_rule, text_cleaned; task types on rejections; 3: image_hashes

# The alignment columns, one table for every user of them: the raw scores the model stages write
# (also what the score cache keeps), and the normalised ones set at finalisation by the cut.
ALIGNMENT_COLUMNS: dict[str, pa.DataType] = {
    "align_s": pa.float32(),  # S normalised to [0, 1] (set at finalisation)
    "align_m": pa.float32(),  # M normalised to [0, 1] (set at finalisation)
    "align_final": pa.float32(),  # lambda * align_s + align_m
    "align_s_raw": pa.float32(),  # max cosine, E5(original text) vs E5(MedGemma candidates)
    "align_m_logit": pa.float32(),  # MedSigLIP logit of the original pair
    "align_m_prob": pa.float32(),  # its sigmoid
    "align_bmc": pa.float32(),  # BiomedCLIP image-text cosine (optional)
    "align_reason": pa.string(),  # why a pair has no score: exempt, caption_malformed, ...
    "align_caption": pa.string(),  # the candidate caption closest to the original (audit only)
}
ALIGN_RAW_COLUMNS = ("align_s_raw", "align_m_logit", "align_m_prob", "align_bmc", "align_reason", "align_caption")

MANIFEST_SCHEMA = pa.schema(
    [
        ("id", pa.string()),
        ("source", pa.string()),
        ("dataset", pa.string()),
        ("split", pa.string()),
        ("modality", pa.string()),
        ("task_family", pa.string()),
        ("main_task_type", pa.string()),
        ("sub_task_type", pa.string()),
        ("licence", pa.string()),
        ("access", pa.string()),
        ("unit_id", pa.string()),
        ("provenance", pa.list_(pa.string())),
        ("status", pa.string()),
        ("reason", pa.string()),
        ("detail", pa.string()),
        ("shard", pa.string()),
        ("key", pa.string()),
        # image facts (of the first image; counts cover all)
        ("n_input_images", pa.int16()),
        ("n_output_images", pa.int16()),
        ("width", pa.int32()),
        ("height", pa.int32()),
        ("bit_depth", pa.int16()),
        ("channels", pa.int16()),
        ("photometric", pa.string()),
        ("slice_index", pa.int32()),
        ("slice_axis", pa.string()),
        ("image_format", pa.string()),
        ("stored_bytes", pa.int64()),
        ("downscaled", pa.bool_()),
        ("pixel_hash", pa.string()),
        ("image_hashes", pa.list_(pa.string())),  # pixel hash of every image, in0, in1, ..., out0, ... order
        ("content_hash", pa.string()),
        # coarse filter scores
        ("min_side", pa.int32()),
        ("max_side", pa.int32()),
        ("max_pixels", pa.int64()),
        ("aspect_ratio", pa.float32()),
        ("pixel_std", pa.float32()),
        ("text_chars", pa.int32()),  # the whole sample's text (every turn, builder wording included)
        ("garbage_ratio", pa.float32()),
        ("language", pa.string()),
        ("language_prob", pa.float32()),
        # alignment scores (filled by the alignment stages; empty until then)
        *ALIGNMENT_COLUMNS.items(),
        ("sample", pa.string()),
        ("meta", pa.string()),
        # interleaved tasks (pipeline/tasks): who the sample comes from (leakage rule), which templates
        ("subject_id", pa.string()),
        ("task_template", pa.string()),  # "<instruction id>|<response id>", e.g. segmentation_v1/i00|...
        # the paper's 10-1024 character rule: the length of the dataset's own text (Record.source_text,
        # whitespace collapsed), which rule judged it ("source_text", or "exempt_interleaved": a sample whose
        # text is only builder wording), and how many control characters light cleaning removed from the text
        ("source_text_chars", pa.int32()),
        ("text_rule", pa.string()),
        ("text_cleaned", pa.int32()),
        # near duplicates (filters/near_duplicates.py; empty unless the recipe enables them)
        ("phash", pa.int64()),  # 64-bit pHash of the first image, as a signed integer
        ("text_minhash", pa.binary()),  # MinHash signature of the text: num_perm little-endian uint32
    ],
    metadata={"unimed5m.schema_version": SCHEMA_VERSION},
)

# Columns only the staging area carries (where the bytes sit before the final shards are packed).
STAGING_SCHEMA = pa.schema(
    list(MANIFEST_SCHEMA)
    + [
        pa.field("kind", pa.string()),  # "record" or "unit_end"
        pa.field("run", pa.int32()),
        pa.field("unit_count", pa.int32()),  # unit_end rows: how many rows the unit produced
        pa.field("unit_fingerprint", pa.string()),  # unit_end rows: the inputs' fingerprint it was read with
        pa.field("staging_tar", pa.string()),  # builds before pieces: the tar holding the row's image bytes
        # JSON [[suffix, offset, size, digest], ...]: each image member's size and blake2b digest (16 bytes, hex)
        # as the shard stores it; offset is null (older builds: the offset in `piece` or `staging_tar`, no digest)
        pa.field("members", pa.string()),
        pa.field("part", pa.int32()),  # the part of its unit the row was read in (pipeline/engine/units.py)
        pa.field("piece", pa.string()),  # older builds: the WebDataset tar its sample was written to
        pa.field("shard_group", pa.string()),  # kept rows: the shard group (manifests/shards.py), set when staged
    ],
    metadata={"unimed5m.schema_version": SCHEMA_VERSION},
)

NEAR_DUPLICATE_COLUMNS = ("phash", "text_minhash")
SCORE_COLUMNS = ("min_side", "max_side", "max_pixels", "aspect_ratio", "pixel_std", "text_chars",
                 "garbage_ratio", "language", "language_prob", "source_text_chars", "text_rule", "text_cleaned")


def member_suffix(role: str, index: int, image: Image) -> str:
    return f"{role}{index}.{image.format}"


def sample_document(record: Record) -> dict[str, Any]:
    """The `<key>.json` of a shard: UniMedVL's record, image paths relative to the sample."""

    def refs(role: str, images: list[Image]) -> list[dict[str, Any]]:
        return [{"path": member_suffix(role, i, im), "height": im.height, "width": im.width}
                for i, im in enumerate(images)]

    return {
        "id": record.id,
        "main_task_type": record.main_task_type,
        "sub_task_type": record.sub_task_type,
        "modality": record.modality,
        "dataset": record.source,
        "split": record.split,
        "input_img": refs("in", record.input_images),
        "output_img": refs("out", record.output_images),
        "message": record.message,
    }


def record_row(record: Record, licence: str, access: str, unit_id: str) -> dict[str, Any]:
    images = record.images
    first = images[0] if images else None
    row = {
        "id": record.id,
        "source": record.source,
        "dataset": record.source,
        "split": record.split,
        "modality": record.modality,
        "task_family": record.task_family,
        "main_task_type": record.main_task_type,
        "sub_task_type": record.sub_task_type,
        "licence": licence,
        "access": access,
        "unit_id": unit_id,
        "provenance": list(record.provenance),
        "status": record.status,
        "reason": record.reason,
        "detail": record.detail,
        "key": shard_key(record.id),
        "n_input_images": len(record.input_images),
        "n_output_images": len(record.output_images),
        "width": first.width if first else None,
        "height": first.height if first else None,
        "bit_depth": first.bit_depth if first else None,
        "channels": first.channels if first else None,
        "photometric": first.photometric if first else None,
        "slice_index": first.slice_index if first else None,
        "slice_axis": first.slice_axis if first else None,
        "image_format": first.format if first else None,
        "downscaled": bool(record.scores.get("downscaled", False)),
        "pixel_hash": first.pixel_hash if first else None,
        "image_hashes": [image.pixel_hash for image in images] if images else None,
        "content_hash": record.content_hash(),
        "sample": json.dumps(sample_document(record), ensure_ascii=False, sort_keys=True),
        "meta": json.dumps(record.meta, ensure_ascii=False, sort_keys=True, default=str),
        "subject_id": record.meta.get("subject_id"),
        "task_template": "|".join(record.meta["task_build"]["template_id"]) if "task_build" in record.meta else None,
    }
    for column in SCORE_COLUMNS + ALIGN_RAW_COLUMNS + NEAR_DUPLICATE_COLUMNS:
        row[column] = record.scores.get(column)
    return row


def rejection_row(rejection: Rejection, licence: str, access: str, unit_id: str) -> dict[str, Any]:
    return {
        "id": rejection.id,
        "source": rejection.source,
        "dataset": rejection.source,
        "split": rejection.split,
        "modality": rejection.modality,
        "task_family": rejection.task_family,
        "main_task_type": rejection.main_task_type,
        "sub_task_type": rejection.sub_task_type,
        "licence": licence,
        "access": access,
        "unit_id": unit_id,
        "provenance": list(rejection.provenance),
        "status": "rejected",
        "reason": rejection.reason,
        "detail": rejection.detail,
    }
