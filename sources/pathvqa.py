"""PathVQA: pathology questions and answers generated from textbook and PEIR figure captions.

Card
- Citation: He X, Zhang Y, Mou L, Xing E, Xie P. "PathVQA: 30000+ Questions for Medical Visual Question
  Answering." arXiv:2003.10286 (2020).
- URL: https://github.com/UCSD-AI4H/PathVQA (Google Drive `pvqa` folder); HF `flaviagiammarino/path-vqa`.
- Licence: MIT as stated on the HF card [L: the original release states none]. Access: open download.
- Redistribution: not carried by `unimed release` (the original release states no licence; the MIT
  of the HF card is a mirror's claim over textbook figures; unknown means no).
- Modality: histopathology (microscopy), with some gross-pathology photographs; all records are
  "histopathology" (the files carry no per-item modality).
- Counts: 4,998 images, 32,799 QA (paper); test 6,761 (paper; simwit/medmoe-path-vqa `test_all` has 6,761).
  The HF copy flaviagiammarino/path-vqa, built from the authors' `*_qa.pkl` with only exact duplicates
  dropped, has train 19,654 / validation 6,259 / test 6,719, so the official train split holds at least
  19,654 rows; the 17,325 / 9,462 / 6,012 split once given here (and in SOURCES-CATALOG A3) cannot be
  right. About half the questions are yes/no.
- Overlaps: figures from pathology textbooks and the PEIR library (also in some PMC-derived sets).

Layout (the `pvqa` folder; also distributed as `split/`)::

    pvqa/
      images/{train,val,test}/train_0000.jpg ...
      qas/{train,val,test}/<split>_qa.pkl      pickled list of {"image", "question", "answer"}
      qas/*_vqa.pkl ans2label.pkl ...          preprocessed copies (not read)

Hub copy (docs/sources/hub/pathvqa.md): `flaviagiammarino/path-vqa`, from a Hub cache snapshot or a
`--local-dir` copy: `data/{train,validation,test}-*.parquet` with image {bytes, path}, question, answer.
The pickle row and the image name are gone there, so Hub rows get a documented content id
`pathvqa/{split}/h<16 hex>`, the start of `meta.content_key` = sha256(split, sha256(image bytes), question and
answer under the Hub's normalisation, lower-case). The original layout writes the same `meta.content_key`
(the Hub bytes are the original JPEG files), so both layouts of one item share key, pixels and (up to the
Hub's lower-casing) texts; ids differ. Duplicate rows the Hub dropped have no Hub twin; `image_id` is None.

Quirks handled here: the pickles are read with an unpickler that refuses every global, so only plain
lists, dicts, strings and numbers load (a pickle needing anything else is `malformed_pickle`, never
executed); `image` has no extension (`images/<split>/<image>.jpg`); split `val` is "validate"; answers
are `str()`-ed; rows carry no id, so the record id is the row's position in its pickle.

Option `group_questions: per_image` (with `max_turns`, `max_chars`; sources/shapes/vqa.py): the train
questions of one image as multi-turn samples `pathvqa/train/image/<image>/<n>`; validate and test stay one
sample per question. The Hub copy names no image: there the option is reported and ignored.
"""

from __future__ import annotations

import io
import logging
import pickle
from collections.abc import Iterator
from functools import lru_cache

from manifests.records import IMAGE_TOKEN, Image, Record, Rejection, dataset_text
from sources.base import DatasetCard, SourceError, WorkUnit
from sources.io.files import mtime_ns, open_file
from sources.io.hub import content_key, decode_image_cell, image_cell_bytes, iter_parquet_rows, split_files
from sources.io.image import ImageDecodeError, decode_file
from sources.shapes.vqa import VqaSource

log = logging.getLogger(__name__)

SPLITS = {"train": "train", "val": "validate", "test": "test"}  # folder -> canonical split
HUB_SPLITS = {"train": "train", "validation": "validate", "test": "test"}  # Hub split -> canonical split


class _PlainUnpickler(pickle.Unpickler):
    """Loads only built-in containers and scalars: any class or function reference is refused."""

    def find_class(self, module, name):
        raise pickle.UnpicklingError(f"refusing to load {module}.{name}")


@lru_cache(maxsize=4)
def _load_rows(path: str, mtime_ns: int) -> list:
    with open_file(path, "rb") as handle:
        rows = _PlainUnpickler(io.BytesIO(handle.read())).load()
    if not isinstance(rows, list):
        raise ValueError(f"expected a pickled list of QA dicts, got {type(rows).__name__}")
    return rows


def _image_name(row) -> str:
    """The image a row asks about, for listing its questions together ("" for a malformed row)."""
    return row["image"].strip() if isinstance(row, dict) and isinstance(row.get("image"), str) else ""


