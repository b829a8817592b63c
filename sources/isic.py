"""ISIC challenges 2017-2020: dermoscopic images with diagnosis ground truth (classification -> captions).

Card
- Citations: Codella NCF et al., "Skin lesion analysis toward melanoma detection: a challenge at ISBI 2017"
  (ISBI 2018); Codella N et al., "Skin Lesion Analysis Toward Melanoma Detection 2018" (arXiv:1902.03368);
  Combalia M et al., "BCN20000: Dermoscopic lesions in the wild" (arXiv:1908.02288, ISIC 2019); Rotemberg V
  et al., "A patient-centric dataset of images and metadata for identifying melanomas using clinical
  context", Scientific Data 8, 34 (2021) (ISIC 2020). 2018/2019 training also cite HAM10000.
- URL: https://challenge.isic-archive.com/data/ (2020 also on Kaggle `siim-isic-melanoma-classification`).
- Licence: CC BY-NC (2019/2020: CC BY-NC 4.0) [M]. Access: open download.
- Modality: dermoscopy, RGB JPEG, 600x450 to >4000 px.
- Counts: 2017 2,000/150/600; 2018 Task 3 10,015/193/1,512; 2019 25,331 train; 2020 33,126 train.
- Overlaps: 2018 Task 3 training = HAM10000 (`ham10000` source); 2019 training includes HAM10000 and the
  2017 images; years share ISIC_ ids. Deduplicate by image id or pixel hash when taking several.

Layout (each challenge's zips unpacked under one root, at the top or one folder down)::

    ISIC/
      ISIC-2017_Training_Data/ISIC_0000000.jpg        ISIC-2017_Training_Part3_GroundTruth.csv
        (image_id, melanoma, seborrheic_keratosis: floats; both 0 = nevus); also _Validation_, _Test_v2_
      ISIC2018_Task3_Training_Input/ISIC_0024306.jpg  ISIC2018_Task3_Training_GroundTruth.csv
        (image, MEL, NV, BCC, AKIEC, BKL, DF, VASC: one-hot floats); also _Validation_, _Test_
      ISIC_2019_Training_Input/ISIC_0000000.jpg       ISIC_2019_Training_GroundTruth.csv
        (image, MEL, NV, BCC, AK, BKL, DF, VASC, SCC, UNK; UNK all-zero in train)
      ISIC_2020_Training_JPEG/train/ISIC_2637011.jpg (Kaggle: train/)   ISIC_2020_Training_GroundTruth(_v2).csv
        (image_name, patient_id, [lesion_id], sex, age_approx, anatom_site_general_challenge, diagnosis,
         benign_malignant, target)

Each image gives a `/caption` (i2t, classification_caption) and a `/t2i` sample worded from its label only
(sources/shapes/captions.py, the dermoscopy wording shared with ham10000). Record ids carry the year
(`isic/train/2019/ISIC_0000000`) because years reuse image ids. Quirks handled here: the image column is
`image_id` / `image` / `image_name` by year; one-hot floats "1.0"/"0.0"; a row with no hot class is
`label_missing`, with several `label_ambiguous`; 2020 diagnosis "unknown" falls back to benign/malignant
("a benign skin lesion"), other 2020 names not in the template list are `label_unknown`; 2019 images with a
`_downsampled` suffix [L] are found under either name; a missing image is `missing_file`.

Lesion masks (2017 Part 1, 2018 Task 1; option `segmentation: true`): where the download ships the task-1
ground truth, each mask gives one interleaved prompt-segmentation record (`isic/<split>/<year>/<id>/segmentation`,
target "skin lesion"; `sources.shapes.masks`), the lesion rendered 0/255 (mask grey > 127)::

    ISIC2018_Task1_Training_GroundTruth/ISIC_0000000_segmentation.png   ISIC2018_Task1-2_Training_Input/ISIC_0000000.jpg
    ISIC-2017_Training_Part1_GroundTruth/ISIC_0000000_segmentation.png  ISIC-2017_Training_Data/ISIC_0000000.jpg

A mask whose image is absent is `missing_file`. Task-1 images are not classification rows: they give no
caption. `captions: false` drops the caption and T2I records (a stage-3 recipe wants masks only).
"""

