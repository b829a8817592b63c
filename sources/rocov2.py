"""ROCOv2: radiology figures and their captions from the PubMed Central open-access subset.

Card
- Citation: Rückert J, et al. "ROCOv2: Radiology Objects in COntext version 2, an updated multimodal
  image dataset." Scientific Data 11, 688 (2024). doi:10.1038/s41597-024-03496-6
- URL: https://zenodo.org/records/8333645 (the ImageCLEFmedical 2023 caption-task data).
- Licence: per-image Creative Commons licences of the source articles (CC BY, CC BY-NC, ...), listed in
  `license_information.csv`; kept per record in `meta`. Access: open download.
- Modality: mixed radiology (CT, MRI, ultrasound, plain x-ray, angiography, PET, ...), read from the
  manually curated modality CUIs. Captions are mostly English; a few are not (French occurs).
- Counts: 79,789 images: train 59,958 / valid 9,904 / test 9,927; one caption per image.
- Overlaps: drawn from PMC OA like ROCO v1 (whose images it includes), PMC-OA, PMC-15M, LLaVA-Med and
  PubMedVision: deduplicate across them by pixel hash; `meta.pmcid` names the article where known.

Layout (Zenodo files, zips unpacked in place)::

    ROCOv2/
      train_images.zip valid_images.zip test_images.zip -> train/ valid/ test/ <ID>.jpg
      {train,valid,test}_captions.csv         ID, Caption
      {train,valid,test}_concepts.csv         ID, CUIs ("C0040405;C0817096")
      {train,valid,test}_concepts_manual.csv  same columns, manually curated
      cui_mapping.csv                         CUI, Canonical name
      license_information.csv                 per-image licence / attribution (columns not verified)

Each image gives two samples: an I2T caption (`.../caption`) and a T2I prompt -> image (`.../t2i`).
Quirks handled here: stray spaces and BOMs in headers; images unpacked as `train/`, `train_images/train/`
or `train_images/`; captions with extra whitespace; captions that are only a figure reference
("Fig. 3b", "(A)") are rejected as `caption_empty`; a missing image becomes a `missing_file` rejection
for both samples; the licence file is read defensively (any of License/Licence/CC, else a CC token in
Attribution).

Hub copy (docs/sources/hub/rocov2.md): `eltorio/ROCOv2-radiology`, from a Hub cache snapshot or a `--local-dir`
copy: `data/{train,validation,test}-*.parquet` with image (a PNG re-encode of the JPEG), image_id (= the CSV
`ID`), caption, cui (the manual CUIs only). Same ids and captions as the Zenodo files; pixels equal where the
uploader's JPEG decoder matches ours (compare pixel hashes, not bytes: JPEG pass-through is impossible there);
the modality comes from the manual CUIs and the caption; licence, attribution, PMCID and link are None.
"""

from __future__ import annotations

import csv
import re
from collections.abc import Iterator
from pathlib import Path

from manifests.records import Record, Rejection
from sources.base import DatasetCard, Source, SourceError, WorkUnit
from sources.io.files import open_file
from sources.io.hub import decode_image_cell, iter_parquet_rows, split_files
from sources.io.lfs import check_lfs_pointer
from sources.io.image import ImageDecodeError, decode_file
from sources.shapes.captions import caption_records, caption_rejections

SPLITS = {"train": "train", "valid": "validate", "test": "test"}  # file prefix -> canonical split
PREFIXES = {split: prefix for prefix, split in SPLITS.items()}
HUB_SPLITS = {"train": "train", "validation": "validate", "test": "test"}  # Hub split -> canonical split
IMAGE_DIRS = ("{p}", "{p}_images/{p}", "{p}_images")  # how the zips unpack with different tools
MODALITY_CUIS = {
    "C0040405": "ct",  # X-Ray Computed Tomography
    "C0024485": "mri",  # Magnetic Resonance Imaging
    "C0041618": "ultrasound",  # Ultrasonography
    "C1306645": "xray",  # Plain x-ray: chest_xray only for the chest, see _modality
    "C0002978": "other",  # Angiogram
    "C0032743": "other",  # Positron-Emission Tomography
}
CHEST_CUIS = frozenset({"C0817096"})  # Chest
CHEST_WORDS = re.compile(r"\b(chest|thorax|thoracic)\b", re.IGNORECASE)
# A caption that is nothing but a figure or panel reference: "", "Figure 2", "Fig. 3b", "(A)".
FIGURE_REF = re.compile(r"[(\[]?\s*(?:(?:fig(?:ure)?s?|panel)\.?\s*)?(?:\d+\s*[a-z]?|[a-z])?\s*[)\]]?[.:]?",
                        re.IGNORECASE)
