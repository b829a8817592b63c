"""HAM10000 ("Human Against Machine with 10000 training images"): dermoscopic images of pigmented skin lesions.

Card
- Citation: Tschandl P, Rosendahl C, Kittler H. "The HAM10000 dataset, a large collection of multi-source
  dermatoscopic images of common pigmented skin lesions." Scientific Data 5, 180161 (2018).
  doi:10.1038/sdata.2018.161
- URL: https://doi.org/10.7910/DVN/DBW86T (Harvard Dataverse); Kaggle mirror
  `kmader/skin-cancer-mnist-ham10000`.
- Licence: CC BY-NC 4.0 as stated on the Dataverse page [L: not re-checked here]. Access: open download.
- Modality: dermoscopy, 600x450 RGB JPEG.
- Counts: 10,015 images of 7,470 lesions; dx: nv 6,705, mel 1,113, bkl 1,099, bcc 514, akiec 327,
  vasc 142, df 115.
- Overlaps: these are the ISIC 2018 Task 3 training images (same ISIC_ ids): do not take both `isic`
  (2018/2019 training) and `ham10000` without deduplicating by image id or pixel hash.

Layout (Kaggle zip, or Dataverse files with the two image zips unpacked in place)::

    HAM10000/ (Kaggle: skin-cancer-mnist-ham10000/, Dataverse: dataverse_files/)
      HAM10000_metadata.csv      Dataverse may name it "HAM10000_metadata" (no extension) [M]
      HAM10000_images_part_1/ISIC_0024306.jpg ...
      HAM10000_images_part_2/ISIC_0032xxx.jpg ...
      (Kaggle also: ham10000_images_part_1/ and _2/ lower-case duplicates, hmnist_*.csv: both ignored)

Columns: lesion_id, image_id, dx (akiec, bcc, bkl, df, mel, nv, vasc), dx_type (histo, follow_up,
consensus, confocal), age (may be blank), sex (male/female/unknown), localization ("unknown" occurs),
optional dataset. No official split: every record is "unsplit"; several images share one lesion, so a
downstream split must group by `meta.lesion_id`. Each image gives a `/caption` (i2t,
classification_caption) and a `/t2i` sample, worded from the label only (sources/shapes/captions.py).
Quirks handled here: the metadata file with or without `.csv`; images found in either part folder; blank
age and "unknown" sex or site become None; a listed image found in no part folder rejects both samples as
`missing_file`; an unzipped part (only the .zip present) is a SourceError that says to unzip it.
"""

from __future__ import annotations

import csv
from collections.abc import Iterator
from pathlib import Path

from manifests.records import Record, Rejection
from sources.base import DatasetCard, Source, SourceError, WorkUnit
from sources.io.files import open_file
from sources.io.image import ImageDecodeError, decode_file
from sources.shapes.captions import LabelTemplates, label_records, label_rejections

METADATA_NAMES = ("HAM10000_metadata.csv", "HAM10000_metadata")
IMAGE_DIRS = ("HAM10000_images_part_1", "HAM10000_images_part_2", "ham10000_images_part_1",
              "ham10000_images_part_2", "HAM10000_images")
UNKNOWN = {"", "unknown", "nan"}

# Shared with sources/isic.py: the ISIC 2018/2019 diagnosis classes use the same clinical names.
DERMOSCOPY_LABELS = {
    "akiec": "an actinic keratosis or intraepithelial carcinoma (Bowen's disease)",
    "ak": "an actinic keratosis",
    "bcc": "a basal cell carcinoma",
    "bkl": "a benign keratosis-like lesion",
    "df": "a dermatofibroma",
    "mel": "a melanoma",
    "nv": "a melanocytic nevus",
    "scc": "a squamous cell carcinoma",
    "sk": "a seborrheic keratosis",
    "vasc": "a vascular lesion",
}
DERMOSCOPY_TEMPLATES = LabelTemplates(
    labels=DERMOSCOPY_LABELS,
    instructions=(
        "What type of skin lesion is shown in this dermoscopic image?",
        "Describe this dermoscopy image.",
        "What is the diagnosis of the lesion in this dermoscopic image?",
    ),
    captions=("Dermoscopic image of {label}.", "Dermoscopy showing {label}.", "{Label}, seen on dermoscopy."),
    prompts=(
        "Generate a dermoscopy image of {label}.",
        "A dermoscopic image of {label}.",
        "Create a dermoscopic photograph of {label}.",
    ),
    prompt_labels={"nv": "a benign melanocytic nevus", "df": "a benign dermatofibroma"},
)


