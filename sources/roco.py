"""ROCO (v1): Radiology Objects in COntext, figures and captions from the PubMed Central open-access subset.

Card
- Citation: Pelka O, Koitka S, Rückert J, Nensa F, Friedrich CM. "Radiology Objects in COntext (ROCO): A
  Multimodal Image Dataset." MICCAI LABELS/CVII/STENT workshops, LNCS 11043, 180-189 (2018).
  doi:10.1007/978-3-030-01364-6_20
- URL: https://github.com/razorx89/roco-dataset (metadata only; `scripts/fetch.py` downloads the images
  from the PMC OA tarballs).
- Licence: per-image Creative Commons licence of the source article (`licences.txt`), kept in `meta`.
  Access: open.
- Modality: mixed radiology (CT, MRI, ultrasound, x-ray, angiography, ...); the modality is guessed from
  the caption when exactly one modality word occurs, else "other". Captions are mostly English.
- Counts (the official files, razorx89/roco-dataset at a1f0ad6, checked for issue #12): radiology train
  65,448 (`data/train/radiology/licences.txt`: 65,449 lines with its header), validation 8,180 and test
  8,179 (`captions.txt` lines); non-radiology 4,895 / 611 / 612 = 6,118. The paper states 81,825 radiology
  (65,460 / 8,183 / 8,182) and 6,127 non-radiology figures.
- Overlaps: ROCOv2 contains most ROCO radiology images (re-captioned): use one of them, or deduplicate by
  pixel hash; PMC-OA / PMC-15M / LLaVA-Med draw from the same articles.

Layout (the git repo after `python scripts/fetch.py`)::

    roco-dataset/
      data/{train,validation,test}/{radiology,non-radiology}/
        captions.txt    "ROCO_00020\\t Axial computed tomography scan ..."  (TAB; the caption starts with a space)
        keywords.txt semtypes.txt cuis.txt     ROCO_ID \\t values ...   (not read)
        dlinks.txt      ROCO_ID \\t wget <PMC tarball> \\t <file in the tarball>
        licences.txt    CSV: ROCO_ID,PMC_ID,CC
        images/ROCO_00020.jpg                    (written by fetch.py; absent when a download failed)

Each image gives an I2T caption sample (`.../caption`) and a T2I sample (`.../t2i`), as in rocov2. Only the
`radiology` subset is read unless the option `include_non_radiology` is true (those figures are photos,
charts and drawings); `meta.subset` says which. Quirks handled here: the TAB separator and the leading
space / double spaces of captions; French and other non-English captions are kept (the language filter
decides); figure-reference-only captions are `caption_empty`; images missing because fetch.py failed are
`missing_file` for both samples; a captions line without a TAB is `malformed_row`.
"""

from __future__ import annotations

import csv
import re
from collections.abc import Iterator
from pathlib import Path

from manifests.records import Record, Rejection
from sources.base import DatasetCard, Source, SourceError, WorkUnit
from sources.io.files import open_file
from sources.io.lfs import check_lfs_pointer
from sources.io.image import ImageDecodeError, decode_file
from sources.shapes.captions import caption_records, caption_rejections
from sources.rocov2 import CAPTION_PROMPTS, FIGURE_REF, not_utf8, repaired

SPLITS = {"train": "train", "validation": "validate", "test": "test"}  # folder -> canonical split
SUBSETS = ("radiology", "non-radiology")
MODALITY_WORDS = {
    "ct": re.compile(r"\b(CT|computed tomograph\w*|CTA)\b", re.IGNORECASE),
    "mri": re.compile(r"\b(MRI?|magnetic resonance|T[12]-weighted|FLAIR)\b", re.IGNORECASE),
    "ultrasound": re.compile(r"\b(ultrasound|ultrasonograph\w*|sonograph\w*|doppler|echocardiograph\w*)\b",
                             re.IGNORECASE),
    "chest_xray": re.compile(r"\bchest (x-?ray|radiograph)s?\b", re.IGNORECASE),
}
NOT_ONE_MODALITY = re.compile(r"\b(PET|SPECT|scintigra\w*|angiogra\w*)\b", re.IGNORECASE)  # fusions, others


def _modality(caption: str, subset: str) -> str:
    if subset != "radiology" or NOT_ONE_MODALITY.search(caption):
        return "other"
    found = [name for name, pattern in MODALITY_WORDS.items() if pattern.search(caption)]
    return found[0] if len(found) == 1 else "other"  # none, or several (PET-CT, CT and MRI): unknown


