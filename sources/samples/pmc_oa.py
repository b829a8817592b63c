"""PMC-OA sample tree: the HF layout with images.zip unpacked into its subfigure folder; `pmc_oa.jsonl` with
alignment fields, a caption with extra spaces, a panel-reference-only caption, an empty caption, an image listed
twice, a broken line, a missing image and an image below 128 px; `pmc_oa_beta.jsonl` (not read)."""

from __future__ import annotations

import json
from pathlib import Path

from sources.samples.common import phantom, rng_for, write_jpeg

FOLDER = "caption_T060_filtered_top4_sep_v0_subfigures"
IMAGES = {"PMC212319_Fig3_4.jpg": (256, 256, 3), "PMC1064097_F1_1.jpg": (200, 280, 1),
          "PMC3000000_F2_2.jpg": (100, 140, 3), "PMC4000000_F5_1.jpg": (224, 224, 3)}
LINES = [
    {"image": "PMC212319_Fig3_4.jpg", "caption": "Immunofluorescence of HeLa cells showing  nuclear staining.",
     "alignment_type": "ours", "alignment_score": 0.9},
    {"image": "PMC1064097_F1_1.jpg", "caption": "Axial CT image of the abdomen showing a renal mass."},
    {"image": "PMC3000000_F2_2.jpg", "caption": "Western blot of lysates from treated cells."},
    {"image": "PMC4000000_F5_1.jpg", "caption": "(B)"},
    {"image": "PMC4000000_F5_1.jpg", "caption": "Kaplan-Meier survival curves of both groups."},
    {"image": "PMC5000000_F1_1.jpg", "caption": "Histology of the resected tumour."},
    {"image": "PMC212319_Fig3_4.jpg", "caption": ""},
]


def write(root: Path) -> Path:
    base = Path(root) / "pmc_oa"
    rng = rng_for("pmc_oa")
    for name, size in IMAGES.items():
        write_jpeg(base / FOLDER / name, phantom(rng, *size))
    lines = [json.dumps(line) for line in LINES]
    lines.insert(5, '{"image": "PMC6000000_F1_1.jpg", "caption": "broken')
    (base / "pmc_oa.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    (base / "pmc_oa_beta.jsonl").write_text(json.dumps(LINES[0]) + "\n", encoding="utf-8")
    return base


HUB_REPO = "axiong/pmc_oa"


def write_hub(root: Path) -> Path:
    """`axiong/pmc_oa` holds the original jsonl files and `images.zip`, kept packed in the cache; the zip's inner
    folder is not documented, the sample puts the subfigure folder at its root (pmc_oa.md)."""
    from sources.samples.hub import original_files, write_snapshot, zipped_folders

    return write_snapshot(root, HUB_REPO, zipped_folders(original_files(write), {FOLDER: ("images.zip", "")}))
