"""MedPix 2.0: CT and MR images of NLM MedPix teaching cases with their per-image captions.

Card
- Citation: Siragusa I, Contino S, La Ciura M, Alicata R, Pirrone R. "MedPix 2.0: A Comprehensive
  Multimodal Biomedical Data Set for Advanced AI Applications with Retrieval Augmented Generation and
  Knowledge Graphs." Data Science and Engineering (2025). doi:10.1007/s41019-025-00297-8
- URL: https://github.com/CHILab1/MedPix-2.0 (images from NLM MedPix via Open-i; MedPix itself has no
  bulk download).
- Licence: as stated in the repository (MedPix content is NLM-hosted teaching material; check the repo
  before redistribution). Access: open download.
- Modality: CT ("CT" / case field "TAC") and MRI ("MR") only, 2D PNG slices (Open-i 512-px renders).
- Counts [H] (the official files, checked for issue #12): 671 clinical cases, 2,050 images
  (`Descriptions.json` and `images_overview.csv` rows); case-level splits in `splitted_dataset/uid_list.json`
  (train 535 = train_1 267 + train_2 268, dev 67, test 69 cases), i.e. 1,653 / 197 / 200 image rows in
  `descriptions_{train,dev,test}.jsonl`.
- Overlaps: MedPix images also appear in ROCO/PMC-derived sets and in VQA-RAD / SLAKE-era MedPix-based
  VQA sets: deduplicate by pixel hash.

Layout (repository folder `MedPix-2-0/`, images from the release)::

    MedPix-2-0/
      images/MPX1009_synpic46283.png
      images_overview.csv             Type ("TAC"/"MRI"), U_id, ID_Image, Img_Large (Open-i URL), URL_Article_image
      Case_topic.json  Descriptions.json   (the repository root copy is named Description.json)
      splitted_dataset/ data_{train,train_1,train_2,dev,test}.jsonl
                        descriptions_{train,train_1,train_2,dev,test}.jsonl   uid_list.json

A description line: `Type` ("CT"/"MR"), `U_id` ("MPX1031"), `image` ("MPX1031_synpic20041", no
extension), `Description` {ACR Codes, Age ("74"), Caption, Figure Part (null/"2"/"A"), Modality
("CT - noncontrast"), Plane ("Axial"), Sex ("female"/"N/A")}, `Location`, `Location Category`.

Each image gives one I2T captioning sample (human = image + an instruction, gpt = the caption).
Quirks handled here: root at `MedPix-2-0/` or at the repository clone holding it; train_1/train_2
partition train, so they are read only when `descriptions_train.jsonl` is missing; without
`splitted_dataset/` the whole `Descriptions.json`/`Description.json` is read as `unsplit`; "N/A" and
nulls become None; captions lose surrounding whitespace, leading '>' quote marks and repeated spaces;
an empty or "N/A" caption is `caption_empty`; a missing PNG is a `missing_file` rejection; a line that is
not JSON is `malformed_json`, one without `image` is `malformed_row`.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from functools import lru_cache
from pathlib import Path

from manifests.records import IMAGE_TOKEN, Record, Rejection
from sources.base import DatasetCard, Source, SourceError, WorkUnit
from sources.io.files import mtime_ns, open_file
from sources.io.lfs import check_lfs_pointer
from sources.io.image import ImageDecodeError, decode_file

SPLITS = {"train": "train", "dev": "validate", "test": "test"}  # file suffix -> canonical split
WHOLE_FILES = ("Descriptions.json", "Description.json")
MODALITY = {"CT": "ct", "TAC": "ct", "MR": "mri", "MRI": "mri"}
PROMPTS = (
    "Describe the findings in this image.",
    "Write a caption for this radiology image.",
    "What does this image show?",
    "Provide a brief description of this medical image.",
)
MISSING = ("", "n/a", "na", "none", "null")


@lru_cache(maxsize=8)
def _read_rows(path: str, mtime_ns: int) -> tuple:
    """Rows of a JSON list or a JSON-lines file; a bad line stays a string so it can be rejected."""
    check_lfs_pointer(path)
    with open_file(path, "r", encoding="utf-8") as handle:
        text = handle.read()
    if path.endswith(".json"):
        rows = json.loads(text)
        if not isinstance(rows, list):
            raise SourceError(f"{path}: expected a JSON list of image descriptions")
        return tuple(rows)
    rows = []
    for line in text.splitlines():
        if not line.strip():
            continue
        try:
            rows.append(json.loads(line))
        except ValueError:
            rows.append(line)
    return tuple(rows)


def _known(value):
    if value is None or str(value).strip().lower() in MISSING:
        return None
    return str(value).strip()


def clean_caption(text) -> str:
    text = " ".join(str(text or "").split())
    return text.lstrip("> ").strip() if _known(text) else ""


class Medpix2(Source):
    card = DatasetCard(
        name="medpix2",
        title="MedPix 2.0",
        modalities=("ct", "mri"),
        tasks=("image_captioning",),
        licence="see the CHILab1/MedPix-2.0 repository (NLM MedPix content)",
        access="open",
        url="https://github.com/CHILab1/MedPix-2.0",
        citation="Siragusa et al., MedPix 2.0: A Comprehensive Multimodal Biomedical Data Set for Advanced AI "
                 "Applications with RAG and Knowledge Graphs, Data Science and Engineering 2025",
        root_names=("MedPix-2-0", "MedPix-2.0", "MedPix2"),
        counts="671 cases, 2,050 CT/MR images (case splits train 535 / dev 67 / test 69; 1,653 / 197 / 200 images)",
    )
    items_per_unit = 512

    def _data_dir(self) -> Path:
        for folder in (self.root, self.root / "MedPix-2-0"):
            if (folder / "splitted_dataset").is_dir() or any((folder / name).is_file() for name in WHOLE_FILES):
                return folder
        raise SourceError(f"{self.root}: no splitted_dataset/ or Descriptions.json; point the root at MedPix-2-0/")

    def _split_files(self, folder: Path) -> dict[str, list[Path]]:
        splits_dir = folder / "splitted_dataset"
        files: dict[str, list[Path]] = {}
        if splits_dir.is_dir():
            for suffix, split in SPLITS.items():
                whole = splits_dir / f"descriptions_{suffix}.jsonl"
                parts = sorted(splits_dir.glob(f"descriptions_{suffix}_[0-9].jsonl"))
                found = [whole] if whole.is_file() else parts  # train_1/_2 partition train: never both
                if found:
                    files[split] = found
        if not files:
            for name in WHOLE_FILES:
                if (folder / name).is_file():
                    return {"unsplit": [folder / name]}
        return files

    def work_units(self) -> list[WorkUnit]:
        folder = self._data_dir()
        units = []
        for split, paths in self._split_files(folder).items():
            if not self.wants_split(split):
                continue
            items = []
            for path in paths:
                rows = _read_rows(str(path), mtime_ns(path))
                items.extend((self.relative(path), index) for index in range(len(rows)))
            units.extend(self.chunked_units(split, items))
        return units

    def iter_records(self, unit: WorkUnit) -> Iterator[Record | Rejection]:
        for relative, index in unit.items:
            path = self.root / relative
            row = _read_rows(str(path), mtime_ns(path))[index]
            yield self._record(row, relative, index, unit.split)

    def _record(self, row, relative: str, index: int, split: str) -> Record | Rejection:
        fallback = f"medpix2/{split}/{relative}#{index}"
        if isinstance(row, str):
            return self.reject(fallback, split, "malformed_json", row[:80], task_family="i2t", provenance=[relative])
        if not isinstance(row, dict) or not _known(row.get("image")):
            return self.reject(fallback, split, "malformed_row", "missing key 'image'", task_family="i2t",
                               provenance=[relative])
        name = str(row["image"]).strip()
        if name.lower().endswith(".png"):
            name = name[:-4]
        record_id = f"medpix2/{split}/{name}"
        folder = Path(relative).parent.parent if Path(relative).parent.name == "splitted_dataset" else Path(relative).parent
        image_path = (folder / "images" / f"{name}.png").as_posix()
        description = row.get("Description") if isinstance(row.get("Description"), dict) else {}
        modality = MODALITY.get(str(row.get("Type") or "").strip().upper(), "other")
        provenance = [relative, image_path]
        caption = clean_caption(description.get("Caption"))
        if not caption:
            return self.reject(record_id, split, "caption_empty", repr(description.get("Caption")), modality=modality,
                               task_family="i2t", provenance=provenance)
        try:
            image = decode_file(self.root / image_path, source_path=image_path)
        except ImageDecodeError as err:
            return self.reject(record_id, split, err.reason, err.detail, modality=modality, task_family="i2t",
                               provenance=provenance)
        age = _known(description.get("Age"))
        return Record(
            id=record_id,
            source=self.name,
            split=split,
            modality=modality,
            task_family="i2t",
            main_task_type="image_understanding",
            sub_task_type="image_captioning",
            message=[{"from": "human", "value": f"{IMAGE_TOKEN}\n{self.pick(record_id, PROMPTS)}"},
                     {"from": "gpt", "value": caption}],
            input_images=[image],
            provenance=provenance,
            source_text=caption,
            meta={"case_id": _known(row.get("U_id")), "scan": _known(description.get("Modality")),
                  "plane": _known(description.get("Plane")), "sex": _known(description.get("Sex")),
                  "age": int(age) if age and age.isdigit() else None,
                  "location": _known(row.get("Location")), "location_category": _known(row.get("Location Category")),
                  "acr_codes": _known(description.get("ACR Codes")),
                  "figure_part": _known(description.get("Figure Part"))},
        )

    def unit_inputs(self, unit: WorkUnit) -> list[str]:
        """The description files and each row's image, so an image put in place re-runs its unit only."""
        paths = self.annotation_files()
        for relative, index in unit.items:
            path = self.root / relative
            row = _read_rows(str(path), mtime_ns(path))[index]
            if isinstance(row, dict) and _known(row.get("image")):
                name = str(row["image"]).strip().removesuffix(".png")
                parent = Path(relative).parent
                folder = parent.parent if parent.name == "splitted_dataset" else parent
                paths.append((folder / "images" / f"{name}.png").as_posix())
        return paths