def _known(value: str | None) -> str | None:
    value = (value or "").strip()
    return None if value.lower() in UNKNOWN else value


def _age(value: str | None) -> float | None:
    try:
        return float(value) if _known(value) else None
    except ValueError:
        return None


class Ham10000(Source):
    card = DatasetCard(
        name="ham10000",
        title="HAM10000 (dermoscopic images of pigmented skin lesions)",
        modalities=("dermoscopy",),
        tasks=("classification_caption", "text_to_image"),
        licence="CC BY-NC 4.0 [not re-checked]",
        access="open",
        url="https://doi.org/10.7910/DVN/DBW86T",
        citation="Tschandl, Rosendahl, Kittler, The HAM10000 dataset, Scientific Data 2018",
        root_names=("HAM10000", "ham10000", "skin-cancer-mnist-ham10000", "dataverse_files"),
        counts="10,015 images, 7,470 lesions, 7 classes",
    )

    def _metadata(self) -> Path:
        for name in METADATA_NAMES:
            if (self.root / name).is_file():
                return self.root / name
        raise SourceError(f"{self.root}: no HAM10000_metadata(.csv); point the root at the HAM10000 download")

    def _image_index(self) -> dict[str, str]:
        """image id -> path relative to the root, from the part folders (first folder wins)."""
        index: dict[str, str] = {}
        for folder in IMAGE_DIRS:
            if not (self.root / folder).is_dir():
                if (self.root / f"{folder}.zip").is_file():
                    raise SourceError(f"{self.root}: unzip {folder}.zip in place (images are read from {folder}/)")
                continue
            for path in sorted((self.root / folder).glob("*.jpg")):
                index.setdefault(path.stem, f"{folder}/{path.name}")
        return index

    def work_units(self) -> list[WorkUnit]:
        metadata = self._metadata()
        if not self.wants_split("unsplit"):
            return []
        with open_file(metadata, "r", encoding="utf-8-sig", newline="") as handle:
            rows = [{key.strip().lower(): (value or "").strip() for key, value in row.items() if key}
                    for row in csv.DictReader(handle)]
        index = self._image_index()
        items = [dict(row, row=number, file=metadata.name, image=index.get(row.get("image_id", "")))
                 for number, row in enumerate(rows)]
        return self.chunked_units("unsplit", items)

    def iter_records(self, unit: WorkUnit) -> Iterator[Record | Rejection]:
        for item in unit.items:
            yield from self._records(item, unit.split)

    def _records(self, item: dict, split: str) -> list[Record | Rejection]:
        image_id = item.get("image_id", "")
        if not image_id:
            return [self.reject(f"{self.name}/{split}/{item['file']}#{item['row']}", split, "malformed_row",
                                "empty image_id", modality="dermoscopy", provenance=[item["file"]])]
        stem = f"{self.name}/{split}/{image_id}"
        if item["image"] is None:
            return label_rejections(self, stem, split, "missing_file", f"{image_id}.jpg in no images part folder",
                                    modality="dermoscopy", provenance=[item["file"]])
        try:
            image = decode_file(self.root / item["image"], source_path=item["image"])
        except ImageDecodeError as err:
            image = err
        meta = {"lesion_id": _known(item.get("lesion_id")), "dx_type": _known(item.get("dx_type")),
                "age": _age(item.get("age")), "sex": _known(item.get("sex")),
                "localization": _known(item.get("localization")), "dataset": _known(item.get("dataset"))}
        return label_records(self, stem, split, "dermoscopy", image, item.get("dx", "").lower(),
                             DERMOSCOPY_TEMPLATES, provenance=[item["file"], item["image"]], meta=meta)
