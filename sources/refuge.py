"""REFUGE (Retinal Fundus Glaucoma Challenge, MICCAI 2018): fundus photographs with optic disc and cup masks.

Card
- Citation: Orlando JI, Fu H, Breda JB, et al. "REFUGE Challenge: A unified framework for evaluating
  automated methods for glaucoma assessment from fundus photographs." Medical Image Analysis 59:101570, 2020.
- URL: https://refuge.grand-challenge.org (registration; also Baidu AI Studio).
- Licence: challenge data terms, research use [uncertain]. Access: registration.
- Modality: fundus (Zeiss Visucam 500 2124x2056 for training; Canon CR-2 1634x1634 for validation/test), JPG.
- Counts: 1,200 images: 400 train (40 glaucoma / 360 not), 400 validation, 400 test.
- Overlaps: REFUGE2 (2020) re-releases these 1,200 images with its own additions [uncertain].

Layout (see docs/sources/refuge.md; zips may unpack one folder deeper, e.g.
`REFUGE-Validation400/REFUGE-Validation400/`, so files are found by searching each folder)::

    REFUGE/
      Training400/{Glaucoma,Non-Glaucoma}/g0001.jpg n0001.jpg
      Annotation-Training400/Disc_Cup_Masks/{Glaucoma,Non-Glaucoma}/g0001.bmp
      REFUGE-Validation400/V0001.jpg
      REFUGE-Validation400-GT/Disc_Cup_Masks/V0001.bmp   Fovea_locations.xlsx
      Test400/T0001.jpg
      REFUGE-Test-GT/Disc_Cup_Masks/{G,N}/T0001.bmp      Glaucoma_label_and_Fovea_location.xlsx

Masks are 8-bit BMP: 0 = optic cup, 128 = disc rim, 255 = background; the disc includes the cup. Two
interleaved prompt-segmentation records per image: `<id>/optic_disc` (values <= 150) and `<id>/optic_cup`
(values <= 100), each image + "Please help me segment the optic disc/cup." -> short answer + 0/255 mask.
Glaucoma status comes from the folder (Glaucoma/Non-Glaucoma for training, G/N of the test masks); the
validation set has no label in these folders -> None. An image without a mask is `annotation_missing`
(for both ids); a size mismatch is `mask_size_mismatch`; an empty target is `mask_empty`.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
from PIL import Image as PILImage
from PIL import UnidentifiedImageError

from manifests.records import IMAGE_TOKEN, Record, Rejection
from sources.base import DatasetCard, Source, SourceError, WorkUnit
from sources.io.files import open_file, walk
from sources.io.image import ImageDecodeError, decode_file, image_from_array

# split -> (image folder, mask folder); each may be nested once more inside a same-named folder.
SETS = {
    "train": ("Training400", "Annotation-Training400/Disc_Cup_Masks"),
    "validate": ("REFUGE-Validation400", "REFUGE-Validation400-GT/Disc_Cup_Masks"),
    "test": ("Test400", "REFUGE-Test-GT/Disc_Cup_Masks"),
}
TARGETS = {"optic_disc": ("optic disc", 150), "optic_cup": ("optic cup", 100)}  # id suffix -> (words, max value)
GLAUCOMA_FOLDERS = {"glaucoma": True, "non-glaucoma": False, "g": True, "n": False}
RESPONSES = (
    "Here is the segmentation mask of the {target}.",
    "The {target} has been segmented; the mask is shown below.",
    "Sure, this is the {target} segmentation of the fundus image.",
)


def _files(folder: Path, suffix: str) -> dict[str, Path]:
    """Every `*<suffix>` under a folder, by stem (walks the class and doubled sub-folders)."""
    found = {}
    for current, _, names in walk(folder):  # top down, names sorted
        for name in names:
            if name.lower().endswith(suffix) and not name.startswith("."):
                found.setdefault(Path(name).stem, current / name)
    return found


def read_grey(path: Path, source_path: str) -> np.ndarray:
    try:
        with open_file(path) as handle, PILImage.open(handle) as img:
            return np.asarray(img.convert("L"))
    except FileNotFoundError as err:
        raise ImageDecodeError("missing_file", source_path) from err
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as err:
        raise ImageDecodeError("image_undecodable", f"{source_path}: {err}") from err


class Refuge(Source):
    card = DatasetCard(
        name="refuge",
        title="REFUGE: retinal fundus glaucoma challenge (optic disc and cup)",
        modalities=("fundus",),
        tasks=("prompt_segmentation",),
        licence="challenge data terms, research use [uncertain]",
        access="registration",
        url="https://refuge.grand-challenge.org",
        citation="Orlando et al., REFUGE Challenge: a unified framework for evaluating automated methods for "
                 "glaucoma assessment from fundus photographs, MedIA 2020",
        root_names=("REFUGE", "Refuge", "refuge"),
        counts="1,200 images (400 train, 400 validation, 400 test), 2 targets each",
    )

    def work_units(self) -> list[WorkUnit]:
        if not any((self.root / images).is_dir() for images, _ in SETS.values()):
            raise SourceError(f"{self.root}: no Training400/, REFUGE-Validation400/ or Test400/; "
                              "point the root at the REFUGE folder")
        units = []
        for split, (images, masks) in SETS.items():
            if not self.wants_split(split) or not (self.root / images).is_dir():
                continue
            mask_files = _files(self.root / masks, ".bmp") if (self.root / masks).is_dir() else {}
            items = []
            for stem, path in sorted(_files(self.root / images, ".jpg").items()):
                mask = mask_files.get(stem)
                items.append((stem, self.relative(path), self.relative(mask) if mask else None))
            units.extend(self.chunked_units(split, items))
        return units

    def iter_records(self, unit: WorkUnit) -> Iterator[Record | Rejection]:
        for stem, image_path, mask_path in unit.items:
            yield from self._records(unit.split, stem, image_path, mask_path)

    def _records(self, split: str, stem: str, image_path: str, mask_path: str | None):
        base = f"{self.name}/{split}/{stem}"
        if mask_path is None:
            for suffix in TARGETS:
                yield self._reject(f"{base}/{suffix}", split, "annotation_missing", f"no mask for {stem}",
                                   [image_path])
            return
        paths = [image_path, mask_path]
        try:
            image = decode_file(self.root / image_path, source_path=image_path)
            grey = read_grey(self.root / mask_path, mask_path)
        except ImageDecodeError as err:
            for suffix in TARGETS:
                yield self._reject(f"{base}/{suffix}", split, err.reason, err.detail, paths)
            return
        glaucoma = self._glaucoma(image_path, mask_path)
        for suffix, (target, ceiling) in TARGETS.items():
            record_id = f"{base}/{suffix}"
            if grey.shape != (image.height, image.width):
                yield self._reject(record_id, split, "mask_size_mismatch",
                                   f"image {image.width}x{image.height} vs mask {grey.shape[1]}x{grey.shape[0]}",
                                   paths)
                continue
            mask = np.where(grey <= ceiling, 255, 0).astype(np.uint8)
            if not mask.any():
                yield self._reject(record_id, split, "mask_empty", f"no {target} pixel in {mask_path}", paths)
                continue
            yield Record(
                id=record_id, source=self.name, split=split, modality="fundus", task_family="interleaved",
                main_task_type="segmentation", sub_task_type="prompt_segmentation",
                message=[{"from": "human", "value": f"{IMAGE_TOKEN}\nPlease help me segment the {target}."},
                         {"from": "gpt", "value": self.pick(record_id, RESPONSES).format(target=target)}],
                input_images=[image], output_images=[image_from_array(mask, source_path=mask_path)],
                provenance=list(paths),
                meta={"target": target, "glaucoma": glaucoma,
                      "foreground_fraction": round(float(np.count_nonzero(mask)) / mask.size, 4)},
            )

    @staticmethod
    def _glaucoma(image_path: str, mask_path: str) -> bool | None:
        """Glaucoma status from the class folder of the image or the mask; None when neither has one."""
        for path in (image_path, mask_path):
            folder = Path(path).parent.name.lower()
            if folder in GLAUCOMA_FOLDERS:
                return GLAUCOMA_FOLDERS[folder]
        return None

    def _reject(self, record_id: str, split: str, reason: str, detail: str, paths: list[str]) -> Rejection:
        return self.reject(record_id, split, reason, detail, modality="fundus", task_family="interleaved",
                           provenance=list(paths))