class PathVqa(VqaSource):
    card = DatasetCard(
        name="pathvqa",
        title="PathVQA",
        modalities=("histopathology",),
        tasks=("medical_vqa",),
        licence="MIT (HF card)",
        access="open",
        url="https://github.com/UCSD-AI4H/PathVQA",
        citation="He et al., PathVQA: 30000+ Questions for Medical Visual Question Answering, arXiv:2003.10286",
        root_names=("pvqa", "PathVQA", "pathvqa"),
        counts="4,998 images, 32,799 QA (paper; test 6,761); HF de-duplicated copy 19,654 / 6,259 / 6,719",
        hub_repos=("flaviagiammarino/path-vqa",),
    )
    items_per_unit = 512

    def work_units(self) -> list[WorkUnit]:
        hub = {} if (self.root / "qas").is_dir() else split_files(self.root, "data/{split}-*.parquet", HUB_SPLITS)
        if hub and self.question_grouping("train"):
            log.warning("pathvqa: option group_questions ignored: the Hub copy has no image name to group by")
        if hub:
            return [unit for split, files in hub.items() if self.wants_split(split)
                    for unit in self.parquet_units(split, files)]
        present = [folder for folder in SPLITS if (self.root / "qas" / folder / f"{folder}_qa.pkl").is_file()]
        if not present:
            raise SourceError(f"{self.root}: no qas/<split>/<split>_qa.pkl; point the root at the pvqa folder")
        units = []
        for folder in present:
            split = SPLITS[folder]
            if not self.wants_split(split):
                continue
            relative = f"qas/{folder}/{folder}_qa.pkl"
            path = self.root / relative
            try:
                rows = _load_rows(str(path), mtime_ns(path))
            except (pickle.UnpicklingError, ValueError, EOFError, TypeError) as err:
                units.append(WorkUnit(self.name, f"pathvqa/{split}/{relative}", split,
                                      ({"file": relative, "error": str(err)},)))
                continue
            units.extend(self.image_units(split, [{"file": relative, "folder": folder, "row": i}
                                                  for i in range(len(rows))],
                                          lambda item: _image_name(rows[item["row"]])))
        return units

    def iter_records(self, unit: WorkUnit) -> Iterator[Record | Rejection]:
        first = unit.items[0]
        if "row_groups" in first:
            for row, values in iter_parquet_rows(self.root / first["file"], first["row_groups"], first["first_row"],
                                                 ("image", "question", "answer")):
                yield self._hub_record(values, f"{first['file']}#{row}", first["file"], unit.split)
            return
        if "error" in first:
            yield self.reject(f"pathvqa/{unit.split}/{first['file']}", unit.split, "malformed_pickle", first["error"],
                              modality="histopathology", provenance=[first["file"]])
            return
        path = self.root / first["file"]
        rows = _load_rows(str(path), mtime_ns(path))
        images: dict[str, Image | ImageDecodeError] = {}
        yield from self.grouped_records(unit, (self._record(rows[item["row"]], item, unit.split, images)
                                               for item in unit.items))

    def image_key(self, record: Record) -> str | None:
        return record.meta["image_id"]  # the pickle's `image`: one file per split folder

    def _record(self, row, item: dict, split: str, images: dict) -> Record | Rejection:
        record_id = f"pathvqa/{split}/{item['row']}"
        if not isinstance(row, dict) or not isinstance(row.get("image"), str) or not row["image"].strip():
            return self.reject(record_id, split, "malformed_row", "a row needs a string `image`",
                               modality="histopathology", provenance=[item["file"]])
        image_path = f"images/{item['folder']}/{row['image'].strip()}.jpg"
        provenance = [item["file"], image_path]
        question = " ".join(str(row.get("question") or "").split())
        answer = " ".join(str(row["answer"]).split()) if row.get("answer") is not None else ""
        if not question or not answer:
            return self.reject(record_id, split, "qa_empty", f"question={question!r} answer={answer!r}",
                               modality="histopathology", task_family="i2t", provenance=provenance)
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
            return self.reject(record_id, split, error.reason, error.detail, modality="histopathology",
                               task_family="i2t", provenance=provenance)
        image, data = images[image_path]
        return Record(
            id=record_id, source=self.name, split=split, modality="histopathology", task_family="i2t",
            main_task_type="image_understanding", sub_task_type="medical_vqa",
            message=[{"from": "human", "value": f"{IMAGE_TOKEN}\n{question}"}, {"from": "gpt", "value": answer}],
            input_images=[image], provenance=provenance, source_text=dataset_text(question, answer),
            meta={"language": "en", "image_id": row["image"].strip(),
                  "answer_type": "closed" if answer.lower() in ("yes", "no") else "open",
                  "content_key": content_key(split, data, row.get("question") or "", str(row["answer"]))},
        )

    def _hub_record(self, values: dict, where: str, file: str, split: str) -> Record | Rejection:
        facts = {"modality": "histopathology", "task_family": "i2t", "provenance": [file]}
        question = " ".join(str(values.get("question") or "").split())
        answer = " ".join(str(values["answer"]).split()) if values.get("answer") is not None else ""
        data = image_cell_bytes(values.get("image"))
        if data is None:
            return self.reject(f"pathvqa/{split}/{where}", split, "missing_file", "row has no embedded image bytes",
                               **facts)
        key = content_key(split, data, question, answer)
        record_id = f"pathvqa/{split}/h{key[:16]}"
        if not question or not answer:
            return self.reject(record_id, split, "qa_empty", f"question={question!r} answer={answer!r}", **facts)
        try:
            image = decode_image_cell(values["image"], source_path=where)
        except ImageDecodeError as err:
            return self.reject(record_id, split, err.reason, err.detail, **facts)
        return Record(
            id=record_id, source=self.name, split=split, modality="histopathology", task_family="i2t",
            main_task_type="image_understanding", sub_task_type="medical_vqa",
            message=[{"from": "human", "value": f"{IMAGE_TOKEN}\n{question}"}, {"from": "gpt", "value": answer}],
            input_images=[image], provenance=[file], source_text=dataset_text(question, answer),
            meta={"language": "en", "image_id": None,
                  "answer_type": "closed" if answer.lower() in ("yes", "no") else "open",
                  "content_key": key, "hub_row": where},
        )
