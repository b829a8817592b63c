"""Quilt-1M: histopathology image-text pairs from educational YouTube videos, Twitter, PubMed and LAION.

Card
- Citation: Ikezogwo WO, Seyfioglu MS, Ghezloo F, Geva DSC, Mohammed FS, Anand PK, Krishna R, Shapiro LG.
  "Quilt-1M: One Million Image-Text Pairs for Histopathology." NeurIPS 2023 Datasets and Benchmarks.
- URL: https://quilt1m.github.io ; data https://zenodo.org/records/8239942
- Licence: research use only (Zenodo access request; the subsets keep their own terms). Access: registration.
- Modality: histopathology (some frames show slides at low power or non-histology content; the
  QuiltCleaner annotations flag those and are not read here).
- Counts: ~1.02M rows (one row per image-caption pair; an image can have several rows).
- Overlaps: the `pubmed` subset comes from PMC OA (shared with PMC-OA, PMC-15M/LLaVA-Med, PubMedVision);
  the `openpath` subset is OpenPath (Twitter); `laion` comes from LAION-5B.

Layout (Zenodo download, image zips unpacked in place)::

    quilt/
      quilt_1M_lookup.csv
      quilt_1m/00001000010913.jpg  0-RuE0Ldx6U_image_ffbf02cb-....jpg ...   (some copies: images/)

Columns: an unnamed index column, caption, image_path (bare file name), subset (quilt, openpath, pubmed,
laion), split (train, val), pathology, roi_text, noisy_text, corrected_text, med_umls_ids, magnification,
height, width.

Each row gives two samples: an I2T caption (`.../caption`) and a T2I prompt -> image (`.../t2i`).
Quirks handled here: the record id is the index column (rows repeat images); split `val` is "validate",
an empty or unknown split is "unsplit" [M: only train/val are known]; list columns are Python literals
("['Dermatopathology']") read with `ast.literal_eval` (anything else is kept as None); magnification is
a float or None; an empty caption is `caption_empty`; a missing image is `missing_file`.

Hub copy (docs/sources/hub/quilt_1m.md, gated: accept the terms on the Hub first): `wisdomik/Quilt-1M` holds
`quilt_1M_lookup.csv` and image zips (`images_part_1_resized.zip`, ...), kept packed in the cache. Without an
unpacked image folder, each `image_path` is read from the `images_part_*.zip` member with that basename.
Same ids and captions if the CSV is the same file [L]; the "resized" images may differ in pixels from the
Zenodo files [L].
"""

from __future__ import annotations

import ast
import csv
import sys
from collections.abc import Iterator

from manifests.records import Record, Rejection
from sources.base import DatasetCard, Source, SourceError, WorkUnit
from sources.io.files import open_file
from sources.io.hub import ZipImages
from sources.io.image import ImageDecodeError, decode_file
from sources.shapes.captions import caption_records, caption_rejections

LOOKUP = "quilt_1M_lookup.csv"
IMAGE_DIRS = ("quilt_1m", "images")
SPLITS = {"train": "train", "val": "validate", "valid": "validate", "validation": "validate", "test": "test"}
CAPTION_PROMPTS = (
    "Describe this histopathology image.",
    "What do you see in this pathology image?",
    "Write a caption for this histology image.",
    "Describe the tissue and findings shown in this image.",
)


def literal_list(value: str) -> list | None:
    """A Python-literal list column ("['a', 'b']") as a list; blank or anything else is None."""
    try:
        parsed = ast.literal_eval(value) if value and value.strip() else None
    except (ValueError, SyntaxError, MemoryError, RecursionError):
        return None
    return [str(part) for part in parsed] if isinstance(parsed, (list, tuple)) else None


def _float(value: str) -> float | None:
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


