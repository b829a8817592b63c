"""SLAKE 1.0: a semantically-labelled, knowledge-enhanced bilingual radiology VQA dataset.

Card
- Citation: Liu B, Zhan L-M, Xu L, Ma L, Yang Y, Wu X-M. "SLAKE: A Semantically-Labeled
  Knowledge-Enhanced Dataset for Medical Visual Question Answering." ISBI 2021.
- URL: https://www.med-vqa.com/slake/ (Google Drive zip); mirrors HF `BoKelvin/SLAKE`.
- Licence: CC BY 4.0 (as stated on the Voxel51 HF card). Access: open download.
- Redistribution: not carried by `unimed release` (CC BY 4.0 is stated only by a third-party mirror's
  card, not by the authors' site; unknown means no).
- Modality: CT, MRI, X-ray (2D). Bilingual English / Chinese.
- Counts: 642 images, 14,028 QA rows (train 9,835 / validate 2,099 / test 2,094).
- Overlaps: images are shared across splits (142 train∩test); split by QA row, never by image.

Layout (official zip)::

    Slake1.0/
      imgs/xmlab0/{source.jpg, mask.png, detection.json, question.json}
      KG/ mask.txt
      train.json  validate.json (HF mirror: validation.json)  test.json

Quirks handled here: `validate.json` or `validation.json`; key order differs between files; answers
are always `str()`-ed (numbers occur); Chinese rows carry `q_lang = "zh"` (kept as a language hint so
the recipe can keep or drop them); a malformed split file or a missing image becomes a rejection.

Hub copy (docs/sources/hub/slake.md): `BoKelvin/SLAKE` holds the official files (train.json, validation.json,
test.json, imgs.zip, KG.zip, mask.txt), so a Hub cache snapshot or `--local-dir` copy gives the same ids and
texts; the cache keeps `imgs.zip` packed, so when `imgs/` is absent each `img_name` (`xmlab0/source.jpg`) is
read from the zip member ending in that path (the zip's top folder is not documented). The parquet copy
`mdwiratathya/SLAKE-vqa-english` (no qid, re-encoded images) is not read.

Option `rationales: Medthink` (stage 2's DCOT; the MedThink clone, relative to the folder holding Slake1.0 or
absolute): an item with an R-SLAKE rationale of its split (joined by qid) is rendered `<think>rationale</think>`
+ its answer, sub-task `medical_vqa_cot`, `meta.rationale_from` naming the MedThink row (sources/medthink.py).

Option `group_questions: per_image` (with `max_turns`, `max_chars`; sources/shapes/vqa.py): the train
questions of one image as multi-turn samples `slake/train/image/<img_name>/<n>`, English and Chinese
apart; validate and test stay one sample per question.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from functools import lru_cache
from pathlib import Path

from manifests.records import IMAGE_TOKEN, Image, Record, Rejection, dataset_text
from sources.base import DatasetCard, WorkUnit
from sources.io.files import mtime_ns, open_file
from sources.io.hub import ZipImages
from sources.io.image import ImageDecodeError, decode_file
from sources.shapes.cot import with_rationale
from sources.shapes.rationales import attached_rationales
from sources.shapes.vqa import VqaSource

SPLIT_FILES = {
    "train": ("train.json",),
    "validate": ("validate.json", "validation.json"),
    "test": ("test.json",),
}
REQUIRED_KEYS = ("qid", "img_name", "question", "answer")


@lru_cache(maxsize=8)
def _load_rows(path: str, mtime_ns: int) -> list:
    with open_file(path, "r", encoding="utf-8") as handle:
        rows = json.load(handle)
    if not isinstance(rows, list):
        raise ValueError(f"expected a JSON list of QA rows, got {type(rows).__name__}")
    return rows


def _image_name(row) -> str:
    """The image a row asks about, for listing its questions together ("" for a malformed row)."""
    return str(row.get("img_name") or "") if isinstance(row, dict) else ""


def slake_modality(row: dict) -> str:
    """Canonical modality of a SLAKE row (MedThink's R-SLAKE rows carry the same fields)."""
    modality = str(row.get("modality", "")).strip().upper()
    location = str(row.get("location", "")).lower()
    if modality == "CT":
        return "ct"
    if modality == "MRI":
        return "mri"
    if modality in ("X-RAY", "XRAY") and ("chest" in location or "lung" in location):
        return "chest_xray"
    return "other"


class Slake(VqaSource):
    card = DatasetCard(
        name="slake",
        title="SLAKE 1.0",
        modalities=("ct", "mri", "chest_xray"),
        tasks=("medical_vqa",),
        licence="CC BY 4.0",
        access="open",
        url="https://www.med-vqa.com/slake/",
        citation="Liu et al., SLAKE: A Semantically-Labeled Knowledge-Enhanced Dataset for Medical VQA, ISBI 2021",
        root_names=("Slake1.0", "SLAKE", "Slake"),
        counts="642 images, 14,028 QA (en+zh)",
        hub_repos=("BoKelvin/SLAKE",),
    )
    items_per_unit = 512

    def _split_file(self, split: str) -> Path | None:
        for name in SPLIT_FILES[split]:
            if (self.root / name).is_file():
                return self.root / name
        return None

    def work_units(self) -> list[WorkUnit]:
        units = []
        for split in SPLIT_FILES:
            path = self._split_file(split)
            if path is None or not self.wants_split(split):
                continue
            relative = self.relative(path)
            try:
                rows = _load_rows(str(path), mtime_ns(path))
            except (ValueError, UnicodeDecodeError) as err:  # JSONDecodeError is a ValueError
                units.append(WorkUnit(self.name, f"slake/{split}/{relative}", split, ({"file": relative, "error": str(err)},)))
                continue
            ranges = [{"file": relative, "start": i, "stop": i + 1} for i in range(len(rows))]
            units.extend(self.image_units(split, ranges, lambda item: _image_name(rows[item["start"]])))
        return units

    def iter_records(self, unit: WorkUnit) -> Iterator[Record | Rejection]:
        first = unit.items[0]
        if "error" in first:
            yield self.reject(f"slake/{unit.split}/{first['file']}", unit.split, "malformed_json", first["error"],
                              provenance=[first["file"]])
            return
        path = self.root / first["file"]
        rows = _load_rows(str(path), mtime_ns(path))
        images: dict[str, Image | ImageDecodeError] = {}
        rationales = self._rationales(unit.split)
        packed = None if (self.root / "imgs").is_dir() or not (self.root / "imgs.zip").is_file() else \
            ZipImages([self.root / "imgs.zip"])
        try:
            yield from self.grouped_records(unit, (
                self._record(rows[item["start"]], item["start"], unit.split, first["file"], images, packed, rationales)
                for item in unit.items))
        finally:
            if packed is not None:
                packed.close()

    def image_key(self, record: Record) -> str | None:
        return record.input_images[0].source_path.removeprefix("imgs/")  # the row's img_name

    def _rationales(self, split: str) -> dict[str, tuple[str, str]]:
        where = self.options.get("rationales")
        if not where:
            return {}
        return attached_rationales(self.root, where, "slake", split)

    def _record(self, row, index: int, split: str, split_file: str, images: dict,
                packed: ZipImages | None = None, rationales: dict | None = None) -> Record | Rejection:
        if not isinstance(row, dict) or any(key not in row for key in REQUIRED_KEYS):
            missing = [k for k in REQUIRED_KEYS if not isinstance(row, dict) or k not in row]
            return self.reject(f"slake/{split}/{split_file}#{index}", split, "malformed_row",
                               f"missing keys {missing}", provenance=[split_file])
        record_id = f"slake/{split}/{row['qid']}"
        image_path = f"imgs/{row['img_name']}"
        if image_path not in images:
            try:
                images[image_path] = (decode_file(self.root / image_path, source_path=image_path) if packed is None
                                      else packed.decode(str(row["img_name"]), source_path=image_path))
            except ImageDecodeError as err:
                images[image_path] = err
        image = images[image_path]
        if packed is not None:
            image_path = "imgs.zip"  # provenance names the file that exists
        modality = slake_modality(row)
        if isinstance(image, ImageDecodeError):
            return self.reject(record_id, split, image.reason, image.detail, modality=modality,
                               task_family="i2t", provenance=[split_file, image_path])
        record = Record(
            id=record_id,
            source=self.name,
            split=split,
            modality=modality,
            task_family="i2t",
            main_task_type="image_understanding",
            sub_task_type="medical_vqa",
            message=[
                {"from": "human", "value": f"{IMAGE_TOKEN}\n{str(row['question']).strip()}"},
                {"from": "gpt", "value": str(row["answer"]).strip()},
            ],
            input_images=[image],
            provenance=[split_file, image_path],
            source_text=dataset_text(str(row["question"]), str(row["answer"])),
            meta={
                "language": row.get("q_lang"),
                "answer_type": row.get("answer_type"),
                "content_type": row.get("content_type"),
                "location": row.get("location"),
                "img_id": row.get("img_id"),
            },
        )
        attached = (rationales or {}).get(str(row["qid"]))
        return with_rationale(record, *attached) if attached else record