from __future__ import annotations

import csv
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from manifests.records import Record, Rejection
from sources.base import DatasetCard, Source, SourceError, WorkUnit
from sources.ham10000 import DERMOSCOPY_LABELS, DERMOSCOPY_TEMPLATES
from sources.io.files import open_file
from sources.io.image import ImageDecodeError, decode_file
from sources.io.lfs import check_lfs_pointer
from sources.shapes.captions import LabelTemplates, label_records, label_rejections
from sources.shapes.masks import mask_record

LABELS = {
    **DERMOSCOPY_LABELS,
    "lentigo": "a lentigo",
    "lichenoid_keratosis": "a lichenoid keratosis",
    "cafe_au_lait": "a cafe-au-lait macule",
    "atypical_melanocytic": "an atypical melanocytic proliferation",
    "benign": "a benign skin lesion",
    "malignant": "a malignant skin lesion",
}
TEMPLATES = LabelTemplates(labels=LABELS, instructions=DERMOSCOPY_TEMPLATES.instructions,
                           captions=DERMOSCOPY_TEMPLATES.captions, prompts=DERMOSCOPY_TEMPLATES.prompts,
                           prompt_labels=DERMOSCOPY_TEMPLATES.prompt_labels)
DIAGNOSES_2020 = {  # ISIC 2020 `diagnosis` value -> label key
    "nevus": "nv", "melanoma": "mel", "seborrheic keratosis": "sk", "lentigo nos": "lentigo",
    "solar lentigo": "lentigo", "lichenoid keratosis": "lichenoid_keratosis", "cafe-au-lait macule": "cafe_au_lait",
    "atypical melanocytic proliferation": "atypical_melanocytic",
}
UNKNOWN = {"", "unknown", "nan"}


@dataclass(frozen=True)
class Release:
    year: str
    split: str
    table: tuple[str, ...]  # ground-truth CSV names, first found wins
    images: tuple[str, ...]  # image folders, first found wins
    kind: str  # "2017", "onehot" or "2020"


RELEASES = (
    Release("2017", "train", ("ISIC-2017_Training_Part3_GroundTruth.csv",), ("ISIC-2017_Training_Data",), "2017"),
    Release("2017", "validate", ("ISIC-2017_Validation_Part3_GroundTruth.csv",), ("ISIC-2017_Validation_Data",),
            "2017"),
    Release("2017", "test", ("ISIC-2017_Test_v2_Part3_GroundTruth.csv",), ("ISIC-2017_Test_v2_Data",), "2017"),
    Release("2018", "train", ("ISIC2018_Task3_Training_GroundTruth.csv",), ("ISIC2018_Task3_Training_Input",),
            "onehot"),
    Release("2018", "validate", ("ISIC2018_Task3_Validation_GroundTruth.csv",), ("ISIC2018_Task3_Validation_Input",),
            "onehot"),
    Release("2018", "test", ("ISIC2018_Task3_Test_GroundTruth.csv",), ("ISIC2018_Task3_Test_Input",), "onehot"),
    Release("2019", "train", ("ISIC_2019_Training_GroundTruth.csv",), ("ISIC_2019_Training_Input",), "onehot"),
    Release("2020", "train", ("ISIC_2020_Training_GroundTruth_v2.csv", "ISIC_2020_Training_GroundTruth.csv"),
            ("ISIC_2020_Training_JPEG/train", "train"), "2020"),
)
IMAGE_COLUMNS = ("image_id", "image", "image_name")
SEGMENTATION_RELEASES = (  # (year, split, mask folder, image folder): task-1 lesion masks
    ("2017", "train", "ISIC-2017_Training_Part1_GroundTruth", "ISIC-2017_Training_Data"),
    ("2017", "validate", "ISIC-2017_Validation_Part1_GroundTruth", "ISIC-2017_Validation_Data"),
    ("2017", "test", "ISIC-2017_Test_v2_Part1_GroundTruth", "ISIC-2017_Test_v2_Data"),
    ("2018", "train", "ISIC2018_Task1_Training_GroundTruth", "ISIC2018_Task1-2_Training_Input"),
    ("2018", "validate", "ISIC2018_Task1_Validation_GroundTruth", "ISIC2018_Task1-2_Validation_Input"),
    ("2018", "test", "ISIC2018_Task1_Test_GroundTruth", "ISIC2018_Task1-2_Test_Input"),
)
MASK_SUFFIX = "_segmentation.png"


