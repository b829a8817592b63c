"""Medical-Diff-VQA (MIMIC-Diff-VQA): difference-aware visual questions on pairs of MIMIC-CXR studies.

Card
- Citation: Hu X, Gu L, An Q, Zhang M, Liu L, Kobayashi K, Harada T, Summers RM, Zhu Y. "Expert
  Knowledge-Aware Image Difference Graph Representation Learning for Difference-Aware Medical Visual Question
  Answering." KDD 2023. doi:10.1145/3580305.3599819. Code: https://github.com/Holipori/MIMIC-Diff-VQA
- URL: https://physionet.org/content/medical-diff-vqa/
- Licence: PhysioNet Credentialed Health Data License 1.5.0 (it derives from MIMIC-CXR). Access: credentialed.
  Do not redistribute shards built from it.
- Modality: chest X-ray (the MIMIC-CXR-JPG images; the dataset ships questions only).
- Counts: ~700K question-answer pairs over ~164K study pairs [M, paper]; splits train / val / test.
- Overlaps: images are MIMIC-CXR-JPG's (`mimic_cxr_jpg`) and MIMIC-CXR's (`mimic_cxr`): same pixels, other
  text; its splits come from its own CSV, which may differ from MIMIC-CXR-JPG's [L].

Layout::

    medical-diff-vqa/1.0.0/                 (PhysioNet; exact file list not verified [L])
      mimic_pair_questions.csv              study_id, subject_id, ref_id, question_type, question, answer, split
      mimic_all.csv                         per study: CheXpert labels, dicom_id, view, split, study_order (unused)

Images come from MIMIC-CXR-JPG: the recipe option `images_root` names its version folder (the one holding
`mimic-cxr-2.0.0-metadata.csv.gz` and `files/`); else a sibling `mimic-cxr-jpg/<version>/` (or
`mimic-cxr-jpg/`) beside this dataset's folder under the same sources root is used. Provenance names only this dataset's
file (the CSV); the images' paths, relative to that images root (`files/pXX/pSUBJECT/sSTUDY/<dicom_id>.jpg`),
are `meta["image_paths"]` and each image's `source_path`.

Each study is shown by ONE image: the first frontal image of the study (ViewPosition PA or AP) in the order of
MIMIC-CXR-JPG's metadata file; a study without one is `no_frontal_image`, a study not in the metadata
`study_not_found`. (The authors' `mimic_all.csv` likewise keeps one PA/AP dicom per study; it is not read.)
A `difference` row becomes a two-image sample: input_images = [reference (ref_id) image, main (study_id)
image], human turn "<image>\\n<image>\\nThe first image is the reference image (the earlier study), the second
the main image (the current one). <question>", gpt = answer; the questions and answers say "main image" and
"reference image", hence the wording. Every other question type (abnormality, presence, location, level,
type, view) is asked of the main image alone. Ids: `medical_diff_vqa/<split>/<study_id>_<row>` (row = data row
number in the CSV, stable for a release). Quirks handled here: split "val" is validate; a difference row with
a blank ref_id is `missing_reference`; an empty question or answer is `qa_empty`; without MIMIC-CXR-JPG every
row is `missing_images_root`; ids and answers are kept as written (lower case upstream).

Option `group_questions: per_image` (with `max_turns`, `max_chars`; sources/shapes/vqa.py): the train
questions of one image, or of one (reference, main) pair, as multi-turn samples
`medical_diff_vqa/train/image/<dicom_id>[+<dicom_id>]/<n>`; the pair's preface is said once, in the first
turn. Validate and test stay one sample per question.
"""

from __future__ import annotations

import csv
from collections.abc import Iterator
from pathlib import Path

from manifests.records import IMAGE_TOKEN, Record, Rejection, dataset_text
from sources.base import DatasetCard, SourceError, WorkUnit
from sources.io.files import open_file, source_path
from sources.io.image import ImageDecodeError, decode_file
from sources.mimic_cxr_jpg import METADATA_FILES, jpg_path, read_metadata, sibling_root
from sources.shapes.vqa import VqaSource, without_placeholders

QUESTIONS_FILE = "mimic_pair_questions.csv"
SPLITS = {"train": "train", "val": "validate", "validate": "validate", "test": "test"}
ORDER = ("train", "validate", "test", "unsplit")
FRONTAL = ("PA", "AP")
IMAGE_FOLDERS = ("mimic-cxr-jpg/2.1.0", "mimic-cxr-jpg/2.0.0", "mimic-cxr-jpg")
PAIR_PREFACE = ("The first image is the reference image (the earlier study), "
                "the second the main image (the current one).")
NO_IMAGES = ("MIMIC-CXR-JPG not found: set the option images_root to its version folder, or put it beside this "
             "dataset as mimic-cxr-jpg/<version>/")


def _studies(item: dict) -> str:
    """The studies (so the images) a question asks about, for listing its questions together."""
    return "+".join(study_id for _, study_id, _, _ in item["images"])


def frontal_images(images_root: Path) -> tuple[dict[str, str], set[str]]:
    """Study id -> path of its first PA/AP image in metadata order, and the set of every listed study."""
    chosen: dict[str, str] = {}
    studies: set[str] = set()
    for row in read_metadata(images_root):
        studies.add(row["study_id"])
        if row.get("ViewPosition") in FRONTAL and row["study_id"] not in chosen:
            chosen[row["study_id"]] = jpg_path(row["subject_id"], row["study_id"], row["dicom_id"])
    return chosen, studies


