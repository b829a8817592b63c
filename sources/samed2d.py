"""SA-Med2D-20M: 2D medical images with binary masks, pooled from public segmentation datasets.

Card
- Citation: Ye J, Cheng J, Chen J, et al. "SA-Med2D-20M Dataset: Segment Anything in 2D Medical Imaging
  with 20 Million masks." arXiv:2311.11969, 2023. Code: github.com/OpenGVLab/SAM-Med2D.
- URL: https://huggingface.co/datasets/OpenGVLab/SA-Med2D-20M (gated; also OpenXLab GMAI/SA-Med2D-20M).
- Licence: CC BY-NC-SA 4.0 [uncertain: from the dataset card, and each pooled dataset keeps its own
  terms]. Access: registration (gated download).
- Modality: mixed (CT, MR, PET, x-ray, ultrasound, endoscopy, dermoscopy, fundus, ...), read from the
  name prefix. Counts: SA-Med2D-20M is 4.6M images with 19.7M masks (paper abstract, SAM-Med2D README);
  the public release is the "16M" archive, a subset whose own counts are [L] (not stated with a source).
- Overlaps: it re-slices public datasets (AbdomenCT-1K, BraTS, ISIC, Kvasir, DRIVE, ...): slices may
  duplicate other sources here; the exact-duplicate filter sees them.

Layout (`zip -s 0` the split archive, then unzip)::

    SAMed2Dv1/
      images/ct_00--AbdomenCT1K--Case_00011--x_0040.png
      masks/ct_00--AbdomenCT1K--Case_00011--x_0040--0000_001.png
      SAMed2D_v1.json                   {"images/<img>.png": ["masks/<mask>.png", ...], ...}
      SAMed2D_v1_class_mapping_id.json  {"<dataset>": {"<class name>": <class index>, ...}, ...}

Image name = `<modality>--<dataset>--<case>--<axis>_<slice>.png`; the mask adds `--<class 4d>_<instance 3d>`.
The class index in the mask name is looked up in the mapping of the image's dataset [M: read from
third-party analysis code, not from the authors' docs]. Some users move the two JSON files into
`annotations/` (the micro-sam layout): both places are read.

One interleaved prompt-segmentation record per (image, mask): image + "Please help me segment the
<class>." -> short answer + the mask as 8-bit 0/255. Rejections: a class index absent from the mapping
is `class_unknown`; composite `union_*` classes (unions of other masks of the same image) are
`union_class` unless option `include_union` is true; a mask name that does not extend its image name is
`malformed_name`; an unreadable file its decoder's reason; a mask whose size differs is
`mask_size_mismatch`. Split "unsplit" (the release has none). Ids `samed2d/unsplit/<image stem>/<class_instance>`.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from manifests.records import IMAGE_TOKEN, Record, Rejection
from sources.base import DatasetCard, Source, SourceError, WorkUnit
from sources.io.files import open_file
from sources.io.image import ImageDecodeError, decode_file, image_from_array, load_pixels

INDEX_FILE, MAPPING_FILE = "SAMed2D_v1.json", "SAMed2D_v1_class_mapping_id.json"
MODALITY_PREFIXES = (  # name prefix -> modality; the first match wins
    ("ct_", "ct"), ("mr_", "mri"), ("ultrasound", "ultrasound"), ("dermoscopy", "dermoscopy"),
    ("endoscopy", "endoscopy"), ("fundus", "fundus"), ("histopathology", "histopathology"),
    ("microscopy", "histopathology"), ("oct", "oct"),
)
RESPONSES = (
    "Here is the segmentation mask of the {name}.",
    "Segmentation of the {name} is complete; the mask is shown below.",
    "Sure, this is the {name} segmentation.",
)


def modality_of(prefix: str) -> str:
    """Modality from the name's first field (ct_00, mr_t2w, x_ray, pet_00, ...); x-ray and PET are "other"
    because the body part is not known here."""
    return next((modality for start, modality in MODALITY_PREFIXES if prefix.startswith(start)), "other")


def class_text(name: str) -> str:
    return " ".join(name.replace("_", " ").split())


class Samed2d(Source):
    templates_version = 2  # "Segmentation of the {name} is complete" (v1: "The {name} has been", wrong with plural names)
    card = DatasetCard(
        name="samed2d",
        title="SA-Med2D-20M (2D medical segmentation masks)",
        modalities=("ct", "mri", "ultrasound", "dermoscopy", "endoscopy", "fundus", "other"),
        tasks=("prompt_segmentation",),
        licence="CC BY-NC-SA 4.0 (HF dataset card); pooled datasets keep their own terms",
        access="registration",
        url="https://huggingface.co/datasets/OpenGVLab/SA-Med2D-20M",
        citation="Ye et al., SA-Med2D-20M Dataset: Segment Anything in 2D Medical Imaging with 20 Million masks, "
        "arXiv:2311.11969",
        root_names=("SAMed2Dv1", "SA-Med2D-20M", "sa_med2d"),
        counts="SA-Med2D-20M: 4.6M images, 19.7M masks (paper); the released 16M archive is a subset [L]",
    )
    items_per_unit = 64  # images per unit; each image has several masks

    def _json(self, name: str) -> tuple[object, str]:
        for relative in (name, f"annotations/{name}"):
            if (self.root / relative).is_file():
                with open_file(self.root / relative, "r", encoding="utf-8") as handle:
                    return json.load(handle), relative
        raise SourceError(f"{self.root}: no {name} (or annotations/{name}); point the root at SAMed2Dv1")

    def work_units(self) -> list[WorkUnit]:
        index, index_file = self._json(INDEX_FILE)
        mapping, _ = self._json(MAPPING_FILE)
        if not self.wants_split("unsplit"):
            return []
        items = []
        for image, masks in sorted(index.items()):
            dataset = Path(image).name.split("--")[1] if Path(image).name.count("--") >= 3 else None
            classes = {int(v): k for k, v in mapping.get(dataset, {}).items()} if dataset else {}
            items.append({"image": image, "masks": sorted(masks), "dataset": dataset, "classes": classes,
                          "index_file": index_file})
        return self.chunked_units("unsplit", items)

    def iter_records(self, unit: WorkUnit) -> Iterator[Record | Rejection]:
        for item in unit.items:
            yield from self._records(unit.split, item)

    def _records(self, split: str, item: dict) -> Iterator[Record | Rejection]:
        image_path, stem = item["image"], Path(item["image"]).name.removesuffix(".png")
        fields = stem.split("--")
        modality = modality_of(fields[0])
        image: object = None
        for mask_path in item["masks"]:
            mask_stem = Path(mask_path).name.removesuffix(".png")
            suffix = mask_stem.removeprefix(f"{stem}--")
            record_id = f"{self.name}/{split}/{stem}/{suffix}"
            paths = [item["index_file"], image_path, mask_path]
            parts = suffix.split("_")
            if suffix == mask_stem or len(parts) != 2 or not all(p.isdigit() for p in parts):
                yield self._reject(record_id, split, "malformed_name", f"{mask_path} does not extend {image_path}",
                                   paths, modality)
                continue
            class_name = item["classes"].get(int(parts[0]))
            if class_name is None:
                yield self._reject(record_id, split, "class_unknown",
                                   f"class {int(parts[0])} not in the mapping of {item['dataset']}", paths, modality)
                continue
            if class_name.startswith("union_") and not self.options.get("include_union", False):
                yield self._reject(record_id, split, "union_class", class_name, paths, modality)
                continue
            try:
                if image is None:
                    image = decode_file(self.root / image_path, source_path=image_path)
                mask = load_pixels(decode_file(self.root / mask_path, source_path=mask_path))
            except ImageDecodeError as err:
                yield self._reject(record_id, split, err.reason, err.detail, paths, modality)
                continue
            if mask.ndim == 3:
                mask = mask.max(axis=2)
            if mask.shape != (image.height, image.width):
                yield self._reject(record_id, split, "mask_size_mismatch",
                                   f"image {image.width}x{image.height} vs mask {mask.shape[1]}x{mask.shape[0]}",
                                   paths, modality)
                continue
            name = class_text(class_name.removeprefix("union_"))
            axis_slice = fields[3].split("_") if len(fields) > 3 else []
            yield Record(
                id=record_id,
                source=self.name,
                split=split,
                modality=modality,
                task_family="interleaved",
                main_task_type="segmentation",
                sub_task_type="prompt_segmentation",
                message=[{"from": "human", "value": f"{IMAGE_TOKEN}\nPlease help me segment the {name}."},
                         {"from": "gpt", "value": self.pick(record_id, RESPONSES).format(name=name)}],
                input_images=[image],
                output_images=[image_from_array(np.where(mask > 0, 255, 0).astype(np.uint8), source_path=mask_path)],
                provenance=list(paths),
                meta={"class_name": class_name, "target": name, "class_index": int(parts[0]), "instance": int(parts[1]),
                      "dataset": item["dataset"], "modality_code": fields[0],
                      "case": fields[2] if len(fields) > 2 else None,
                      "axis": axis_slice[0] if len(axis_slice) == 2 else None,
                      "slice": int(axis_slice[1]) if len(axis_slice) == 2 and axis_slice[1].isdigit() else None},
            )

    def _reject(self, record_id: str, split: str, reason: str, detail: str, paths: list[str],
                modality: str) -> Rejection:
        return self.reject(record_id, split, reason, detail, modality=modality, task_family="interleaved",
                           provenance=list(paths))
