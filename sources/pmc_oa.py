"""PMC-OA: subfigure-level image-caption pairs from PubMed Central open-access articles (PMC-CLIP).

Card
- Citation: Lin W, Zhao Z, Zhang X, Wu C, Zhang Y, Wang Y, Xie W. "PMC-CLIP: Contrastive Language-Image
  Pre-training using Biomedical Documents." MICCAI 2023.
- URL: https://huggingface.co/datasets/axiong/pmc_oa
- Licence: the article licences of the PMC open-access subset; released for research use. Access: open.
- Modality: mixed biomedical figures; the JSONL has no modality field, so every record is "other".
- Counts: 1.65M subfigure-caption pairs (`pmc_oa.jsonl`); the older release splits them into train /
  valid / test JSONL files.
- Overlaps: PMC OA figures, shared with ROCO/ROCOv2, PMC-VQA, LLaVA-Med (PMC-15M) and PubMedVision;
  `pmc_oa_beta.jsonl` repeats the figures with compound captions and is not read.

Layout (HF download, images.zip unpacked in place)::

    pmc_oa/
      images.zip -> caption_T060_filtered_top4_sep_v0_subfigures/PMC212319_Fig3_4.jpg
      pmc_oa.jsonl          {"image": "PMC212319_Fig3_4.jpg", "caption": "..."} (+ alignment fields)
      pmc_oa_beta.jsonl     compound captions (not read)
      train.jsonl valid.jsonl test.jsonl   older release: also `pmcid`, `url_name`

Each line gives two samples: an I2T caption (`.../caption`) and a T2I prompt -> image (`.../t2i`).
Quirks handled here: the split files win when present, else `pmc_oa.jsonl` is read as "unsplit"; the
image folder is the zip's own folder, or that folder under `images/`, or `images/`; a line that is not a
JSON object with an `image` is `malformed_row`; an empty caption, or one that is only a panel reference
("(A)"), is `caption_empty`; an image listed twice in one file gets `#<line>` added to its later ids.

Hub copy (docs/sources/hub/pmc_oa.md): `axiong/pmc_oa` is the original distribution, so a Hub cache snapshot or
`--local-dir` copy gives the same ids and captions; the cache keeps `images.zip` packed, so when no image
folder is unpacked each `image` is read from the zip member with that basename (the zip's inner folder is
not documented); the JPEG bytes are the members themselves, passed through unchanged.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator

from manifests.records import Record, Rejection
from sources.base import DatasetCard, Source, SourceError, WorkUnit
from sources.io.files import open_file
from sources.io.hub import ZipImages
from sources.io.image import ImageDecodeError, decode_file
from sources.shapes.captions import caption_records, caption_rejections

SPLIT_FILES = {"train.jsonl": "train", "valid.jsonl": "validate", "test.jsonl": "test"}
ALL_FILE = "pmc_oa.jsonl"
ZIP = "images.zip"
SUBFIGURES = "caption_T060_filtered_top4_sep_v0_subfigures"
IMAGE_DIRS = (SUBFIGURES, f"images/{SUBFIGURES}", "images")
FIGURE_REF = re.compile(r"[(\[]?\s*(?:(?:fig(?:ure)?s?|panel)\.?\s*)?(?:\d+\s*[a-z]?|[a-z])?\s*[)\]]?[.:]?",
                        re.IGNORECASE)
CAPTION_PROMPTS = (
    "Describe this biomedical figure.",
    "Write a caption for this image from a scientific article.",
    "What does this figure panel show? Answer with a caption.",
    "Provide a short caption for this medical image.",
)


class PmcOa(Source):
    card = DatasetCard(
        name="pmc_oa",
        title="PMC-OA (PMC-CLIP subfigure captions)",
        modalities=("other",),
        tasks=("image_captioning", "text_to_image"),
        licence="PMC open-access article licences; research use",
        access="open",
        url="https://huggingface.co/datasets/axiong/pmc_oa",
        citation="Lin et al., PMC-CLIP: Contrastive Language-Image Pre-training using Biomedical Documents, "
                 "MICCAI 2023",
        root_names=("pmc_oa", "PMC-OA", "PMC_OA"),
        counts="1.65M subfigure-caption pairs",
        hub_repos=("axiong/pmc_oa",),
    )

    def _files(self) -> dict[str, str]:
        present = {name: split for name, split in SPLIT_FILES.items() if (self.root / name).is_file()}
        if present:
            return present
        if (self.root / ALL_FILE).is_file():
            return {ALL_FILE: "unsplit"}
        raise SourceError(f"{self.root}: no {ALL_FILE} (or train/valid/test.jsonl); point the root at pmc_oa")

    def _image_dir(self) -> str:
        found = next((name for name in IMAGE_DIRS if (self.root / name).is_dir()), None)
        if found is None and (self.root / ZIP).is_file():
            try:
                ZipImages([self.root / ZIP]).locate("-")  # reads the central directory once
            except ImageDecodeError as err:
                raise SourceError(f"{self.root / ZIP}: {err.detail}; download it again or unzip it in place "
                                  f"(images are then read from {SUBFIGURES}/)") from err
            return ZIP  # the Hub cache keeps it packed: images are read from its members
        return found or SUBFIGURES  # every image then becomes a `missing_file` rejection

    def work_units(self) -> list[WorkUnit]:
        image_dir, units = self._image_dir(), []
        for name, split in self._files().items():
            if not self.wants_split(split):
                continue
            items, seen = [], set()
            with open_file(self.root / name, "r", encoding="utf-8") as handle:
                for line_number, line in enumerate(handle, start=1):
                    if not line.strip():
                        continue
                    items.append(self._item(name, line_number, line, image_dir, seen))
            units.extend(self.chunked_units(split, items))
        return units

    @staticmethod
    def _item(name: str, line_number: int, line: str, image_dir: str, seen: set) -> dict:
        try:
            row = json.loads(line)
        except ValueError as err:
            return {"file": name, "line": line_number, "error": f"not JSON: {err}"}
        image = row.get("image") if isinstance(row, dict) else None
        if not isinstance(image, str) or not image.strip() or "/" in image or image.startswith("."):
            return {"file": name, "line": line_number, "error": "a line needs a bare `image` file name"}
        stem = image.strip().rsplit(".", 1)[0]
        key = stem if stem not in seen else f"{stem}#{line_number}"
        seen.add(stem)
        return {"file": name, "line": line_number, "key": key, "image": f"{image_dir}/{image.strip()}",
                "caption": str(row.get("caption") or ""), "pmcid": row.get("pmcid")}

    def iter_records(self, unit: WorkUnit) -> Iterator[Record | Rejection]:
        packed = ZipImages([self.root / ZIP])
        try:
            for item in unit.items:
                yield from self._records(item, unit.split, packed)
        finally:
            packed.close()

    def _records(self, item: dict, split: str, packed: ZipImages) -> Iterator[Record | Rejection]:
        if "error" in item:
            yield self.reject(f"{self.name}/{split}/{item['file']}#{item['line']}", split, "malformed_row",
                              item["error"], provenance=[item["file"]])
            return
        base = f"{self.name}/{split}/{item['key']}"
        caption = " ".join(item["caption"].split())
        zipped = item["image"].startswith(f"{ZIP}/")
        provenance = [item["file"], ZIP if zipped else item["image"]]
        if FIGURE_REF.fullmatch(caption):
            yield from caption_rejections(self, base, split, "caption_empty", repr(caption), provenance=provenance)
            return
        try:
            image = (packed.decode(item["image"].removeprefix(f"{ZIP}/"), source_path=item["image"]) if zipped
                     else decode_file(self.root / item["image"], source_path=item["image"]))
        except ImageDecodeError as err:
            yield from caption_rejections(self, base, split, err.reason, err.detail, provenance=provenance)
            return
        prefix = item["key"].split("_", 1)[0]  # PMC-OA names images <PMCID>_<figure>
        meta = {"pmcid": item["pmcid"] or (prefix if re.fullmatch(r"PMC\d+", prefix) else None)}
        yield from caption_records(self, base, split, "other", image, caption, CAPTION_PROMPTS,
                                   provenance=provenance, meta=meta)