class Roco(Source):
    card = DatasetCard(
        name="roco",
        title="ROCO (Radiology Objects in COntext, v1)",
        modalities=("ct", "mri", "ultrasound", "chest_xray", "other"),
        tasks=("image_captioning", "text_to_image"),
        licence="per-image CC licences (see licences.txt)",
        access="open",
        url="https://github.com/razorx89/roco-dataset",
        citation="Pelka et al., Radiology Objects in COntext (ROCO): A Multimodal Image Dataset, MICCAI "
                 "workshops (LNCS 11043) 2018",
        root_names=("roco-dataset", "roco", "ROCO"),
        counts="radiology 65,448 / 8,180 / 8,179 + non-radiology 6,118 in the files (paper: 81,825 + 6,127)",
    )

    def _data(self) -> Path:
        for candidate in (self.root / "data", self.root):
            if any((candidate / folder).is_dir() for folder in SPLITS):
                return candidate
        raise SourceError(f"{self.root}: no data/{{train,validation,test}}/; point the root at the roco-dataset repo")

    def work_units(self) -> list[WorkUnit]:
        data = self._data()
        subsets = SUBSETS if self.options.get("include_non_radiology") else SUBSETS[:1]
        units = []
        for folder, split in SPLITS.items():
            if not self.wants_split(split):
                continue
            for subset in subsets:
                directory = data / folder / subset
                if not (directory / "captions.txt").is_file():
                    continue
                base = self.relative(directory)
                licences = _licences(directory / "licences.txt")
                items = []
                check_lfs_pointer(directory / "captions.txt")
                # decoded line by line: a line that is not UTF-8 is one `text_encoding` rejection
                lines = (directory / "captions.txt").read_bytes().decode("utf-8", "surrogateescape").splitlines()
                for number, line in enumerate(lines):
                    if not line.strip():
                        continue
                    image_id, tab, caption = line.partition("\t")
                    problem = not_utf8([image_id, caption])
                    if problem:
                        image_id, caption = repaired(image_id), repaired(caption)
                    items.append({"line": number, "id": image_id.strip() if tab else "", "caption": caption,
                                  "dir": base, "subset": subset, "licence": licences.get(image_id.strip(), {}),
                                  **({"encoding_error": f"line {number + 1}: {problem}"} if problem else {})})
                units.extend(self.chunked_units(split, items, label=subset))
        return units

    def expected_files(self) -> list[str]:
        """data/<split>/<subset>/captions.txt for every requested split."""
        subsets = SUBSETS if self.options.get("include_non_radiology") else SUBSETS[:1]
        return [f"data/{folder}/{subset}/captions.txt" for folder, split in SPLITS.items() if self.wants_split(split)
                for subset in subsets]

    def iter_records(self, unit: WorkUnit) -> Iterator[Record | Rejection]:
        for item in unit.items:
            yield from self._records(item, unit.split)

    def _records(self, item: dict, split: str) -> Iterator[Record | Rejection]:
        captions_file = f"{item['dir']}/captions.txt"
        if not item["id"]:
            yield self.reject(f"{self.name}/{split}/{captions_file}#{item['line']}", split, "malformed_row",
                              "no TAB between ROCO id and caption", provenance=[captions_file])
            return
        base = f"{self.name}/{split}/{item['id']}"
        image_path = f"{item['dir']}/images/{item['id']}.jpg"
        if item.get("encoding_error"):
            yield from caption_rejections(self, base, split, "text_encoding", f"{captions_file} {item['encoding_error']}",
                                        provenance=[captions_file, image_path])
            return
        caption = " ".join(item["caption"].split())
        modality = _modality(caption, item["subset"])
        provenance = [captions_file, image_path]
        if FIGURE_REF.fullmatch(caption):
            yield from caption_rejections(self, base, split, "caption_empty", repr(caption),
                                          modality=modality, provenance=provenance)
            return
        try:
            image = decode_file(self.root / image_path, source_path=image_path)
        except ImageDecodeError as err:
            yield from caption_rejections(self, base, split, err.reason, err.detail,
                                          modality=modality, provenance=provenance)
            return
        meta = {"subset": item["subset"], "pmc_file": item["licence"].get("pmc_id"),
                "licence": item["licence"].get("cc")}
        yield from caption_records(self, base, split, modality, image, caption, CAPTION_PROMPTS,
                                   provenance=provenance, meta=meta)

def _licences(path: Path) -> dict[str, dict[str, str | None]]:
    """ROCO_ID -> {"pmc_id", "cc"} from licences.txt (a CSV with a header); absent file: no licences known."""
    if not path.is_file():
        return {}
    check_lfs_pointer(path)
    with open_file(path, "r", encoding="utf-8-sig", errors="replace", newline="") as handle:
        rows = [{(key or "").strip().lower(): (value or "").strip() for key, value in row.items()}
                for row in csv.DictReader(handle)]
    return {row.get("roco_id", ""): {"pmc_id": row.get("pmc_id") or None, "cc": row.get("cc") or None}
            for row in rows}