def _find(root: Path, names: tuple[str, ...], want_dir: bool) -> str | None:
    """A file or folder at the root or one or two folders down (zips unpack into a folder of their name)."""
    for name in names:
        for pattern in (name, f"*/{name}", f"*/*/{name}"):
            for path in sorted(root.glob(pattern)):
                if path.is_dir() if want_dir else path.is_file():
                    return path.relative_to(root).as_posix()
    return None


def _label(row: dict[str, str], kind: str) -> tuple[str | None, str]:
    """(label key, problem): the key, or None and a rejection reason."""
    if kind == "2017":
        hot = [key for key, column in (("mel", "melanoma"), ("sk", "seborrheic_keratosis"))
               if _hot(row.get(column))]
        return (hot[0], "") if len(hot) == 1 else (None, "label_ambiguous") if hot else ("nv", "")
    if kind == "2020":
        diagnosis = (row.get("diagnosis") or "").strip().lower()
        if diagnosis not in UNKNOWN:
            return DIAGNOSES_2020.get(diagnosis, diagnosis), ""
        verdict = (row.get("benign_malignant") or "").strip().lower()
        return (verdict, "") if verdict in ("benign", "malignant") else (None, "label_missing")
    hot = [column for column, value in row.items() if column not in IMAGE_COLUMNS and _hot(value)]
    if len(hot) != 1:
        return None, "label_ambiguous" if hot else "label_missing"
    return hot[0].lower(), ""


def _hot(value: str | None) -> bool:
    try:
        return float(value or 0) >= 0.5
    except ValueError:
        return False


def _known(value: str | None) -> str | None:
    value = (value or "").strip()
    return None if value.lower() in UNKNOWN else value


