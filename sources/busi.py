"""BUSI (Breast Ultrasound Images Dataset): breast ultrasound in three classes with lesion masks.

Card
- Citation: Al-Dhabyani W, Gomaa M, Khaled H, Fahmy A. "Dataset of breast ultrasound images." Data in
  Brief 28:104863 (2020). doi:10.1016/j.dib.2019.104863
- URL: https://scholar.cu.edu.eg/?q=afahmy/pages/dataset (Kaggle mirror
  `aryashah2k/breast-ultrasound-images-dataset`).
- Licence: CC0 as stated on the Kaggle mirror [L]; the paper asks for citation. Access: open download.
- Redistribution: not carried by `unimed release` (CC0 is stated only by a Kaggle mirror; unknown means no).
- Modality: breast ultrasound (LOGIQ E9), PNG about 500x500 (varies), greyscale content often stored as
  RGB; women aged 25-75, Baheya Hospital, Cairo, 2018.
- Counts: 780 images: benign 437, malignant 210, normal 133; one mask per image, some with extra lesion
  masks (`_mask_1`, `_mask_2`).
- Overlaps / caveats: a few images are reported duplicated within and across classes, and some carry
  on-screen annotations; dedup by pixel hash.

Layout::

    Dataset_BUSI_with_GT/
      benign/    "benign (1).png"  "benign (1)_mask.png"  "benign (4)_mask_1.png" ...
      malignant/ "malignant (1).png" "malignant (1)_mask.png"
      normal/    "normal (1).png"  "normal (1)_mask.png"        (all-zero masks)

No official split: every image is `unsplit`. Each image gives an I2T caption and a T2I sample
(`sources.shapes.captions`). Masks are not samples: each image lists its masks in `meta.masks` (the
`_mask` file first, then `_mask_1`, `_mask_2`, ...; merge them by OR for one lesion mask), empty when it
has none; a mask without its image is ignored. Quirks handled here: spaces and parentheses in names (kept
in ids and paths; the shard key sanitises them); every name containing `_mask` is excluded from the
image listing; an RGB image whose three channels are equal is stored as greyscale (lossless); hidden
files are skipped; a folder outside the three classes is `label_unknown`.

Options: `segmentation: true` adds one interleaved prompt-segmentation record per image
(`busi/unsplit/<stem>/segmentation`, target "breast lesion"; `sources.shapes.masks`): the image's masks
merged by OR into one 0/255 mask (`meta.mask_union` says when there were several); an image without a
mask file is `annotation_missing`; a normal image's all-zero mask is left to the task builder
(`mask_empty`). `captions: false` drops the caption and T2I records (a stage-3 recipe wants masks only).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from manifests.records import Image, Record, Rejection
from sources.base import DatasetCard, Source, SourceError, WorkUnit
from sources.io.image import ImageDecodeError, decode_file, image_from_array, load_pixels
from sources.shapes.captions import LabelTemplates, label_records
from sources.shapes.masks import mask_record

MODALITY = "ultrasound"
TARGET = "breast lesion"
MASK_NAME = re.compile(r"(?P<image>.+)_mask(?:_(?P<index>\d+))?")
TEMPLATES = LabelTemplates(
    labels={
        "benign": "a benign breast lesion",
        "malignant": "a malignant breast lesion",
        "normal": "normal breast tissue",
    },
    instructions=(
        "What does this breast ultrasound image show?",
        "Describe this breast ultrasound image.",
        "Is the breast tissue in this ultrasound image normal, or does it show a benign or malignant lesion?",
    ),
    captions=(
        "Breast ultrasound image showing {label}.",
        "Ultrasound of the breast showing {label}.",
        "{Label} on breast ultrasound.",
    ),
    prompts=(
        "Generate a breast ultrasound image showing {label}.",
        "A breast ultrasound image with {label}.",
        "Create an ultrasound image of the breast showing {label}.",
    ),
)


def _grey_if_equal_channels(image: Image) -> Image:
    """BUSI stores greyscale scans as RGB; three equal channels become one, losslessly."""
    if image.channels != 3 or image.encoded is not None:
        return image
    pixels = load_pixels(image)
    if np.array_equal(pixels[..., 0], pixels[..., 1]) and np.array_equal(pixels[..., 0], pixels[..., 2]):
        return image_from_array(np.ascontiguousarray(pixels[..., 0]), source_path=image.source_path)
    return image


class Busi(Source):
    templates_version = 2  # caption "Ultrasound of the breast showing {label}." (v1: "with normal breast tissue")
    card = DatasetCard(
        name="busi",
        title="BUSI (Breast Ultrasound Images Dataset)",
        modalities=(MODALITY,),
        tasks=("classification_caption", "text_to_image", "prompt_segmentation"),
        licence="CC0 (Kaggle mirror) [not re-checked]; cite Al-Dhabyani et al. 2020",
        access="open",
        url="https://scholar.cu.edu.eg/?q=afahmy/pages/dataset",
        citation="Al-Dhabyani et al., Dataset of breast ultrasound images, Data in Brief 2020",
        root_names=("Dataset_BUSI_with_GT", "BUSI", "Dataset_BUSI"),
        counts="780 images (437 benign / 210 malignant / 133 normal)",
    )

    def work_units(self) -> list[WorkUnit]:
        folders = sorted(p for p in self.root.iterdir() if p.is_dir() and not p.name.startswith(".")) \
            if self.root.is_dir() else []
        if not folders:
            raise SourceError(f"{self.root}: no class folders; point the root at Dataset_BUSI_with_GT/")
        if not self.wants_split("unsplit"):
            return []
        items = []
        for folder in folders:
            files = sorted(p for p in folder.iterdir()
                           if p.is_file() and p.suffix.lower() == ".png" and not p.name.startswith("."))
            masks: dict[str, list[tuple[int, str]]] = {}
            for path in files:
                match = MASK_NAME.fullmatch(path.stem)
                if match:
                    masks.setdefault(match["image"], []).append((int(match["index"] or 0), self.relative(path)))
            items.extend({"image": self.relative(path), "masks": [mask for _, mask in sorted(masks.get(path.stem, []))]}
                         for path in files if "_mask" not in path.name)
        return self.chunked_units("unsplit", items)

    def iter_records(self, unit: WorkUnit) -> Iterator[Record | Rejection]:
        for item in unit.items:
            path = Path(item["image"])
            try:
                image = _grey_if_equal_channels(decode_file(self.root / path, source_path=item["image"]))
            except ImageDecodeError as err:
                image = err
            stem = f"{self.name}/{unit.split}/{path.stem}"
            if self.options.get("captions", True):
                yield from label_records(self, stem, unit.split, MODALITY, image, path.parent.name, TEMPLATES,
                                         provenance=[item["image"]], meta={"masks": list(item["masks"])})
            if self.options.get("segmentation", False):
                yield mask_record(self, f"{stem}/segmentation", unit.split, MODALITY, image, item["masks"], TARGET,
                                  provenance=[item["image"]], meta={"label": path.parent.name})
