"""APTOS 2019 Blindness Detection: colour fundus photographs graded for diabetic retinopathy (0-4).

Card
- Citation: Asia Pacific Tele-Ophthalmology Society (APTOS), Aravind Eye Hospital. "APTOS 2019 Blindness
  Detection", Kaggle competition, 2019. https://www.kaggle.com/competitions/aptos2019-blindness-detection
- Licence: Kaggle competition rules (non-commercial, research use). Access: registration (a Kaggle account
  that accepted the competition rules).
- Modality: colour fundus photography (RGB PNG, variable size, up to ~3000+ px).
- Counts: 3,662 graded training images; 1,928 test images whose grades were never released.
- Grades: 0 no DR, 1 mild, 2 moderate, 3 severe, 4 proliferative DR; captions use the ICDR names.
- Overlaps: none known with EyePACS (different clinics, India); preprocessed Kaggle re-uploads exist
  (224 px, Gaussian-filtered), deduplicate by pixel hash if both are used.

Layout (Kaggle download, unzipped)::

    aptos2019-blindness-detection/
      train.csv              id_code ("000c1434d8d7"), diagnosis (0-4)
      test.csv               id_code only
      sample_submission.csv  placeholder grades: never read as labels
      train_images/<id_code>.png   test_images/<id_code>.png

Each graded image gives an I2T caption and a T2I sample (`sources.shapes.captions`). Quirks handled here:
headers with BOMs or stray spaces; grades written as "2" or "2.0"; a blank grade is `label_missing`, one
outside 0-4 `label_unknown`; test.csv rows have no grade, so every test image is a `label_missing`
rejection (listed, not decoded); a missing image is a `missing_file` rejection; images still zipped are a
SourceError. The preprocessed re-upload `colored_images/{No_DR,Mild,Moderate,Severe,Proliferate_DR}/*.png`
[M] is read as an unsplit variant when train.csv is absent.
"""

from __future__ import annotations

import csv
import re
from collections.abc import Iterator
from pathlib import Path

from manifests.records import Record, Rejection
from sources.base import DatasetCard, Source, SourceError, WorkUnit
from sources.io.files import open_file
from sources.io.image import ImageDecodeError, decode_file
from sources.shapes.captions import LabelTemplates, label_records, label_rejections

MODALITY = "fundus"
SPLIT_FILES = {"train": ("train.csv", "train_images"), "test": ("test.csv", "test_images")}
COLORED_FOLDERS = {"No_DR": "0", "Mild": "1", "Moderate": "2", "Severe": "3", "Proliferate_DR": "4"}
GRADE = re.compile(r"(\d+)(?:\.0*)?")

# Shared with sources/eyepacs.py: the International Clinical Diabetic Retinopathy (ICDR) severity scale.
DR_TEMPLATES = LabelTemplates(
    labels={
        "0": "no diabetic retinopathy",
        "1": "mild non-proliferative diabetic retinopathy",
        "2": "moderate non-proliferative diabetic retinopathy",
        "3": "severe non-proliferative diabetic retinopathy",
        "4": "proliferative diabetic retinopathy",
    },
    instructions=(
        "What grade of diabetic retinopathy does this fundus photograph show?",
        "Grade the diabetic retinopathy in this retinal fundus image.",
        "Describe this colour fundus photograph.",
    ),
    captions=(
        "Colour fundus photograph showing {label}.",
        "Retinal fundus image with {label}.",
        "Fundus photograph with {label}.",
    ),
    prompts=(
        "Generate a colour fundus photograph showing {label}.",
        "A retinal fundus photograph with {label}.",
        "Create a fundus image of an eye with {label}.",
    ),
)


def read_csv(path: Path) -> list[dict[str, str]]:
    """Rows keyed by stripped column names (BOMs and stray spaces occur), values stripped."""
    with open_file(path, "r", encoding="utf-8-sig", newline="") as handle:
        return [{(key or "").strip(): (value or "").strip() for key, value in row.items()}
                for row in csv.DictReader(handle)]


def grade_key(value: str) -> str:
    """"2" and "2.0" are grade "2"; anything else is kept as written (and rejected as unknown)."""
    match = GRADE.fullmatch(value)
    return str(int(match.group(1))) if match else value


class Aptos2019(Source):
    templates_version = 2  # caption "Fundus photograph with {label}." (v1: "graded as no diabetic retinopathy")
    card = DatasetCard(
        name="aptos2019",
        title="APTOS 2019 Blindness Detection",
        modalities=(MODALITY,),
        tasks=("classification_caption", "text_to_image"),
        licence="Kaggle competition rules (non-commercial)",
        access="registration",
        url="https://www.kaggle.com/competitions/aptos2019-blindness-detection",
        citation="APTOS / Aravind Eye Hospital, APTOS 2019 Blindness Detection, Kaggle 2019",
        root_names=("aptos2019-blindness-detection", "aptos2019", "APTOS2019"),
        counts="3,662 graded train images, 1,928 ungraded test images",
    )

    def work_units(self) -> list[WorkUnit]:
        present = {split: files for split, files in SPLIT_FILES.items() if (self.root / files[0]).is_file()}
        if not present:
            if (self.root / "colored_images").is_dir():
                return self._colored_units()
            raise SourceError(f"{self.root}: no train.csv or test.csv; point the root at the APTOS 2019 download")
        units = []
        for split, (csv_name, image_dir) in present.items():
            if not self.wants_split(split):
                continue
            if not (self.root / image_dir).is_dir() and (self.root / f"{image_dir}.zip").is_file():
                raise SourceError(f"{self.root}: unzip {image_dir}.zip in place (images are read from {image_dir}/)")
            items = [{"row": number, "file": csv_name, "id": row.get("id_code", ""),
                      "grade": row.get("diagnosis") if split == "train" else None,
                      "image": f"{image_dir}/{row.get('id_code', '')}.png"}
                     for number, row in enumerate(read_csv(self.root / csv_name))]
            units.extend(self.chunked_units(split, items))
        return units

    def _colored_units(self) -> list[WorkUnit]:
        if not self.wants_split("unsplit"):
            return []
        items = [{"row": None, "file": None, "id": path.stem, "grade": grade,
                  "image": self.relative(path)}
                 for folder, grade in COLORED_FOLDERS.items()
                 for path in sorted((self.root / "colored_images" / folder).glob("*.png"))]
        return self.chunked_units("unsplit", items)

    def iter_records(self, unit: WorkUnit) -> Iterator[Record | Rejection]:
        for item in unit.items:
            yield from self._records(item, unit.split)

    def _records(self, item: dict, split: str) -> list[Record | Rejection]:
        provenance = [item["file"], item["image"]] if item["file"] else [item["image"]]
        if not item["id"]:
            return [self.reject(f"{self.name}/{split}/{item['file']}#{item['row']}", split, "malformed_row",
                                "empty id_code", modality=MODALITY, provenance=[item["file"]])]
        stem = f"{self.name}/{split}/{item['id']}"
        if not item["grade"]:
            detail = "test.csv has no grades" if item["grade"] is None else "blank diagnosis"
            return label_rejections(self, stem, split, "label_missing", detail, modality=MODALITY,
                                    provenance=provenance)
        try:
            image = decode_file(self.root / item["image"], source_path=item["image"])
        except ImageDecodeError as err:
            image = err
        return label_records(self, stem, split, MODALITY, image, grade_key(item["grade"]), DR_TEMPLATES,
                             provenance=provenance)
