"""Label -> caption records for classification sources (dermoscopy, fundus, OCT, endoscopy, ultrasound, CXR).

A classification dataset gives an image and a label, not a text. Each labelled image becomes two samples:

- `<stem>/caption` (i2t, sub_task_type "classification_caption"): "<image>\\n<instruction>" -> a caption;
- `<stem>/t2i` (t2i, sub_task_type "text_to_image"): a prompt -> the image.

The wording comes from per-source `LabelTemplates`: several phrasings per role, chosen deterministically
with `Source.pick` by record id. Captions state only the image type and the label's clinical name, the
way a clinician would accept them ("Dermoscopic image of a melanocytic nevus."), never invented findings.

Templates are `str.format` strings with two fields: `{label}` (the label's noun phrase as written in
`labels`, e.g. "a melanocytic nevus") and `{Label}` (the same with its first letter capitalised, for
the start of a sentence). `prompt_labels` may give a different phrase for the T2I prompts ("a benign
melanocytic nevus"); labels missing there fall back to `labels`.

Usage in an adapter::

    TEMPLATES = LabelTemplates(
        labels={"nv": "a melanocytic nevus", "mel": "a melanoma"},
        instructions=("What does this dermoscopic image show?",),
        captions=("Dermoscopic image of {label}.",),
        prompts=("Generate a dermoscopy image of {label}.",),
    )
    image = decode_file(...)  # or the ImageDecodeError it raised
    yield from label_records(self, f"{self.name}/{split}/{image_id}", split, "dermoscopy", image, "nv",
                             TEMPLATES, provenance=[csv_name, image_path], meta={"dx_type": "histo"})

An image that failed to decode, or a label the templates do not know, gives a `Rejection` for both ids
(reason: the decoder's reason, or `label_unknown`); `label_rejections` rejects both ids for any other
reason the adapter finds first (e.g. a CSV row without a label).

`source_text` (what the 10-1024 character rule judges) is the label-derived caption of each sample: the
caption for `/caption`, the prompt for `/t2i`; never the instruction. Rejections carry the task family and
task types each sample would have had.

Sources with free-text captions (ROCO, ROCOv2, PMC-OA, Quilt-1M, MedICaT) give the same pair with the
caption as answer and as prompt (`caption_records`, sub_task_type "image_captioning"; `caption_rejections`).
"""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from manifests.records import IMAGE_TOKEN, Image, Record, Rejection
from sources.base import Source
from sources.io.image import ImageDecodeError

CAPTION_SUFFIX = "caption"
T2I_SUFFIX = "t2i"
SUFFIXES = ((CAPTION_SUFFIX, "i2t"), (T2I_SUFFIX, "t2i"))  # id suffix, task family
LABEL_TASK_TYPES = (("image_understanding", "classification_caption"), ("image_generation", "text_to_image"))
CAPTION_TASK_TYPES = (("image_understanding", "image_captioning"), ("image_generation", "text_to_image"))


@dataclass(frozen=True)
class LabelTemplates:
    """The phrasings one source uses: label noun phrases plus instruction, caption and prompt templates."""

    labels: Mapping[str, str]  # label key -> noun phrase, e.g. "nv" -> "a melanocytic nevus"
    instructions: Sequence[str]  # the human turn of the i2t sample (after "<image>\n")
    captions: Sequence[str]  # the gpt turn: "{label}" / "{Label}" templates
    prompts: Sequence[str]  # the t2i prompt: "{label}" / "{Label}" templates
    prompt_labels: Mapping[str, str] = field(default_factory=dict)  # optional T2I-only phrases

    def __post_init__(self):
        for role in ("instructions", "captions", "prompts"):
            if not getattr(self, role):
                raise ValueError(f"LabelTemplates.{role} needs at least one phrasing")

    def caption(self, record_id: str, label_key: str) -> str:
        return _fill(Source.pick(record_id, self.captions, salt="caption"), self.labels[label_key])

    def instruction(self, record_id: str) -> str:
        return Source.pick(record_id, self.instructions, salt="instruction")

    def prompt(self, record_id: str, label_key: str) -> str:
        phrase = self.prompt_labels.get(label_key) or self.labels[label_key]
        return _fill(Source.pick(record_id, self.prompts, salt="prompt"), phrase)


def _fill(template: str, phrase: str) -> str:
    return template.format(label=phrase, Label=phrase[:1].upper() + phrase[1:])


def label_rejections(source: Source, record_id_stem: str, split: str, reason: str, detail: str = "", *,
                     modality: str = "other", provenance: Sequence[str] = ()) -> list[Rejection]:
    """Both samples of one labelled image rejected for the same reason, each with its id, task family and
    task types (`label_records`: classification_caption / text_to_image)."""
    return _pair_rejections(source, record_id_stem, split, reason, detail, LABEL_TASK_TYPES, modality, provenance)