class Quilt1m(Source):
    card = DatasetCard(
        name="quilt_1m",
        title="Quilt-1M",
        modalities=("histopathology",),
        tasks=("image_captioning", "text_to_image"),
        licence="research use only (Zenodo access request)",
        access="registration",
        url="https://quilt1m.github.io",
        citation="Ikezogwo et al., Quilt-1M: One Million Image-Text Pairs for Histopathology, NeurIPS 2023",
        root_names=("quilt", "Quilt-1M", "quilt_1m"),
        counts="~1.02M image-caption rows",
        hub_repos=("wisdomik/Quilt-1M",),
    )

    def _packed(self) -> ZipImages | None:
        """The Hub's image zips when no image folder is unpacked (the cache keeps them packed)."""
        zips = sorted(self.root.glob("images_part_*.zip"))
        return ZipImages(zips) if zips and not any((self.root / d).is_dir() for d in IMAGE_DIRS) else None
    items_per_unit = 512

    def work_units(self) -> list[WorkUnit]:
        path = self.root / LOOKUP
        if not path.is_file():
            raise SourceError(f"{self.root}: no {LOOKUP}; point the root at the Quilt-1M download folder")
        image_dir = next((name for name in IMAGE_DIRS if (self.root / name).is_dir()), IMAGE_DIRS[0])
        csv.field_size_limit(min(sys.maxsize, 2**31 - 1))  # roi/noisy text cells can be long
        by_split: dict[str, list[dict]] = {}
        with open_file(path, "r", encoding="utf-8-sig", newline="") as handle:
            reader = csv.reader(handle)
            header = [name.strip().lower() for name in next(reader, [])]
            for number, values in enumerate(reader):
                row = dict(zip(header, values))
                index = row.get("", row.get("unnamed: 0", "")).strip() or str(number)
                split = SPLITS.get(row.get("split", "").strip().lower(), "unsplit")
                by_split.setdefault(split, []).append({
                    "index": index, "caption": row.get("caption", ""), "image": row.get("image_path", "").strip(),
                    "dir": image_dir, "subset": row.get("subset") or None, "pathology": row.get("pathology", ""),
                    "umls": row.get("med_umls_ids", ""), "magnification": row.get("magnification", "")})
        units = []
        for split in ("train", "validate", "test", "unsplit"):
            if split in by_split and self.wants_split(split):
                units.extend(self.chunked_units(split, by_split[split]))
        return units

    def iter_records(self, unit: WorkUnit) -> Iterator[Record | Rejection]:
        packed = self._packed()
        try:
            for item in unit.items:
                yield from self._records(item, unit.split, packed)
        finally:
            if packed is not None:
                packed.close()

    def _records(self, item: dict, split: str, packed: ZipImages | None = None) -> Iterator[Record | Rejection]:
        base = f"{self.name}/{split}/{item['index']}"
        if not item["image"] or "/" in item["image"] or item["image"].startswith("."):
            yield from caption_rejections(self, base, split, "malformed_row", f"image_path={item['image']!r}",
                                          modality="histopathology", provenance=[LOOKUP])
            return
        image_path = f"{item['dir']}/{item['image']}"
        found = packed.locate(item["image"]) if packed is not None else None
        provenance = [LOOKUP, image_path] if packed is None else [LOOKUP, *([found[0].name] if found else [])]
        caption = " ".join(item["caption"].split())
        if not caption:
            yield from caption_rejections(self, base, split, "caption_empty", "''",
                                          modality="histopathology", provenance=provenance)
            return
        try:
            image = (decode_file(self.root / image_path, source_path=image_path) if packed is None
                     else packed.decode(item["image"], source_path=image_path))
        except ImageDecodeError as err:
            yield from caption_rejections(self, base, split, err.reason, err.detail,
                                          modality="histopathology", provenance=provenance)
            return
        meta = {"subset": item["subset"], "pathology": literal_list(item["pathology"]),
                "umls_ids": literal_list(item["umls"]), "magnification": _float(item["magnification"])}
        yield from caption_records(self, base, split, "histopathology", image, caption, CAPTION_PROMPTS,
                                   provenance=provenance, meta=meta)