LICENCE_COLUMNS = ("license", "licence", "cc", "license_type")
LICENCE_ID_COLUMNS = ("id", "image_id", "roco_id")
CC_TOKEN = re.compile(r"\bCC0(?: 1\.0)?|\bCC[ -]BY(?:[ -](?:NC|SA|ND))*(?: \d\.\d)?", re.IGNORECASE)
CAPTION_PROMPTS = (
    "Describe this medical image.",
    "Write a caption for this radiology image.",
    "Provide a brief caption describing the findings in this image.",
    "What does this image show? Answer with a figure caption.",
)


def _read_csv(path: Path) -> list[dict[str, str]]:
    """Rows keyed by stripped, lower-cased column names: headers carry BOMs and stray spaces."""
    check_lfs_pointer(path)
    try:
        with open_file(path, "r", encoding="utf-8-sig", errors="surrogateescape", newline="") as handle:
            reader = csv.reader(handle)
            header = [name.strip().lower() for name in next(reader, [])]
            rows = []
            for row in reader:
                if not row:
                    continue
                entry = dict(zip(header, (value.strip() for value in row)))
                problem = not_utf8(row)
                if problem:  # this row only: it becomes a `text_encoding` rejection, the file goes on
                    entry = {key: repaired(value) for key, value in entry.items()}
                    entry[ENCODING_ERROR] = f"line {reader.line_num}: {problem}"
                rows.append(entry)
            return rows
    except csv.Error as err:
        raise SourceError(f"{path}: not a readable CSV file ({err}); re-download it from Zenodo") from err


ENCODING_ERROR = "__encoding_error__"  # a row key no CSV header has: why the row is not UTF-8


def not_utf8(values: list[str]) -> str:
    """What is not UTF-8 in values read with errors="surrogateescape" ("" when all of it is)."""
    for column, value in enumerate(values, 1):
        for char in value:
            if "\udc80" <= char <= "\udcff":
                return f"byte 0x{ord(char) - 0xDC00:02X} in field {column} is not UTF-8"
    return ""


def repaired(value: str) -> str:
    """A surrogate-escaped string with each undecodable byte as U+FFFD (safe to store and print)."""
    return value.encode("utf-8", "surrogateescape").decode("utf-8", "replace")


def _modality(cuis: tuple[str, ...], caption: str) -> str:
    found = {MODALITY_CUIS[cui] for cui in cuis if cui in MODALITY_CUIS}
    if len(found) != 1:
        return "other"  # no modality concept, or a fusion such as PET-CT
    modality = found.pop()
    if modality == "xray":
        return "chest_xray" if CHEST_CUIS.intersection(cuis) or CHEST_WORDS.search(caption) else "other"
    return modality


