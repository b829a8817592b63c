"""MedICaT: medical figures and their captions from PubMed Central open-access papers (AllenAI).

Card
- Citation: Subramanian S, Wang LL, Mehta S, Bogin B, van Zuylen M, Parasa S, Singh S, Gardner M,
  Hajishirzi H. "MedICaT: A Dataset of Medical Images, Captions, and Textual References." Findings of EMNLP
  2020. https://github.com/allenai/medicat
- Licence: per article (open-access licences or public domain), given per row in `oa_info.oa.license` (often
  null); the dataset is for non-commercial use only. Access: registration (request form, then a download link).
- Modality: mixed medical figures (radiology, endoscopy, microscopy, photographs, charts classified as
  "Medical images"); ~75% are compound figures with several panels.
- Counts: 217,060 figures from 131,410 papers; 7,507 subcaptions for 2,069 compound figures (not used here).
- Overlaps: PMC-OA, ROCO / ROCOv2 (MedICaT excludes ROCO's figures: "nonroco"), PMC-15M, LLaVA-Med and
  PubMedVision draw on the same articles: deduplicate by pixel hash; `meta.doi` names the article.

Layout (release archive, unpacked; names from loaders that read it [M], the repository shows only a sample)::

    release/                                   (also found as medicat/release/ or medicat/)
      s2_full_figures_oa_nonroco_combined_medical_top4_public.jsonl   one figure per line
      figures/<pdf_hash>_<fig_uri>             e.g. figures/57c9ad0f..._2-Figure1-1.png
      subcaptions_public.jsonl, roco_references/ ...                  (not read)

Row fields (allenai/medicat sample/sample.jsonl [H]): pdf_hash, fig_key ("Figure1"), fig_uri
("2-Figure1-1.png"), s2_caption, s2orc_caption (may be null), s2orc_references (list or null), radiology
(bool), scope (bool), predicted_type, oa_info {doi, doi_url, oa {is_oa, oa_status, license, ...}}.

Each figure gives an I2T caption sample (`.../caption`) and a T2I sample (`.../t2i`), split "unsplit" (the
release has no split). Quirks handled here: captions begin with their figure label ("Figure 4.", "Fig 3.",
"Fig. 1."), which is removed; s2_caption is used, s2orc_caption when it is empty; a caption that is only a
label or panel reference is `caption_empty`; a line that is not JSON or lacks pdf_hash / fig_uri is
`malformed_row`; a missing figure is `missing_file` for both samples. Modality: `scope` without `radiology`
is read as endoscopy (the sample's scope rows are colonoscopy and endoscopy figures [M]); anything else is
"other", since `radiology` does not say which kind.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path, PurePosixPath

from manifests.records import Record, Rejection
from sources.base import DatasetCard, Source, SourceError, WorkUnit
from sources.io.files import open_file, source_path
from sources.io.image import ImageDecodeError, decode_file
from sources.shapes.captions import caption_records, caption_rejections
from sources.rocov2 import FIGURE_REF

FIGURES_FILE = "s2_full_figures_oa_nonroco_combined_medical_top4_public.jsonl"
CAPTION_PROMPTS = (
    "Describe this medical image.",
    "Write a caption for this figure from a medical article.",
    "Provide a brief caption describing what this image shows.",
    "What does this image show? Answer with a figure caption.",
)
LABEL = re.compile(r"(?:fig(?:ure)?s?)\.?\s*\d+[a-z]?\s*[.:]?\s*", re.IGNORECASE)


def clean_caption(text: str | None) -> str:
    """The caption without its leading figure label, whitespace collapsed."""
    caption = " ".join((text or "").split())
    label = LABEL.match(caption)
    return caption[label.end():] if label else caption


def _modality(row: dict) -> str:
    return "endoscopy" if row.get("scope") is True and row.get("radiology") is not True else "other"


class Medicat(Source):
    card = DatasetCard(
        name="medicat",
        title="MedICaT (Medical Images, Captions, and Textual References)",
        modalities=("endoscopy", "other"),
        tasks=("image_captioning", "text_to_image"),
        licence="per-article open-access licences (oa_info.oa.license); non-commercial use only",
        access="registration",
        url="https://github.com/allenai/medicat",
        citation="Subramanian et al., MedICaT: A Dataset of Medical Images, Captions, and Textual References, "
        "Findings of EMNLP 2020",
        root_names=("medicat/release", "medicat", "release", "MedICaT"),
        counts="217,060 figures from 131,410 papers",
    )

    @classmethod
    def find_root(cls, sources_root: Path) -> Path | None:
        # "release" is a generic folder name: only a folder holding the figures file counts
        for name in cls.card.root_names:
            if (source_path(sources_root) / name / FIGURES_FILE).is_file():
                return source_path(sources_root) / name
        return None

    def work_units(self) -> list[WorkUnit]:
        path = self.root / FIGURES_FILE
        if not path.is_file():
            raise SourceError(f"{self.root}: no {FIGURES_FILE}; point the root at the unpacked release/ folder")
        if not self.wants_split("unsplit"):
            return []
        items = []
        with open_file(path, "r", encoding="utf-8") as handle:
            for line_number, line in enumerate(handle, start=1):
                if line.strip():
                    items.append(self._item(line_number, line))
        return self.chunked_units("unsplit", items)

    @staticmethod
    def _item(line_number: int, line: str) -> dict:
        try:
            row = json.loads(line)
        except json.JSONDecodeError as err:
            return {"line": line_number, "problem": f"not JSON: {err.msg}"}
        if not isinstance(row, dict) or not row.get("pdf_hash") or not row.get("fig_uri"):
            return {"line": line_number, "problem": "no pdf_hash or fig_uri"}
        oa_info = row.get("oa_info") or {}
        oa = oa_info.get("oa") or {}
        caption = clean_caption(row.get("s2_caption")) or clean_caption(row.get("s2orc_caption"))
        return {
            "line": line_number, "figure": f"figures/{row['pdf_hash']}_{row['fig_uri']}",
            "stem": f"{row['pdf_hash']}_{PurePosixPath(row['fig_uri']).stem}", "caption": caption,
            "modality": _modality(row),
            "meta": {"pdf_hash": row["pdf_hash"], "fig_key": row.get("fig_key"), "doi": oa_info.get("doi"),
                     "licence": oa.get("license"), "oa_status": oa.get("oa_status"),
                     "radiology": row.get("radiology"), "scope": row.get("scope"),
                     "predicted_type": row.get("predicted_type")},
        }

    def iter_records(self, unit: WorkUnit) -> Iterator[Record | Rejection]:
        for item in unit.items:
            yield from self._records(item, unit.split)

    def _records(self, item: dict, split: str) -> Iterator[Record | Rejection]:
        if "problem" in item:
            yield self.reject(f"{self.name}/{split}/{FIGURES_FILE}#{item['line']}", split, "malformed_row",
                              item["problem"], provenance=[FIGURES_FILE])
            return
        base = f"{self.name}/{split}/{item['stem']}"
        caption, modality, provenance = item["caption"], item["modality"], [FIGURES_FILE, item["figure"]]
        if FIGURE_REF.fullmatch(caption):
            yield from caption_rejections(self, base, split, "caption_empty", f"line {item['line']}",
                                          modality=modality, provenance=provenance)
            return
        try:
            image = decode_file(self.root / item["figure"], source_path=item["figure"])
        except ImageDecodeError as err:
            yield from caption_rejections(self, base, split, err.reason, err.detail,
                                          modality=modality, provenance=provenance)
            return
        yield from caption_records(self, base, split, modality, image, caption, CAPTION_PROMPTS,
                                   provenance=provenance, meta=item["meta"])
