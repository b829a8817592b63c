"""Quilt-1M sample tree: `quilt_1M_lookup.csv` as pandas writes it (unnamed index column), rows from the quilt,
openpath, pubmed and laion subsets, train and val splits, Python-literal list columns (one blank, one not a
literal), a blank magnification, two captions for one image, a caption with line breaks, an empty caption, a
missing image and an image below 128 px, under `quilt_1m/`."""

from __future__ import annotations

import csv
from pathlib import Path

from sources.samples.common import phantom, rng_for, write_jpeg

HEADER = ["", "caption", "image_path", "subset", "split", "pathology", "roi_text", "noisy_text", "corrected_text",
          "med_umls_ids", "magnification", "height", "width"]
VIDEO_IMAGE = "0-RuE0Ldx6U_image_ffbf02cb-a316-4b76-9810-5f7d41d73842.jpg"
ROWS = [
    ["0", "Sheets of atypical melanocytes with prominent nucleoli in the dermis.", VIDEO_IMAGE, "quilt", "train",
     "['Dermatopathology']", "['melanocytes']", "", "", "['C0025201', 'C0012640']", "20.0", "256", "320"],
    ["1", "Low power view of the same lesion showing\nan asymmetric silhouette.", VIDEO_IMAGE, "quilt", "train",
     "['Dermatopathology']", "", "", "", "", "", "256", "320"],
    ["2", "Colon adenocarcinoma with cribriform glands, H&E.", "00001000010913.jpg", "openpath", "val",
     "", "", "", "", "", "", "240", "240"],
    ["3", "Renal biopsy, PAS stain, mesangial expansion.", "PMC3000000_F1_1.jpg", "pubmed", "train",
     "not a list", "", "", "", "", "40.0", "100", "120"],
    ["4", "   ", "laion_000123.jpg", "laion", "train", "", "", "", "", "", "", "300", "300"],
    ["5", "Granulomas with multinucleated giant cells in a lymph node.", "missing_0001.jpg", "quilt", "train",
     "['Hematopathology']", "", "", "", "", "10.0", "256", "256"],
]
IMAGES = {VIDEO_IMAGE: (256, 320, 3), "00001000010913.jpg": (240, 240, 3), "PMC3000000_F1_1.jpg": (100, 120, 3),
          "laion_000123.jpg": (300, 300, 3)}


def write(root: Path) -> Path:
    base = Path(root) / "quilt"
    rng = rng_for("quilt_1m")
    for name, size in IMAGES.items():
        write_jpeg(base / "quilt_1m" / name, phantom(rng, *size))
    base.mkdir(parents=True, exist_ok=True)
    with open(base / "quilt_1M_lookup.csv", "w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(HEADER)
        writer.writerows(ROWS)
    return base


HUB_REPO = "wisdomik/Quilt-1M"


def write_hub(root: Path) -> Path:
    """`wisdomik/Quilt-1M` (gated): the lookup CSV and the images in `images_part_<i>_resized.zip`, kept packed in
    the cache; members matched by basename (quilt_1m.md). The sample's images are the original files."""
    from sources.samples.hub import original_files, write_snapshot, zip_bytes

    files = original_files(write)
    images = sorted(name for name in files if name.startswith("quilt_1m/"))
    out = {name: data for name, data in files.items() if not name.startswith("quilt_1m/")}
    out["images_part_1_resized.zip"] = zip_bytes({n.removeprefix("quilt_1m/"): files[n] for n in images[::2]})
    out["images_part_2_resized.zip"] = zip_bytes({n.removeprefix("quilt_1m/"): files[n] for n in images[1::2]})
    return write_snapshot(root, HUB_REPO, out)