class Isic(Source):
    card = DatasetCard(
        name="isic",
        title="ISIC challenges 2017-2020 (skin lesion classification)",
        modalities=("dermoscopy",),
        tasks=("classification_caption", "text_to_image", "prompt_segmentation"),
        licence="CC BY-NC 4.0 (per year) [M]",
        access="open",
        url="https://challenge.isic-archive.com/data/",
        citation="Codella et al. ISBI 2017 / arXiv:1902.03368; Combalia et al. arXiv:1908.02288; "
                 "Rotemberg et al., Scientific Data 2021",
        root_names=("ISIC", "isic", "isic-challenge"),
        counts="2017 2,750; 2018 Task 3 11,720; 2019 25,331; 2020 33,126 images",
    )

    def work_units(self) -> list[WorkUnit]:
        units, found = [], False
        for release in RELEASES:
            table = _find(self.root, release.table, want_dir=False)
            if table is None:
                continue
            found = True
            if not self.wants_split(release.split) or not self.options.get("captions", True):
                continue
            images = _find(self.root, release.images, want_dir=True) or release.images[0]
            check_lfs_pointer(self.root / table)
            with open_file(self.root / table, "r", encoding="utf-8-sig", newline="") as handle:
                rows = [{(key or "").strip(): (value or "").strip() for key, value in row.items()}
                        for row in csv.DictReader(handle)]
            items = [{"row": number, "table": table, "images": images, "year": release.year, "kind": release.kind,
                      "fields": row} for number, row in enumerate(rows)]
            units.extend(self.chunked_units(release.split, items, label=release.year))
        for year, split, mask_folder, image_folder in SEGMENTATION_RELEASES:
            masks = _find(self.root, (mask_folder,), want_dir=True)
            if masks is None:
                continue
            found = True
            if not self.wants_split(split) or not self.options.get("segmentation", False):
                continue
            images = _find(self.root, (image_folder,), want_dir=True) or image_folder
            items = [{"kind": "task1", "year": year, "mask": f"{masks}/{path.name}", "images": images,
                      "image_id": path.name[: -len(MASK_SUFFIX)]}
                     for path in sorted((self.root / masks).glob(f"*{MASK_SUFFIX}"))]
            units.extend(self.chunked_units(split, items, label=f"{year}-task1"))
        if not found:
            raise SourceError(f"{self.root}: no ISIC ground-truth CSV (e.g. ISIC_2019_Training_GroundTruth.csv); "
                              "point the root at the folder holding the unpacked challenge downloads")
        return units

    def expected_files(self) -> list[str]:
        """The ground-truth CSV of every requested split (and the task-1 mask folders when segmenting)."""
        expected = [release.table[0] for release in RELEASES if self.wants_split(release.split)]
        if self.options.get("segmentation", False):
            expected += [f"{mask}/" for _, split, mask, _ in SEGMENTATION_RELEASES if self.wants_split(split)]
        return expected

    def iter_records(self, unit: WorkUnit) -> Iterator[Record | Rejection]:
        for item in unit.items:
            yield from self._records(item, unit.split)

    def _records(self, item: dict, split: str) -> list[Record | Rejection]:
        if item["kind"] == "task1":
            image_path = f"{item['images']}/{item['image_id']}.jpg"
            try:
                image = decode_file(self.root / image_path, source_path=image_path)
            except ImageDecodeError as err:
                image = err
            return [mask_record(self, f"{self.name}/{split}/{item['year']}/{item['image_id']}/segmentation", split,
                                "dermoscopy", image, [item["mask"]], "skin lesion", provenance=[image_path],
                                meta={"year": item["year"]})]
        row = item["fields"]
        image_id = next((row[column] for column in IMAGE_COLUMNS if row.get(column)), "")
        if not image_id:
            return [self.reject(f"{self.name}/{split}/{item['year']}/{item['table']}#{item['row']}", split,
                                "malformed_row", "no image id", modality="dermoscopy", provenance=[item["table"]])]
        stem = f"{self.name}/{split}/{item['year']}/{image_id}"
        image_path = f"{item['images']}/{image_id}.jpg"
        downsampled = f"{item['images']}/{image_id}_downsampled.jpg"
        if not (self.root / image_path).is_file() and (self.root / downsampled).is_file():
            image_path = downsampled
        provenance = [item["table"], image_path]
        label, problem = _label(row, item["kind"])
        if label is None:
            return label_rejections(self, stem, split, problem, f"{item['table']} row {item['row']}",
                                    modality="dermoscopy", provenance=provenance)
        try:
            image = decode_file(self.root / image_path, source_path=image_path)
        except ImageDecodeError as err:
            image = err
        meta = {"year": item["year"]}
        if item["kind"] == "2020":
            meta.update(patient_id=_known(row.get("patient_id")), sex=_known(row.get("sex")),
                        age=float(row["age_approx"]) if _known(row.get("age_approx")) else None,
                        site=_known(row.get("anatom_site_general_challenge")),
                        benign_malignant=_known(row.get("benign_malignant")))
        return label_records(self, stem, split, "dermoscopy", image, label, TEMPLATES, provenance=provenance,
                             meta=meta)