class MedicalDiffVqa(VqaSource):
    card = DatasetCard(
        name="medical_diff_vqa",
        title="Medical-Diff-VQA (difference-aware chest X-ray VQA on MIMIC-CXR)",
        modalities=("chest_xray",),
        tasks=("medical_vqa",),
        licence="PhysioNet Credentialed Health Data License 1.5.0",
        access="credentialed",
        url="https://physionet.org/content/medical-diff-vqa/",
        citation="Hu et al., Expert Knowledge-Aware Image Difference Graph Representation Learning for "
        "Difference-Aware Medical Visual Question Answering, KDD 2023",
        root_names=(
            "medical-diff-vqa/1.0.0", "medical-diff-vqa", "physionet.org/files/medical-diff-vqa/1.0.0",
        ),
        counts="~700K QA pairs over ~164K study pairs",
    )
    items_per_unit = 512

    def images_root(self) -> Path | None:
        option = self.options.get("images_root")
        if option:
            if not any((source_path(option) / name).is_file() for name in METADATA_FILES):
                raise SourceError(f"images_root {option} holds no {METADATA_FILES[0]}; point it at the "
                                  "MIMIC-CXR-JPG version folder")
            return source_path(option)
        return next((path for name in METADATA_FILES
                     if (path := sibling_root(self.root, IMAGE_FOLDERS, name)) is not None), None)

    def work_units(self) -> list[WorkUnit]:
        path = self.root / QUESTIONS_FILE
        if not path.is_file():
            raise SourceError(f"{self.root}: no {QUESTIONS_FILE}; point the root at the Medical-Diff-VQA folder")
        images_root = self.images_root()
        chosen, studies = frontal_images(images_root) if images_root else ({}, set())
        by_split: dict[str, list[dict]] = {}
        with open_file(path, "r", encoding="utf-8-sig", newline="") as handle:
            for row_number, row in enumerate(csv.DictReader(handle)):
                split = SPLITS.get(row.get("split", "").strip(), "unsplit")
                study, ref = row["study_id"].strip(), row.get("ref_id", "").strip()
                pair = row["question_type"].strip() == "difference"
                item = {"row": row_number, "study_id": study, "subject_id": row["subject_id"].strip(),
                        "ref_id": ref or None, "question_type": row["question_type"].strip(),
                        "question": row["question"], "answer": row["answer"], "images": []}
                for role, study_id in ((("reference", ref),) if pair else ()) + (("main", study),):
                    image = chosen.get(study_id)
                    problem = None if image else ("no_frontal_image" if study_id in studies else "study_not_found")
                    item["images"].append((role, study_id, image, problem))
                by_split.setdefault(split, []).append(item)
        units = []
        for split in ORDER:
            if split in by_split and self.wants_split(split):
                units.extend(self.image_units(split, by_split[split], _studies))
        return units

    def iter_records(self, unit: WorkUnit) -> Iterator[Record | Rejection]:
        images_root = self.images_root()
        yield from self.grouped_records(unit, (self._record(item, unit.split, images_root) for item in unit.items))

    def image_key(self, record: Record) -> str | None:
        return "+".join(record.meta["dicom_ids"])  # reference first, then main: one image per study

    @staticmethod
    def follow_up_question(text: str) -> str:
        return without_placeholders(text).removeprefix(PAIR_PREFACE).strip()  # said once, in the first turn

    def _record(self, item: dict, split: str, images_root: Path | None) -> Record | Rejection:
        record_id = f"{self.name}/{split}/{item['study_id']}_{item['row']}"
        paths = [image for _, _, image, _ in item["images"] if image]
        facts = {"modality": "chest_xray", "task_family": "i2t", "provenance": [QUESTIONS_FILE]}
        question, answer = " ".join(item["question"].split()), " ".join(item["answer"].split())
        if not question or not answer:
            return self.reject(record_id, split, "qa_empty", f"row {item['row']}", **facts)
        if images_root is None:
            return self.reject(record_id, split, "missing_images_root", NO_IMAGES, **facts)
        if item["question_type"] == "difference" and item["ref_id"] is None:
            return self.reject(record_id, split, "missing_reference", f"row {item['row']}: blank ref_id", **facts)
        images = []
        for role, study_id, path, problem in item["images"]:
            if problem:
                return self.reject(record_id, split, problem, f"{role} study s{study_id}", **facts)
            try:
                images.append(decode_file(images_root / path, source_path=path))
            except ImageDecodeError as err:
                return self.reject(record_id, split, err.reason, err.detail, **facts)
        pair = len(images) == 2
        prompt = f"{IMAGE_TOKEN}\n{IMAGE_TOKEN}\n{PAIR_PREFACE} {question}" if pair else f"{IMAGE_TOKEN}\n{question}"
        return Record(
            id=record_id, source=self.name, split=split, modality="chest_xray", task_family="i2t",
            main_task_type="image_understanding", sub_task_type="medical_vqa",
            message=[{"from": "human", "value": prompt}, {"from": "gpt", "value": answer}],
            input_images=images, provenance=[QUESTIONS_FILE], source_text=dataset_text(question, answer),
            meta={"question_type": item["question_type"], "subject_id": item["subject_id"],
                  "study_id": item["study_id"], "ref_id": item["ref_id"],
                  "dicom_ids": [Path(path).stem for path in paths], "image_paths": paths},
        )