def caption_rejections(source: Source, record_id_stem: str, split: str, reason: str, detail: str = "", *,
                       modality: str = "other", provenance: Sequence[str] = ()) -> list[Rejection]:
    """Both samples of one captioned image rejected for the same reason, each with its id, task family and
    task types (`caption_records`: image_captioning / text_to_image)."""
    return _pair_rejections(source, record_id_stem, split, reason, detail, CAPTION_TASK_TYPES, modality, provenance)


def _pair_rejections(source: Source, record_id_stem: str, split: str, reason: str, detail: str,
                     task_types: Sequence[tuple[str, str]], modality: str, provenance: Sequence[str]
                     ) -> list[Rejection]:
    return [source.reject(f"{record_id_stem}/{suffix}", split, reason, detail, modality=modality,
                          task_family=family, main_task_type=main, sub_task_type=sub, provenance=list(provenance))
            for (suffix, family), (main, sub) in zip(SUFFIXES, task_types)]


def label_records(source: Source, record_id_stem: str, split: str, modality: str,
                  image: Image | ImageDecodeError, label_key: str, templates: LabelTemplates, *,
                  provenance: Sequence[str] = (), meta: Mapping[str, Any] | None = None
                  ) -> list[Record | Rejection]:
    """The `/caption` (i2t) and `/t2i` samples of one labelled image, or a rejection for each.

    `meta` is copied into each record with `label` set to `label_key`; each record gets its own `Image`
    and `meta` objects so a stage that edits one sample never touches the other.
    """
    if isinstance(image, ImageDecodeError):
        return label_rejections(source, record_id_stem, split, image.reason, image.detail, modality=modality,
                                provenance=provenance)
    if label_key not in templates.labels:
        return label_rejections(source, record_id_stem, split, "label_unknown", repr(label_key),
                                modality=modality, provenance=provenance)
    caption_id, t2i_id = f"{record_id_stem}/{CAPTION_SUFFIX}", f"{record_id_stem}/{T2I_SUFFIX}"
    facts = {**(meta or {}), "label": label_key}
    caption_text, prompt_text = templates.caption(caption_id, label_key), templates.prompt(t2i_id, label_key)
    caption = Record(
        id=caption_id, source=source.name, split=split, modality=modality, task_family="i2t",
        main_task_type="image_understanding", sub_task_type="classification_caption",
        message=[{"from": "human", "value": f"{IMAGE_TOKEN}\n{templates.instruction(caption_id)}"},
                 {"from": "gpt", "value": caption_text}],
        input_images=[image], provenance=list(provenance), meta=dict(facts), source_text=caption_text)
    t2i = Record(
        id=t2i_id, source=source.name, split=split, modality=modality, task_family="t2i",
        main_task_type="image_generation", sub_task_type="text_to_image",
        message=[{"from": "human", "value": prompt_text}],
        output_images=[dataclasses.replace(image)], provenance=list(provenance), meta=dict(facts),
        source_text=prompt_text)
    return [caption, t2i]


def caption_records(source: Source, record_id_stem: str, split: str, modality: str, image: Image, caption: str,
                    instructions: Sequence[str], *, provenance: Sequence[str] = (),
                    meta: Mapping[str, Any] | None = None) -> list[Record]:
    """The `/caption` (i2t: instruction -> the caption) and `/t2i` (the caption -> the image) samples of one
    captioned image, each with its own `Image` and a deep copy of `meta`."""
    caption_id, t2i_id = f"{record_id_stem}/{CAPTION_SUFFIX}", f"{record_id_stem}/{T2I_SUFFIX}"
    instruction = source.pick(caption_id, instructions)
    return [
        Record(id=caption_id, source=source.name, split=split, modality=modality, task_family="i2t",
               main_task_type="image_understanding", sub_task_type="image_captioning",
               message=[{"from": "human", "value": f"{IMAGE_TOKEN}\n{instruction}"},
                        {"from": "gpt", "value": caption}],
               input_images=[image], provenance=list(provenance), meta=copy.deepcopy(dict(meta or {})),
               source_text=caption),
        Record(id=t2i_id, source=source.name, split=split, modality=modality, task_family="t2i",
               main_task_type="image_generation", sub_task_type="text_to_image",
               message=[{"from": "human", "value": caption}], output_images=[dataclasses.replace(image)],
               provenance=list(provenance), meta=copy.deepcopy(dict(meta or {})), source_text=caption),
    ]
