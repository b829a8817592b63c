"""EyePACS (Kaggle Diabetic Retinopathy Detection, 2015): colour fundus photographs graded 0-4.

Card
- Citation: Cuadros J, Bresnick G. "EyePACS: an adaptable telemedicine system for diabetic retinopathy
  screening." J Diabetes Sci Technol 3(3):509-516 (2009); Kaggle "Diabetic Retinopathy Detection" (2015).
- URL: https://www.kaggle.com/competitions/diabetic-retinopathy-detection
- Licence: Kaggle competition rules (non-commercial, research use). Access: registration (Kaggle account
  that accepted the rules).
- Modality: colour fundus photography (JPEG, many cameras, sizes up to ~5000 px; some images are
  out of focus, under-exposed or nearly black: left to the filters).
- Counts: 35,126 graded train images, 53,576 test images (grades released later in
  retinopathy_solution.csv [M], Usage Public/Private).
- Grades: 0 no DR, 1 mild, 2 moderate, 3 severe, 4 proliferative DR; captions use the ICDR names (the
  same templates as APTOS 2019).
- Overlaps: reorganised copies ("images/ + train.txt/val.txt", resized Kaggle uploads) hold the same images;
  deduplicate by pixel hash. Left and right eyes of one patient are separate images: split by patient.

Layout (Kaggle download; train.zip.001.. and test.zip.001.. joined and unzipped in place)::

    diabetic-retinopathy-detection/
      trainLabels.csv             image ("10_left", no extension), level (0-4)
      retinopathy_solution.csv    image, level, Usage  (test grades; may be absent)
      sampleSubmission.csv        placeholder levels: never read as labels
      train/10_left.jpeg ...      test/1_left.jpeg ...

Each graded image gives an I2T caption and a T2I sample. Quirks handled here: ids without extension (the
file is looked up as .jpeg, then .jpg, .png for re-encoded copies); `<patient>_<left|right>` kept as
`meta.patient` / `meta.eye` (None when the name does not follow it); test images are read only when
retinopathy_solution.csv is present (without it they have no label and are not listed); a blank level is
`label_missing`, one outside 0-4 `label_unknown`; a missing image is `missing_file`; split archives not yet
joined and unzipped are a SourceError.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

from manifests.records import Record, Rejection
from sources.aptos2019 import DR_TEMPLATES, grade_key, read_csv
from sources.base import DatasetCard, Source, SourceError, WorkUnit
from sources.io.image import ImageDecodeError, decode_file
from sources.shapes.captions import label_records, label_rejections

MODALITY = "fundus"
SPLIT_FILES = {"train": ("trainLabels.csv", "train"), "test": ("retinopathy_solution.csv", "test")}
EXTENSIONS = (".jpeg", ".jpg", ".png")
IMAGE_NAME = re.compile(r"(\d+)_(left|right)")


class Eyepacs(Source):
    templates_version = 2  # aptos2019's DR_TEMPLATES, v2
    card = DatasetCard(
        name="eyepacs",
        title="EyePACS (Kaggle Diabetic Retinopathy Detection)",
        modalities=(MODALITY,),
        tasks=("classification_caption", "text_to_image"),
        licence="Kaggle competition rules (non-commercial)",
        access="registration",
        url="https://www.kaggle.com/competitions/diabetic-retinopathy-detection",
        citation="Cuadros & Bresnick, EyePACS, J Diabetes Sci Technol 2009; Kaggle Diabetic Retinopathy Detection 2015",
        root_names=("diabetic-retinopathy-detection", "eyepacs", "EyePACS"),
        counts="35,126 graded train images, 53,576 test images",
    )

    def work_units(self) -> list[WorkUnit]:
        if not (self.root / "trainLabels.csv").is_file():
            raise SourceError(f"{self.root}: no trainLabels.csv; point the root at the Kaggle download "
                              "(unzip trainLabels.csv.zip in place)")
        units = []
        for split, (csv_name, image_dir) in SPLIT_FILES.items():
            if not (self.root / csv_name).is_file() or not self.wants_split(split):
                continue
            if not (self.root / image_dir).is_dir() and any(self.root.glob(f"{image_dir}.zip*")):
                raise SourceError(f"{self.root}: join and unzip {image_dir}.zip.00* in place "
                                  f"(cat {image_dir}.zip.* > {image_dir}.zip; images are read from {image_dir}/)")
            items = [{"row": number, "file": csv_name, "id": row.get("image", ""), "level": row.get("level", ""),
                      "usage": row.get("Usage") or None, "dir": image_dir}
                     for number, row in enumerate(read_csv(self.root / csv_name))]
            units.extend(self.chunked_units(split, items))
        return units

    def iter_records(self, unit: WorkUnit) -> Iterator[Record | Rejection]:
        for item in unit.items:
            yield from self._records(item, unit.split)

    def _image_path(self, folder: str, image_id: str) -> str:
        for extension in EXTENSIONS:
            if (self.root / folder / f"{image_id}{extension}").is_file():
                return f"{folder}/{image_id}{extension}"
        return f"{folder}/{image_id}{EXTENSIONS[0]}"  # decoding it gives the missing_file rejection

    def _records(self, item: dict, split: str) -> list[Record | Rejection]:
        if not item["id"]:
            return [self.reject(f"{self.name}/{split}/{item['file']}#{item['row']}", split, "malformed_row",
                                "empty image", modality=MODALITY, provenance=[item["file"]])]
        stem = f"{self.name}/{split}/{item['id']}"
        image_path = self._image_path(item["dir"], item["id"])
        provenance = [item["file"], image_path]
        if not item["level"]:
            return label_rejections(self, stem, split, "label_missing", "blank level", modality=MODALITY,
                                    provenance=provenance)
        try:
            image = decode_file(self.root / image_path, source_path=image_path)
        except ImageDecodeError as err:
            image = err
        name = IMAGE_NAME.fullmatch(item["id"])
        meta = {"patient": name.group(1) if name else None, "eye": name.group(2) if name else None,
                "usage": item["usage"]}  # the test solution's Public/Private; None for train
        return label_records(self, stem, split, MODALITY, image, grade_key(item["level"]), DR_TEMPLATES,
                             provenance=provenance, meta=meta)
