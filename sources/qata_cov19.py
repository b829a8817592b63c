"""QaTa-COV19: chest X-rays of COVID-19 patients with pixel-level infection masks (Qatar University /
Tampere University).

Card
- Citation: Degerli A, Ahishali M, Yamac M, Kiranyaz S, Chowdhury MEH, Hameed K, Hamid T, Mazhar R,
  Gabbouj M. "COVID-19 infection map generation and detection from chest X-ray images." Health Information
  Science and Systems 9:15, 2021. Text prompts (not read here) come from Li Z et al. "LViT: Language meets
  Vision Transformer in medical image segmentation", IEEE TMI 2023.
- URL: https://www.kaggle.com/datasets/aysendegerli/qatacov19-dataset
- Licence: CC BY-SA 4.0 as listed on Kaggle [uncertain]. Access: open.
- Modality: chest X-ray (PNG, 8-bit greyscale, 224x224 in v2 [uncertain]).
- Counts: v2: 9,258 COVID-19 CXRs with ground-truth masks: 7,145 train, 2,113 test [uncertain: from memory of
  the LViT paper]; v1 also had ~12,500 control images without masks.
- Overlaps: images are gathered from public COVID-19 collections (BIMCV, GitHub covid-chestxray-dataset,
  ...) and may recur in other CXR sources.

Layout (see docs/sources/qata_cov19.md)::

    QaTa-COV19/QaTa-COV19-v2/
      Train Set/Images/covid_1.png      Train Set/Ground-truths/mask_covid_1.png
      Test Set/Images/covid_1.png       Test Set/Ground-truths/mask_covid_1.png

The root may be `QaTa-COV19/` or `QaTa-COV19-v2/`. The mask of `<name>.png` is `mask_<name>.png` (the
same name with a `mask_` prefix). One interleaved prompt-segmentation record per image: CXR + "Please help
me segment the COVID-19 infected regions." -> short answer + the mask as 8-bit 0/255 (> 127). Ids
`qata_cov19/<train|test>/<stem>`: stems repeat across the two sets, the split keeps ids unique. An image
without its mask is `annotation_missing`; a mask without any infected pixel is kept (an infection-free
lung is a valid answer) with foreground fraction 0.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np

from manifests.records import IMAGE_TOKEN, Record, Rejection
from sources.base import DatasetCard, Source, SourceError, WorkUnit
from sources.io.files import scan
from sources.io.image import ImageDecodeError, decode_binary_mask, decode_file, image_from_array

VERSION_DIR = "QaTa-COV19-v2"
SETS = {"train": "Train Set", "test": "Test Set"}
IMAGE_DIR, MASK_DIR, MASK_PREFIX = "Images", "Ground-truths", "mask_"
TARGET = "COVID-19 infected regions"
INSTRUCTION = f"Please help me segment the {TARGET}."
RESPONSES = (
    "Here is the segmentation mask of the COVID-19 infected regions.",
    "The infected lung regions have been segmented; the mask is shown below.",
    "Sure, this is the COVID-19 infection segmentation of the chest X-ray.",
)


class QataCov19(Source):
    card = DatasetCard(
        name="qata_cov19",
        title="QaTa-COV19: COVID-19 chest X-rays with infection masks",
        modalities=("chest_xray",),
        tasks=("prompt_segmentation",),
        licence="CC BY-SA 4.0 (Kaggle listing) [uncertain]",
        access="open",
        url="https://www.kaggle.com/datasets/aysendegerli/qatacov19-dataset",
        citation="Degerli et al., COVID-19 infection map generation and detection from chest X-ray images, "
                 "Health Inf Sci Syst 2021",
        root_names=("QaTa-COV19", "QaTa-COV19-v2"),
        counts="9,258 CXRs with masks (7,145 train, 2,113 test) [uncertain]",
    )

    def _base(self) -> str:
        for base in ("", VERSION_DIR):
            if any((self.root / base / folder / IMAGE_DIR).is_dir() for folder in SETS.values()):
                return base
        raise SourceError(f"{self.root}: no 'Train Set/Images' or 'Test Set/Images' (also looked in "
                          f"{VERSION_DIR}/); point the root at the QaTa-COV19 download")

    def work_units(self) -> list[WorkUnit]:
        base = self._base()
        prefix = f"{base}/" if base else ""
        units = []
        for split, folder in SETS.items():
            images = self.root / prefix / folder / IMAGE_DIR
            if not self.wants_split(split) or not images.is_dir():
                continue
            names = sorted(e.name for e in scan(images) if e.is_file() and e.name.lower().endswith(".png"))
            units.extend(self.chunked_units(split, [(f"{prefix}{folder}", name) for name in names]))
        return units

    def iter_records(self, unit: WorkUnit) -> Iterator[Record | Rejection]:
        for folder, name in unit.items:
            yield self._record(unit.split, folder, name)

    def _record(self, split: str, folder: str, name: str) -> Record | Rejection:
        record_id = f"{self.name}/{split}/{Path(name).stem}"
        image_path = f"{folder}/{IMAGE_DIR}/{name}"
        mask_path = f"{folder}/{MASK_DIR}/{MASK_PREFIX}{name}"
        if not (self.root / mask_path).is_file():
            return self._reject(record_id, split, "annotation_missing", f"no {mask_path}", [image_path])
        paths = [image_path, mask_path]
        try:
            image = decode_file(self.root / image_path, source_path=image_path)
            mask = decode_binary_mask(self.root / mask_path, mask_path)
        except ImageDecodeError as err:
            return self._reject(record_id, split, err.reason, err.detail, paths)
        if mask.shape != (image.height, image.width):
            return self._reject(record_id, split, "mask_size_mismatch",
                                f"image {image.width}x{image.height} vs mask {mask.shape[1]}x{mask.shape[0]}", paths)
        return Record(
            id=record_id, source=self.name, split=split, modality="chest_xray", task_family="interleaved",
            main_task_type="segmentation", sub_task_type="prompt_segmentation",
            message=[{"from": "human", "value": f"{IMAGE_TOKEN}\n{INSTRUCTION}"},
                     {"from": "gpt", "value": self.pick(record_id, RESPONSES)}],
            input_images=[image], output_images=[image_from_array(mask, source_path=mask_path)],
            provenance=paths,
            meta={"target": TARGET, "foreground_fraction": round(float(np.count_nonzero(mask)) / mask.size, 4)},
        )

    def _reject(self, record_id: str, split: str, reason: str, detail: str, paths: list[str]) -> Rejection:
        return self.reject(record_id, split, reason, detail, modality="chest_xray", task_family="interleaved",
                           provenance=list(paths))
