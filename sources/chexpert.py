"""CheXpert v1.0: chest radiographs with 14 observations labelled from their reports.

Card
- Citation: Irvin J, Rajpurkar P, Ko M, et al. "CheXpert: A Large Chest Radiograph Dataset with Uncertainty
  Labels and Expert Comparison." AAAI 2019. arXiv:1901.07031
- URL: https://stanfordmlgroup.github.io/competitions/chexpert/ (now Stanford AIMI:
  https://aimi.stanford.edu/datasets/chexpert-chest-x-rays)
- Licence: Stanford University School of Medicine CheXpert Dataset Research Use Agreement (non-commercial).
  Access: registration.
- Modality: chest x-ray (frontal and lateral), 8-bit JPEG; the "-small" copy is ~320x390.
- Counts: 224,316 radiographs of 65,240 patients (train 223,414; valid 234 images of 200 studies,
  labelled by three radiologists' consensus). The hidden test set (500 studies) is not in this download.
- Overlaps: CheXpert Plus (same images, with reports) and the AIMI re-packaging ("batch 1 (validate &
  csv)", ...) hold the same images; dedup by pixel hash. Several images per study: split by patient.

Layout::

    CheXpert-v1.0[-small]/
      train.csv  valid.csv          Path, Sex, Age, Frontal/Lateral, AP/PA, 14 observations
      train/patient00001/study1/view1_frontal.jpg  valid/patient64541/study1/view1_frontal.jpg

Observations: 1.0 positive, 0.0 negative, -1.0 uncertain, blank not mentioned (valid.csv has only 0/1).
Each image gives an I2T caption and a T2I sample (`sources.shapes.captions`), worded from the positive
observations only, in column order ("Frontal chest X-ray with cardiomegaly and pleural effusion."); an
uncertain observation never appears in the text and is never turned into positive or negative (it stays
"uncertain" in `meta.observations`); an image with no positive observation but "No Finding" = 1.0 gets a
"no finding" caption; one with neither is `no_positive_label`. Quirks handled here: `Path` starts with the
download's own folder name (stripped; either root name works); column names with "/" and spaces; "1",
"1.0", "-1", "-1.0" and blanks; Sex "Unknown" and a blank age are None; AP/PA is blank for laterals; a
missing image is `missing_file`. train.csv -> `train`, valid.csv -> `validate`.
"""

from __future__ import annotations

import csv
import dataclasses
from collections.abc import Iterator
from pathlib import Path, PurePosixPath

from manifests.records import Record, Rejection
from sources.base import DatasetCard, Source, SourceError, WorkUnit
from sources.io.files import open_file
from sources.io.image import ImageDecodeError, decode_file
from sources.shapes.captions import LabelTemplates, label_records, label_rejections

MODALITY = "chest_xray"
SPLIT_FILES = {"train": "train.csv", "validate": "valid.csv"}
NO_FINDING = "No Finding"
# Observation column -> the clinical phrase used in captions (column order is the caption order).
FINDINGS = {
    "Enlarged Cardiomediastinum": "enlarged cardiomediastinum",
    "Cardiomegaly": "cardiomegaly",
    "Lung Opacity": "lung opacity",
    "Lung Lesion": "a lung lesion",
    "Edema": "edema",
    "Consolidation": "consolidation",
    "Pneumonia": "pneumonia",
    "Atelectasis": "atelectasis",
    "Pneumothorax": "pneumothorax",
    "Pleural Effusion": "pleural effusion",
    "Pleural Other": "another pleural abnormality",
    "Fracture": "a fracture",
    "Support Devices": "support devices",
}
OBSERVATIONS = (NO_FINDING, *FINDINGS)
STATES = {"1": "positive", "1.0": "positive", "0": "negative", "0.0": "negative",
          "-1": "uncertain", "-1.0": "uncertain"}
VIEWS = {"frontal": "frontal", "lateral": "lateral"}
DOWNLOAD_FOLDERS = ("CheXpert-v1.0-small", "CheXpert-v1.0")


def _read_csv(path: Path) -> list[dict[str, str]]:
    with open_file(path, "r", encoding="utf-8-sig", newline="") as handle:
        return [{(key or "").strip(): (value or "").strip() for key, value in row.items()}
                for row in csv.DictReader(handle)]


