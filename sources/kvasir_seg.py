"""Kvasir-SEG: colonoscopy polyp images with pixel masks and bounding boxes.

Card
- Citation: Jha D, Smedsrud PH, Riegler MA, et al. "Kvasir-SEG: A Segmented Polyp Dataset." MMM 2020,
  LNCS 11962. doi:10.1007/978-3-030-37734-2_37
- URL: https://datasets.simula.no/kvasir-seg/
- Licence: free for research and education with the citation above [M]. Access: open download.
- Modality: GI endoscopy (colonoscopy), RGB JPEG, 332x487 up to 1920x1072.
- Counts: 1,000 polyp images, 1,000 masks, one bounding-box entry per image.
- Overlaps: the images are Kvasir v2's `polyps` class (13 replaced), and HyperKvasir's segmented images;
  deduplicate by pixel hash against `kvasir`.

Layout::

    Kvasir-SEG/
      images/cju0qkwl35piu0993l0dewei2.jpg
      masks/cju0qkwl35piu0993l0dewei2.jpg     same stem; lossy JPEG, so not exactly {0, 255}
      kavsir_bboxes.json (sic)                {stem: {"height", "width", "bbox": [{"label": "polyp",
                                                      "xmin", "ymin", "xmax", "ymax"}]}}

No official split: every image is `unsplit`. Each image gives an I2T caption and a T2I sample whose label
is "polyp" (`sources.shapes.captions`, Kvasir's templates). The mask is paired in `meta` for the later
segmentation task builder, never a sample of its own: `meta.mask` (path or None), `meta.mask_threshold`
(a mask pixel is foreground when > 127: JPEG ringing makes the values spread around 0 and 255),
`meta.mask_foreground_fraction` (after thresholding), `meta.mask_error` (why the mask cannot be used:
`missing_file`, `image_undecodable`, `mask_size_mismatch`; None when it can) and `meta.bboxes` (the
JSON's boxes as given, None when the image has no entry). Quirks handled here: the misspelt JSON name
(and the corrected spelling); masks stored as RGB or greyscale JPEG; a mask without its image is ignored
(it has no sample); hidden files are skipped.

Options: `segmentation: true` adds one interleaved prompt-segmentation record per image
(`kvasir_seg/unsplit/<stem>/segmentation`, target "polyp"; `sources.shapes.masks`) whose output is the JPEG
mask thresholded at `mask_threshold` to 0/255; an image without a mask is `annotation_missing`, an
unreadable mask its decoder's reason, differing sizes `mask_size_mismatch`. `captions: false` drops the
caption and T2I records (a stage-3 recipe wants masks only).
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from manifests.records import Record, Rejection
from sources.base import DatasetCard, Source, SourceError, WorkUnit
from sources.io.lfs import check_lfs_pointer
from sources.io.image import ImageDecodeError, decode_file, load_pixels
from sources.kvasir import TEMPLATES as KVASIR_TEMPLATES
from sources.kvasir import image_files
from sources.shapes.captions import label_records
from sources.shapes.masks import mask_record

MODALITY = "endoscopy"
LABEL = "polyp"
MASK_THRESHOLD = 127
BBOX_FILES = ("kavsir_bboxes.json", "kvasir_bboxes.json")
TEMPLATES = dataclasses.replace(KVASIR_TEMPLATES, labels={LABEL: "a polyp"})


class KvasirSeg(Source):
    card = DatasetCard(
        name="kvasir_seg",
        title="Kvasir-SEG (polyp segmentation)",
        modalities=(MODALITY,),
        tasks=("classification_caption", "text_to_image", "prompt_segmentation"),
        licence="research and education use with citation (simula.no terms)",
        access="open",
        url="https://datasets.simula.no/kvasir-seg/",
        citation="Jha et al., Kvasir-SEG: A Segmented Polyp Dataset, MMM 2020",
        root_names=("Kvasir-SEG", "kvasir-seg"),
        counts="1,000 polyp images with masks and boxes",
    )

    def _bboxes(self) -> tuple[str | None, dict]:
        for name in BBOX_FILES:
            path = self.root / name
            if path.is_file():
                check_lfs_pointer(path)
                try:
                    boxes = json.loads(path.read_text(encoding="utf-8"))
                except (ValueError, UnicodeDecodeError) as err:
                    raise SourceError(f"{path}: not valid JSON ({err}); re-download Kvasir-SEG") from err
                return name, boxes if isinstance(boxes, dict) else {}
        return None, {}

    def work_units(self) -> list[WorkUnit]:
        if not (self.root / "images").is_dir():
            raise SourceError(f"{self.root}: no images/ folder; point the root at the Kvasir-SEG download")
        if not self.wants_split("unsplit"):
            return []
        bbox_file, boxes = self._bboxes()
        items = []
        for path in image_files(self.root / "images"):
            entry = boxes.get(path.stem)
            bbox = entry.get("bbox") if isinstance(entry, dict) else None
            items.append({"image": self.relative(path), "bbox_file": bbox_file,
                          "bboxes": [box for box in bbox if isinstance(box, dict)] if isinstance(bbox, list) else None})
        return self.chunked_units("unsplit", items)

    def iter_records(self, unit: WorkUnit) -> Iterator[Record | Rejection]:
        for item in unit.items:
            yield from self._records(item, unit.split)

    def _records(self, item: dict, split: str) -> list[Record | Rejection]:
        image_path = item["image"]
        stem = Path(image_path).stem
        try:
            image = decode_file(self.root / image_path, source_path=image_path)
        except ImageDecodeError as err:
            image = err
        mask_path = f"masks/{Path(image_path).name}"
        meta = {"mask": mask_path, "mask_threshold": MASK_THRESHOLD, "mask_foreground_fraction": None,
                "mask_error": None, "bboxes": item["bboxes"]}
        if not isinstance(image, ImageDecodeError):
            meta.update(self._mask_facts(mask_path, (image.height, image.width)))
        provenance = [image_path] + ([item["bbox_file"]] if item["bbox_file"] else [])
        out: list[Record | Rejection] = []
        if self.options.get("captions", True):
            out.extend(label_records(self, f"{self.name}/{split}/{stem}", split, MODALITY, image, LABEL, TEMPLATES,
                                     provenance=provenance, meta=meta))
        if self.options.get("segmentation", False):
            masks = [mask_path] if (self.root / mask_path).is_file() else []
            out.append(mask_record(self, f"{self.name}/{split}/{stem}/segmentation", split, MODALITY, image, masks,
                                   LABEL, threshold=MASK_THRESHOLD, provenance=[image_path],
                                   meta={"bboxes": item["bboxes"]}))
        return out

    def _mask_facts(self, mask_path: str, shape: tuple[int, int]) -> dict:
        try:
            pixels = load_pixels(decode_file(self.root / mask_path, source_path=mask_path))
        except ImageDecodeError as err:
            return {"mask": None if err.reason == "missing_file" else mask_path, "mask_error": err.reason}
        if pixels.shape[:2] != shape:
            return {"mask_error": "mask_size_mismatch"}
        grey = pixels.max(axis=2) if pixels.ndim == 3 else pixels
        return {"mask_foreground_fraction": round(float(np.mean(grey > MASK_THRESHOLD)), 6)}