class Rocov2(Source):
    card = DatasetCard(
        name="rocov2",
        title="ROCOv2 (Radiology Objects in COntext version 2)",
        modalities=("ct", "mri", "ultrasound", "chest_xray", "other"),
        tasks=("image_captioning", "text_to_image"),
        licence="per-image CC licences (see license_information.csv)",
        access="open",
        url="https://zenodo.org/records/8333645",
        citation="Rückert et al., ROCOv2: Radiology Objects in COntext version 2, Scientific Data 2024",
        root_names=("ROCOv2", "rocov2"),
        counts="59,958 / 9,904 / 9,927 image-caption pairs (train/valid/test); Hub copy 59,962 / 9,904 / 9,927",
        hub_repos=("eltorio/ROCOv2-radiology",),
    )

    def work_units(self) -> list[WorkUnit]:
        present = [prefix for prefix in SPLITS if (self.root / f"{prefix}_captions.csv").is_file()]
        hub = {} if present else split_files(self.root, "data/{split}-*.parquet", HUB_SPLITS)
        if hub:
            return [unit for split, files in hub.items() if self.wants_split(split)
                    for unit in self.parquet_units(split, files)]
        if not present:
            raise SourceError(f"{self.root}: no {{train,valid,test}}_captions.csv; point the root at the ROCOv2 folder")
        licences = self._licences()
        units = []
        for prefix in present:
            split = SPLITS[prefix]
            if not self.wants_split(split):
                continue
            concepts, image_dir = self._concepts(prefix), self._image_dir(prefix)
            items = []
            for index, row in enumerate(_read_csv(self.root / f"{prefix}_captions.csv")):
                image_id = row.get("id", "")
                items.append({"row": index, "id": image_id, "caption": row.get("caption", ""),
                              "cuis": concepts.get(image_id, ()), "image": f"{image_dir}/{image_id}.jpg",
                              "licence": licences.get(image_id, {}),
                              **({"encoding_error": row[ENCODING_ERROR]} if ENCODING_ERROR in row else {})})
            units.extend(self.chunked_units(split, items))
        return units

    def _image_dir(self, prefix: str) -> str:
        for pattern in IMAGE_DIRS:
            if (self.root / pattern.format(p=prefix)).is_dir():
                return pattern.format(p=prefix)
        if (self.root / f"{prefix}_images.zip").is_file():
            raise SourceError(f"{self.root}: unzip {prefix}_images.zip in place (images are read from {prefix}/)")
        return prefix  # every image of the split then becomes a `missing_file` rejection

    def _concepts(self, prefix: str) -> dict[str, tuple[str, ...]]:
        """CUIs per ID from the automatic and the manual file, merged in order (either may be absent)."""
        merged: dict[str, list[str]] = {}
        for name in (f"{prefix}_concepts.csv", f"{prefix}_concepts_manual.csv"):
            if not (self.root / name).is_file():
                continue
            for row in _read_csv(self.root / name):
                cuis = merged.setdefault(row.get("id", ""), [])
                for cui in (part.strip().upper() for part in row.get("cuis", "").split(";")):
                    if cui and cui not in cuis:
                        cuis.append(cui)
        return {image_id: tuple(cuis) for image_id, cuis in merged.items()}

    def _licences(self) -> dict[str, dict[str, str | None]]:
        path = self.root / "license_information.csv"
        if not path.is_file():
            return {}
        licences = {}
        for row in _read_csv(path):
            image_id = next((row[c] for c in LICENCE_ID_COLUMNS if row.get(c)), "").removesuffix(".jpg")
            attribution = row.get("attribution") or None
            token = CC_TOKEN.search(attribution or "")
            licences[image_id] = {
                "licence": next((row[c] for c in LICENCE_COLUMNS if row.get(c)), None) or (token and token.group(0)),
                "attribution": attribution,
                "pmcid": row.get("pmcid") or None,
                "link": row.get("link") or None,
            }
        return licences

    def iter_records(self, unit: WorkUnit) -> Iterator[Record | Rejection]:
        if "row_groups" in unit.items[0]:
            part = unit.items[0]
            for row, values in iter_parquet_rows(self.root / part["file"], part["row_groups"], part["first_row"],
                                                 ("image", "image_id", "caption", "cui")):
                cuis = tuple(dict.fromkeys(str(c).strip().upper() for c in values.get("cui") or () if c))
                item = {"row": row, "id": str(values.get("image_id") or "").strip(),
                        "caption": str(values.get("caption") or ""), "cuis": cuis, "image": None, "licence": {},
                        "cell": values.get("image")}
                yield from self._records(item, unit.split, part["file"])
            return
        captions_file = f"{PREFIXES[unit.split]}_captions.csv"
        for item in unit.items:
            yield from self._records(item, unit.split, captions_file)

    def _records(self, item: dict, split: str, captions_file: str) -> Iterator[Record | Rejection]:
        if not item["id"]:
            yield self.reject(f"{self.name}/{split}/{captions_file}#{item['row']}", split, "malformed_row",
                              "empty ID", provenance=[captions_file])
            return
        base = f"{self.name}/{split}/{item['id']}"
        if item.get("encoding_error"):
            yield from caption_rejections(self, base, split, "text_encoding", f"{captions_file} {item['encoding_error']}",
                                        provenance=[captions_file, item["image"]])
            return
        caption = " ".join(item["caption"].split())
        modality = _modality(item["cuis"], caption)
        provenance = [captions_file, item["image"]] if item["image"] else [captions_file]
        if FIGURE_REF.fullmatch(caption):
            yield from caption_rejections(self, base, split, "caption_empty", repr(caption),
                                          modality=modality, provenance=provenance)
            return
        try:
            image = (decode_file(self.root / item["image"], source_path=item["image"]) if item["image"] else
                     decode_image_cell(item["cell"], source_path=f"{captions_file}#{item['row']}"))
        except ImageDecodeError as err:
            yield from caption_rejections(self, base, split, err.reason, err.detail,
                                          modality=modality, provenance=provenance)
            return
        meta = {"cuis": list(item["cuis"]), **{key: item["licence"].get(key) for key in
                                               ("licence", "attribution", "pmcid", "link")}}
        yield from caption_records(self, base, split, modality, image, caption, CAPTION_PROMPTS,
                                   provenance=provenance, meta=meta)
