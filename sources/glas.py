"""GlaS (Gland Segmentation in Colon Histology Images, MICCAI 2015): H&E tiles with gland masks.

Card
- Citation: Sirinukunwattana K, Pluim JPW, Chen H, et al. "Gland segmentation in colon histology images:
  The GlaS challenge contest." Medical Image Analysis 35:489-502, 2017. Sirinukunwattana K, Snead DRJ,
  Rajpoot NM. "A stochastic polygons model for glandular structures in colon histology images." IEEE
  TMI 34(11):2366-2378, 2015 (the second grading column).
- URL: https://warwick.ac.uk/fac/cross_fac/tia/data/glascontest/ (zip
  `warwick_qu_dataset_released_2016_07_08.zip`; Kaggle mirror `sani84/glasmiccai2015-gland-segmentation`).
- Licence: research use under the contest terms [uncertain: no licence file]. Access: open.
- Modality: histopathology (H&E, 20x, Zeiss MIRAX MIDI), RGB BMP tiles of about 775x522 (sizes vary).
- Counts: 165 tiles: 85 train, 60 testA, 20 testB (16 H&E sections of T3/T4 colorectal adenocarcinoma).
- Overlaps: none known.

Layout (see docs/sources/glas.md)::

    Warwick QU Dataset (Released 2016_07_08)/      (Kaggle: Warwick_QU_Dataset/)
      train_1.bmp  train_1_anno.bmp  ...  testA_1.bmp  testA_1_anno.bmp  ...  testB_20_anno.bmp
      Grade.csv    # name, patient ID, grade (GlaS), grade (Sirinukunwattana et al. 2015)

Quirks handled: the `_anno.bmp` files are INSTANCE label maps (0 background, 1..N one id per gland), so
the foreground is any value > 0, never > 127; Grade.csv headers and values carry leading spaces
(" grade (GlaS)", " malignant") and are stripped. Splits: train_* -> train, testA_* and testB_* -> test
(the part is kept in meta). One interleaved prompt-segmentation record per tile: tile + "Please help me
segment the glands." -> short answer + the union of all glands as an 8-bit 0/255 mask. A tile whose grade
row is missing keeps None for the grades. A tile without `_anno.bmp` is `annotation_missing`.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterator
from pathlib import Path

import numpy as np
from PIL import Image as PILImage
from PIL import UnidentifiedImageError

from manifests.records import IMAGE_TOKEN, Record, Rejection
from sources.base import DatasetCard, Source, SourceError, WorkUnit
from sources.io.files import open_file, scan
from sources.io.image import ImageDecodeError, decode_file, image_from_array

TILE = re.compile(r"^(?P<part>train|testA|testB)_(?P<number>\d+)\.bmp$", re.IGNORECASE)
SPLITS = {"train": "train", "testa": "test", "testb": "test"}
TARGET = "glands"
INSTRUCTION = "Please help me segment the glands."
RESPONSES = (
    "Here is the segmentation mask of the glands.",
    "The glands have been segmented; the mask is shown below.",
    "Sure, this is the gland segmentation of the histology image.",
)


def read_instance_map(path: Path, source_path: str) -> np.ndarray:
    """An instance label map (0 background, one integer per object) as stored."""
    try:
        with open_file(path) as handle, PILImage.open(handle) as img:
            return np.asarray(img.convert("L") if img.mode not in ("L", "P", "I", "I;16") else img)
    except FileNotFoundError as err:
        raise ImageDecodeError("missing_file", source_path) from err
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as err:
        raise ImageDecodeError("image_undecodable", f"{source_path}: {err}") from err


class Glas(Source):
    card = DatasetCard(
        name="glas",
        title="GlaS: gland segmentation in colon histology images (MICCAI 2015)",
        modalities=("histopathology",),
        tasks=("prompt_segmentation",),
        licence="research use under the contest terms [uncertain]",
        access="open",
        url="https://warwick.ac.uk/fac/cross_fac/tia/data/glascontest/",
        citation="Sirinukunwattana et al., Gland segmentation in colon histology images: the GlaS challenge "
                 "contest, MedIA 2017",
        root_names=("Warwick QU Dataset (Released 2016_07_08)", "Warwick_QU_Dataset", "GlaS"),
        counts="165 tiles: 85 train, 60 testA + 20 testB (test)",
    )

    def work_units(self) -> list[WorkUnit]:
        if not self.root.is_dir():
            raise SourceError(f"{self.root}: not a folder; point the root at the Warwick QU Dataset folder")
        tiles = sorted((e.name for e in scan(self.root) if e.is_file() and TILE.match(e.name)), key=_order)
        if not tiles:
            raise SourceError(f"{self.root}: no train_<n>.bmp / testA_<n>.bmp tiles; point the root at the "
                              "Warwick QU Dataset folder")
        grades = self._grades()
        units = []
        for split in ("train", "test"):
            if not self.wants_split(split):
                continue
            items = [(name, grades.get(Path(name).stem)) for name in tiles
                     if SPLITS[TILE.match(name)["part"].lower()] == split]
            units.extend(self.chunked_units(split, items))
        return units

    def _grades(self) -> dict[str, dict[str, str | None]]:
        """Grade.csv rows by tile name, every header and value stripped; {} when the file is absent."""
        path = self.root / "Grade.csv"
        if not path.is_file():
            return {}
        text = path.read_bytes().decode("utf-8-sig", errors="replace")
        grades = {}
        for row in csv.DictReader(io.StringIO(text)):
            clean = {(k or "").strip(): (v or "").strip() or None for k, v in row.items()}
            if clean.get("name"):
                grades[clean["name"]] = {"patient_id": clean.get("patient ID"),
                                         "grade_glas": clean.get("grade (GlaS)"),
                                         "grade_sirinukunwattana": clean.get("grade (Sirinukunwattana et al. 2015)")}
        return grades

    def iter_records(self, unit: WorkUnit) -> Iterator[Record | Rejection]:
        for name, grade in unit.items:
            yield self._record(unit.split, name, grade)

    def _record(self, split: str, name: str, grade: dict | None) -> Record | Rejection:
        stem = Path(name).stem
        record_id = f"{self.name}/{split}/{stem}"
        annotation = f"{stem}_anno.bmp"
        if not (self.root / annotation).is_file():
            return self._reject(record_id, split, "annotation_missing", f"no {annotation}", [name])
        paths = [name, annotation]
        try:
            image = decode_file(self.root / name, source_path=name)
            instances = read_instance_map(self.root / annotation, annotation)
        except ImageDecodeError as err:
            return self._reject(record_id, split, err.reason, err.detail, paths)
        if instances.shape[:2] != (image.height, image.width):
            return self._reject(record_id, split, "mask_size_mismatch",
                                f"image {image.width}x{image.height} vs mask {instances.shape[1]}x{instances.shape[0]}",
                                paths)
        mask = np.where(instances > 0, 255, 0).astype(np.uint8)
        grade = grade or {"patient_id": None, "grade_glas": None, "grade_sirinukunwattana": None}
        return Record(
            id=record_id, source=self.name, split=split, modality="histopathology", task_family="interleaved",
            main_task_type="segmentation", sub_task_type="prompt_segmentation",
            message=[{"from": "human", "value": f"{IMAGE_TOKEN}\n{INSTRUCTION}"},
                     {"from": "gpt", "value": self.pick(record_id, RESPONSES)}],
            input_images=[image], output_images=[image_from_array(mask, source_path=annotation)],
            provenance=paths,
            meta={"target": TARGET, "part": TILE.match(name)["part"], **grade,
                  "gland_count": int(len(np.unique(instances[instances > 0]))),
                  "foreground_fraction": round(float(np.count_nonzero(mask)) / mask.size, 4)},
        )

    def _reject(self, record_id: str, split: str, reason: str, detail: str, paths: list[str]) -> Rejection:
        return self.reject(record_id, split, reason, detail, modality="histopathology", task_family="interleaved",
                           provenance=list(paths))


def _order(name: str) -> tuple[str, int]:
    match = TILE.match(name)
    return match["part"].lower(), int(match["number"])
