"""CVC-ClinicDB (CVC-612): colonoscopy frames with polyp masks.

Card
- Citation: Bernal J, Sánchez FJ, Fernández-Esparrach G, Gil D, Rodríguez C, Vilariño F. "WM-DOVA maps
  for accurate polyp highlighting in colonoscopy: Validation vs. saliency maps from physicians."
  Computerized Medical Imaging and Graphics 43:99-111, 2015.
- URL: https://polyp.grand-challenge.org/CVCClinicDB/ (also mirrored on Kaggle with TIF and PNG copies).
- Licence: research use with citation; original images property of Hospital Clinic Barcelona, ground truth
  of the Computer Vision Center [uncertain: no licence file in the download]. Access: open.
- Modality: endoscopy (white-light colonoscopy), 384x288 RGB frames, one binary polyp mask per frame.
- Counts: 612 frames; from 29 sequences per openmedlab Awesome-Medical-Dataset (CVC-ClinicDB.md), 31
  sequences / 23 patients in earlier notes here without a source [L]; no official train/test split ->
  split "unsplit".
- Overlaps: none known with Kvasir-SEG; the sequence of a frame is not in the download [uncertain].

Layouts handled (see docs/sources/cvc_clinicdb.md)::

    CVC-ClinicDB/Original/1.tif ... 612.tif        CVC-ClinicDB/Ground Truth/1.tif ... 612.tif   (original)
    CVC-ClinicDB/TIF/{Original,Ground Truth}/1.tif  CVC-ClinicDB/PNG/{Original,Ground Truth}/1.png (Kaggle)

When both TIF/ and PNG/ copies exist only TIF is read (they hold the same frames). One interleaved
prompt-segmentation record per frame: frame + "Please help me segment the polyp." -> a short answer + the
mask as 8-bit 0/255 (mask files are read through PIL; RGB or palette masks are reduced to grey, > 127 is
polyp). A frame whose mask is missing is `annotation_missing`; sizes that differ are `mask_size_mismatch`;
an all-zero mask is `mask_empty`; an unreadable file is its decoder's reason.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np

from manifests.records import IMAGE_TOKEN, Record, Rejection
from sources.base import DatasetCard, Source, SourceError, WorkUnit
from sources.io.files import scan
from sources.io.image import ImageDecodeError, decode_binary_mask, decode_file, image_from_array

IMAGE_DIR, MASK_DIR = "Original", "Ground Truth"
COPIES = ("", "TIF", "PNG")  # where Original/ may sit, in order of preference
SUFFIXES = (".tif", ".tiff", ".png", ".bmp", ".jpg")
TARGET = "polyp"
INSTRUCTION = "Please help me segment the polyp."
RESPONSES = (
    "Here is the segmentation mask of the polyp.",
    "The polyp has been segmented; the mask is shown below.",
    "Sure, this is the polyp segmentation of the colonoscopy frame.",
)


class CvcClinicDb(Source):
    card = DatasetCard(
        name="cvc_clinicdb",
        title="CVC-ClinicDB: colonoscopy frames with polyp masks",
        modalities=("endoscopy",),
        tasks=("prompt_segmentation",),
        licence="research use with citation [uncertain]",
        access="open",
        url="https://polyp.grand-challenge.org/CVCClinicDB/",
        citation="Bernal et al., WM-DOVA maps for accurate polyp highlighting in colonoscopy, CMIG 2015",
        root_names=("CVC-ClinicDB", "CVC-612", "cvcclinicdb"),
        counts="612 frames (29 sequences per openmedlab; 31 unsourced [L]), 384x288, no official split",
    )

    def _copy(self) -> str | None:
        """The folder (relative to the root, "" for the root itself) that holds Original/."""
        return next((c for c in COPIES if (self.root / c / IMAGE_DIR).is_dir()), None)

    def work_units(self) -> list[WorkUnit]:
        copy = self._copy()
        if copy is None:
            raise SourceError(f"{self.root}: no Original/ (or TIF/Original/, PNG/Original/); "
                              "point the root at the CVC-ClinicDB download")
        if not self.wants_split("unsplit"):
            return []
        folder = self.root / copy / IMAGE_DIR
        names = sorted((e.name for e in scan(folder)
                        if e.is_file() and e.name.lower().endswith(SUFFIXES)), key=_frame_order)
        return self.chunked_units("unsplit", [(copy, name) for name in names])

    def iter_records(self, unit: WorkUnit) -> Iterator[Record | Rejection]:
        for copy, name in unit.items:
            yield self._record(unit.split, copy, name)

    def _record(self, split: str, copy: str, name: str) -> Record | Rejection:
        stem = Path(name).stem
        record_id = f"{self.name}/{split}/{stem}"
        prefix = f"{copy}/" if copy else ""
        image_path, mask_path = f"{prefix}{IMAGE_DIR}/{name}", f"{prefix}{MASK_DIR}/{name}"
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
        if not mask.any():
            return self._reject(record_id, split, "mask_empty", f"{mask_path} has no polyp pixel", paths)
        return Record(
            id=record_id, source=self.name, split=split, modality="endoscopy", task_family="interleaved",
            main_task_type="segmentation", sub_task_type="prompt_segmentation",
            message=[{"from": "human", "value": f"{IMAGE_TOKEN}\n{INSTRUCTION}"},
                     {"from": "gpt", "value": self.pick(record_id, RESPONSES)}],
            input_images=[image], output_images=[image_from_array(mask, source_path=mask_path)],
            provenance=paths,
            meta={"target": TARGET, "frame": stem,
                  "foreground_fraction": round(float(np.count_nonzero(mask)) / mask.size, 4)},
        )

    def _reject(self, record_id: str, split: str, reason: str, detail: str, paths: list[str]) -> Rejection:
        return self.reject(record_id, split, reason, detail, modality="endoscopy", task_family="interleaved",
                           provenance=list(paths))


def _frame_order(name: str) -> tuple[int, str]:
    """Numeric frame order (1, 2, ..., 10), names that are not numbers after them."""
    stem = Path(name).stem
    return (int(stem), "") if stem.isdigit() else (1 << 30, stem)