def _templates(view: str | None) -> LabelTemplates:
    """Templates naming the view when the CSV gives it ("frontal chest X-ray"), else "chest X-ray"."""
    image = f"{view} chest X-ray" if view else "chest X-ray"
    start = image[0].upper() + image[1:]
    return LabelTemplates(
        labels={},
        instructions=(
            "What findings does this chest X-ray show?",
            "Describe the findings in this chest radiograph.",
            "List the findings visible on this chest X-ray.",
        ),
        captions=(f"{start} with {{label}}.", f"{{Label}} on a {image}.", f"{start}: {{label}}."),
        prompts=(f"Generate a {image} with {{label}}.", f"A {image} showing {{label}}.",
                 f"Create a {image} with {{label}}."),
    )


TEMPLATES = {view: _templates(view) for view in (*VIEWS.values(), None)}


def _join(phrases: list[str]) -> str:
    return phrases[0] if len(phrases) == 1 else f"{', '.join(phrases[:-1])} and {phrases[-1]}"


def _image_path(csv_path: str) -> str:
    """The CSV's Path relative to the dataset root: its first component is the download's folder."""
    parts = PurePosixPath(csv_path.replace("\\", "/")).parts
    return PurePosixPath(*parts[1:]).as_posix() if parts and parts[0] in DOWNLOAD_FOLDERS else "/".join(parts)


def _age(value: str) -> int | None:
    try:
        return int(float(value)) if value else None
    except ValueError:
        return None


class Chexpert(Source):
    card = DatasetCard(
        name="chexpert",
        title="CheXpert v1.0",
        modalities=(MODALITY,),
        tasks=("classification_caption", "text_to_image"),
        licence="Stanford CheXpert Dataset Research Use Agreement",
        access="registration",
        url="https://stanfordmlgroup.github.io/competitions/chexpert/",
        citation="Irvin et al., CheXpert: A Large Chest Radiograph Dataset with Uncertainty Labels and Expert "
                 "Comparison, AAAI 2019",
        root_names=DOWNLOAD_FOLDERS,
        counts="224,316 radiographs of 65,240 patients (train 223,414 / valid 234)",
    )

    def work_units(self) -> list[WorkUnit]:
        present = {split: name for split, name in SPLIT_FILES.items() if (self.root / name).is_file()}
        if not present:
            raise SourceError(f"{self.root}: no train.csv or valid.csv; point the root at CheXpert-v1.0[-small]/")
        units = []
        for split, name in present.items():
            if not self.wants_split(split):
                continue
            items = [{"row": number, "file": name, **row} for number, row in enumerate(_read_csv(self.root / name))]
            units.extend(self.chunked_units(split, items))
        return units

    def iter_records(self, unit: WorkUnit) -> Iterator[Record | Rejection]:
        for item in unit.items:
            yield from self._records(item, unit.split)

    def _records(self, item: dict, split: str) -> list[Record | Rejection]:
        image_path = _image_path(item.get("Path", ""))
        parts = PurePosixPath(image_path).with_suffix("").parts
        if len(parts) < 4:  # <split folder>/<patient>/<study>/<view>
            return [self.reject(f"{self.name}/{split}/{item['file']}#{item['row']}", split, "malformed_row",
                                f"Path {item.get('Path', '')!r}", modality=MODALITY, provenance=[item["file"]])]
        stem = f"{self.name}/{split}/{'/'.join(parts[-3:])}"
        provenance = [item["file"], image_path]
        observations = {name: STATES.get(item.get(name, "")) for name in OBSERVATIONS}
        positive = [name for name in FINDINGS if observations[name] == "positive"]
        if positive:
            label_key, phrase = ";".join(positive), _join([FINDINGS[name] for name in positive])
        elif observations[NO_FINDING] == "positive":
            label_key, phrase = NO_FINDING, "no finding"
        else:
            uncertain = [name for name, state in observations.items() if state == "uncertain"]
            return label_rejections(self, stem, split, "no_positive_label",
                                    f"uncertain: {', '.join(uncertain)}" if uncertain else "no observation is 1.0",
                                    modality=MODALITY, provenance=provenance)
        view = VIEWS.get(item.get("Frontal/Lateral", "").lower())
        templates = dataclasses.replace(TEMPLATES[view], labels={label_key: phrase})
        try:
            image = decode_file(self.root / image_path, source_path=image_path)
        except ImageDecodeError as err:
            image = err
        sex = item.get("Sex", "")
        meta = {"patient": parts[-3], "study": parts[-2], "view": view, "ap_pa": item.get("AP/PA") or None,
                "sex": sex.lower() if sex and sex.lower() != "unknown" else None, "age": _age(item.get("Age", "")),
                "observations": observations}
        return label_records(self, stem, split, MODALITY, image, label_key, templates, provenance=provenance,
                             meta=meta)
