"""VQA-RAD: clinician-written questions and answers about radiology images from MedPix.

Card
- Citation: Lau JJ, Gayen S, Ben Abacha A, Demner-Fushman D. "A dataset of clinically generated visual
  questions and answers about radiology images." Scientific Data 5, 180251 (2018).
  doi:10.1038/sdata.2018.251
- URL: https://osf.io/89kps/ (OSF); HF mirror `flaviagiammarino/vqa-rad` (parquet, fewer fields).
- Licence: CC0 1.0 as stated on OSF [L: not re-checked]. Access: open download.
- Redistribution: CC0 1.0 as stated on the OSF project page (the authors' own host): texts and images
  may be redistributed; `unimed release` carries both.
- Modality: head CT/MRI, chest x-ray/CT, abdominal CT/MRI. The JSON names the organ (HEAD, CHEST, ABD),
  never the modality, so every record is "other" (an organ does not tell CT from x-ray).
- Counts: 315 images, 2,248 QA in the public JSON: train 1,797 (free-form + paraphrase) / test 451.
- Overlaps: images come from MedPix, like MedPix 2.0 and some ROCO/PMC figures.

Layout (OSF zip)::

    VQA_RAD/
      Readme.docx
      VQA_RAD Dataset Public.json      spaces in the file name
      VQA_RAD Dataset Public.xlsx      same rows (not read: the JSON is the complete carrier)
      VQA_RAD Dataset Public.xml
      VQA_RAD Image Folder/synpic54610.jpg ...

Hub copy (docs/sources/hub/vqa_rad.md): `flaviagiammarino/vqa-rad`, read from a Hub cache snapshot or a
`--local-dir` copy::

    data/train-00000-of-00001-<hash>.parquet   image {bytes, path}, question, answer
    data/test-00000-of-00001-<hash>.parquet

No Hub column carries the qid or the image name, so Hub rows get a documented content id
`vqa_rad/{split}/h<16 hex>`: the start of `meta.content_key` = sha256(split, sha256(image bytes), question and
answer under the Hub's normalisation `re.sub(' +', ' ', x.lower()).replace(' ?', '?').strip()`). The original
layout writes the same `meta.content_key` for its rows (the Hub bytes are the OSF JPEG files), so the two
layouts of one item share that key, its pixels and (up to the Hub's lower-casing) its texts; their ids differ.
Hub texts are lower-case; answer_type, question_type, phrase_type and organ are lost there (None).
Parquet is read by row groups; embedded JPEG bytes pass through unchanged.

Quirks handled here: the official split is the `phrase_type` prefix (`test_freeform`, `test_para` are test,
everything else train); answers may be JSON numbers and are `str()`-ed (an integral float such as 2.0
reads "2"); `answer_type` comes in mixed case and with spaces and is normalised to "open"/"closed";
`qid` may be an int or a string; a row without question or answer is `qa_empty`; a missing image is a
`missing_file` rejection.

Option `rationales: Medthink` (stage 2's DCOT; the MedThink clone, relative to the folder holding VQA_RAD or
absolute): an item with an R-RAD rationale of its split (joined by qid) is rendered `<think>rationale</think>`
+ its answer, sub-task `medical_vqa_cot`, `meta.rationale_from` naming the MedThink row (sources/medthink.py).
The Hub copy has no qid to join by: there the option is reported and ignored.

Option `group_questions: per_image` (with `max_turns`, `max_chars`; sources/shapes/vqa.py): the train
questions of one image as multi-turn samples `vqa_rad/train/image/<image_name>/<n>`; test
stays one sample per question. The Hub copy names no image: there the option is reported and ignored.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from functools import lru_cache

from manifests.records import IMAGE_TOKEN, Image, Record, Rejection, dataset_text
from sources.base import DatasetCard, SourceError, WorkUnit
from sources.io.files import mtime_ns, open_file
from sources.io.hub import content_key, decode_image_cell, image_cell_bytes, iter_parquet_rows, split_files
from sources.io.image import ImageDecodeError, decode_file
from sources.shapes.cot import with_rationale
from sources.shapes.rationales import attached_rationales
from sources.shapes.vqa import VqaSource

log = logging.getLogger(__name__)

JSON_FILE = "VQA_RAD Dataset Public.json"
IMAGE_DIR = "VQA_RAD Image Folder"


@lru_cache(maxsize=4)
def _load_rows(path: str, mtime_ns: int) -> list:
    with open_file(path, "r", encoding="utf-8") as handle:
        rows = json.load(handle)
    if not isinstance(rows, list):
        raise ValueError(f"expected a JSON list of QA rows, got {type(rows).__name__}")
    return rows


def answer_text(value) -> str:
    """An answer as text: numbers occur; an integral float (2.0) reads as the integer."""
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return " ".join(str(value).split()) if value is not None else ""


def _image_name(row) -> str:
    """The image a row asks about, for listing its questions together ("" for a malformed row)."""
    return str(row.get("image_name") or "").strip() if isinstance(row, dict) else ""


def split_of(row: dict) -> str:
    return "test" if str(row.get("phrase_type", "")).strip().lower().startswith("test") else "train"


class VqaRad(VqaSource):
    card = DatasetCard(
        name="vqa_rad",
        title="VQA-RAD",
        modalities=("other",),
        tasks=("medical_vqa",),
        licence="CC0 1.0 (OSF)",
        access="open",
        url="https://osf.io/89kps/",
        citation="Lau et al., A dataset of clinically generated visual questions and answers about radiology "
                 "images, Scientific Data 2018",
        root_names=("VQA_RAD", "VQA-RAD", "vqa_rad"),
        counts="315 images, 2,248 QA (train 1,797 / test 451); Hub copy 1,793 / 451 after de-duplication",
        hub_repos=("flaviagiammarino/vqa-rad",),
        redistribute_text=True,
        redistribute_images=True,
    )

    def _hub_files(self) -> dict[str, list[str]]:
        if (self.root / JSON_FILE).is_file():
            return {}
        return split_files(self.root, "data/{split}-*.parquet", {"train": "train", "test": "test"})

    def _rows(self) -> list:
        path = self.root / JSON_FILE
        if not path.is_file():
            raise SourceError(f"{self.root}: no '{JSON_FILE}'; point the root at the unzipped OSF VQA_RAD folder")
        try:
            return _load_rows(str(path), mtime_ns(path))
        except (ValueError, UnicodeDecodeError) as err:
            raise SourceError(f"{path}: not a readable JSON list ({err}); re-download it from OSF") from err

    def work_units(self) -> list[WorkUnit]:
        hub = self._hub_files()
        if hub and self.options.get("rationales"):
            log.warning("vqa_rad: option rationales ignored: the Hub copy has no qid to join MedThink rows by")
        if hub and self.question_grouping("train"):
            log.warning("vqa_rad: option group_questions ignored: the Hub copy has no image name to group by")
        if hub:
            return [unit for split, files in hub.items() if self.wants_split(split)
                    for unit in self.parquet_units(split, files)]
        rows = self._rows()
        by_split: dict[str, list[int]] = {"train": [], "test": []}
        for index, row in enumerate(rows):
            by_split[split_of(row) if isinstance(row, dict) else "train"].append(index)
        units = []
        for split, indices in by_split.items():
            if self.wants_split(split):
                units.extend(self.image_units(split, indices, lambda index: _image_name(rows[index])))
        return units

    def iter_records(self, unit: WorkUnit) -> Iterator[Record | Rejection]:
        if isinstance(unit.items[0], dict):
            yield from self._hub_records(unit)
            return
        rows = self._rows()
        images: dict[str, Image | ImageDecodeError] = {}
        where = self.options.get("rationales")
        rationales = attached_rationales(self.root, where, "vqa_rad", unit.split) if where else {}
        yield from self.grouped_records(unit, (self._record(rows[index], index, unit.split, images, rationales)
                                               for index in unit.items))

    def image_key(self, record: Record) -> str | None:
        return record.input_images[0].source_path.removeprefix(f"{IMAGE_DIR}/")

    def _record(self, row, index: int, split: str, images: dict,
                rationales: dict[str, tuple[str, str]] | None = None) -> Record | Rejection:
        if not isinstance(row, dict) or row.get("qid") in (None, "") or not row.get("image_name"):
            return self.reject(f"vqa_rad/{split}/{JSON_FILE}#{index}", split, "malformed_row",
                               "a row needs qid and image_name", provenance=[JSON_FILE])
        record_id = f"vqa_rad/{split}/{row['qid']}"
        image_path = f"{IMAGE_DIR}/{str(row['image_name']).strip()}"
        provenance = [JSON_FILE, image_path]
        question, answer = " ".join(str(row.get("question") or "").split()), answer_text(row.get("answer"))
        if not question or not answer:
            return self.reject(record_id, split, "qa_empty", f"question={question!r} answer={answer!r}",
                               task_family="i2t", provenance=provenance)
        if image_path not in images:
            try:
                data = (self.root / image_path).read_bytes()
                images[image_path] = (decode_file(self.root / image_path, source_path=image_path), data)
            except FileNotFoundError:
                images[image_path] = ImageDecodeError("missing_file", image_path)
            except ImageDecodeError as err:
                images[image_path] = err
        if isinstance(images[image_path], ImageDecodeError):
            error = images[image_path]
            return self.reject(record_id, split, error.reason, error.detail, task_family="i2t", provenance=provenance)
        image, data = images[image_path]
        answer_type = " ".join(str(row.get("answer_type") or "").split()).lower() or None
        record = Record(
            id=record_id, source=self.name, split=split, modality="other", task_family="i2t",
            main_task_type="image_understanding", sub_task_type="medical_vqa",
            message=[{"from": "human", "value": f"{IMAGE_TOKEN}\n{question}"}, {"from": "gpt", "value": answer}],
            input_images=[image], provenance=provenance, source_text=dataset_text(question, answer),
            meta={"language": "en", "answer_type": answer_type, "question_type": row.get("question_type"),
                  "phrase_type": row.get("phrase_type"), "image_organ": row.get("image_organ"),
                  "qid_linked_id": row.get("qid_linked_id"),
                  "content_key": content_key(split, data, row.get("question") or "", answer_text(row.get("answer")))},
        )
        attached = (rationales or {}).get(str(row["qid"]).strip())
        return with_rationale(record, *attached) if attached else record

    def _hub_records(self, unit: WorkUnit) -> Iterator[Record | Rejection]:
        item = unit.items[0]
        for row, values in iter_parquet_rows(self.root / item["file"], item["row_groups"], item["first_row"],
                                             ("image", "question", "answer")):
            yield self._hub_record(values, f"{item['file']}#{row}", item["file"], unit.split)

    def _hub_record(self, values: dict, where: str, file: str, split: str) -> Record | Rejection:
        question, answer = " ".join(str(values.get("question") or "").split()), answer_text(values.get("answer"))
        data = image_cell_bytes(values.get("image"))
        if data is None:
            return self.reject(f"vqa_rad/{split}/{where}", split, "missing_file", "row has no embedded image bytes",
                               task_family="i2t", provenance=[file])
        key = content_key(split, data, question, answer)
        record_id = f"vqa_rad/{split}/h{key[:16]}"
        if not question or not answer:
            return self.reject(record_id, split, "qa_empty", f"question={question!r} answer={answer!r}",
                               task_family="i2t", provenance=[file])
        try:
            image = decode_image_cell(values["image"], source_path=where)
        except ImageDecodeError as err:
            return self.reject(record_id, split, err.reason, err.detail, task_family="i2t", provenance=[file])
        return Record(
            id=record_id, source=self.name, split=split, modality="other", task_family="i2t",
            main_task_type="image_understanding", sub_task_type="medical_vqa",
            message=[{"from": "human", "value": f"{IMAGE_TOKEN}\n{question}"}, {"from": "gpt", "value": answer}],
            input_images=[image], provenance=[file], source_text=dataset_text(question, answer),
            meta={"language": "en", "answer_type": None, "question_type": None, "phrase_type": None,
                  "image_organ": None, "qid_linked_id": None, "content_key": key, "hub_row": where},
        )
