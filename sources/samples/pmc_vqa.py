"""PMC-VQA sample tree: v1 and v2 CSVs with the real spaced column names and "A:" prefixed choices (one with a
leading space, one "C." style), an index column in v1, the misspelled `Anwser` column and a `Caption` column in
v2, a row whose label names an empty option (falls back to the answer column), a row without question, a
missing image, an image below 128 px, an image directly under images/, and test_clean.csv (not read)."""

from __future__ import annotations

import csv
from pathlib import Path

from sources.samples.common import phantom, rng_for, write_jpeg

V1_HEADER = ["", "Figure_path", "Question", "Answer", "Choice A", "Choice B", "Choice C", "Choice D", "Answer_label"]
V2_HEADER = ["Figure_path", "Caption", "Question", "Anwser", "Choice A", "Choice B", "Choice C", "Choice D",
             "Answer_label"]
TRAIN = [
    ["0", "PMC1064097_F1.jpg", "What uptake pattern is seen in the thyroid?", "Focal uptake pattern",
     "A:Diffuse uptake pattern", "B:Focal uptake pattern", "C:No uptake", "D:Peripheral uptake", "B"],
    ["1", "PMC212319_Fig3_4.jpg", "Which imaging modality was used?", "CT scan",
     " A:MRI", " B:Ultrasound", " C:CT scan", " D:PET", "C"],
    ["2", "PMC555555_F2.jpg", "What is the size of the lesion?", "2 cm", "A:1 cm", "B:2 cm", "C:3 cm", "D:", "D"],
    ["3", "PMC404040_F9.jpg", "Where is the mass located in the image?", "Left lobe",
     "A:Left lobe", "B:Right lobe", "C:Hilum", "D:Apex", "A"],
    ["4", "PMC100100_F1.jpg", "", "Yes", "A:Yes", "B:No", "C:", "D:", "A"],
]
TEST = [["0", "PMC777777_F3.jpg", "What stain was used?", "H&E", "A:H&E", "B:PAS", "C:Gram", "D:Giemsa", "A"]]
TRAIN_2 = [["PMC1065321_F6.jpg", "Axial CT of the chest.", "What plane is this image acquired in?", "Axial",
            "A:Sagittal", "B:Coronal", "C.Axial", "D:Oblique", "C"]]
IMAGES = {  # path -> (height, width, channels)
    "images/figures/PMC1064097_F1.jpg": (256, 256, 3),
    "images/figures/PMC212319_Fig3_4.jpg": (200, 320, 1),
    "images/figures/PMC555555_F2.jpg": (90, 200, 3),
    "images/PMC777777_F3.jpg": (240, 240, 3),
    "images/figures/PMC100100_F1.jpg": (200, 200, 3),
    "images_2/figures/PMC1065321_F6.jpg": (256, 256, 1),
}


def _write_csv(path: Path, header: list[str], rows: list[list[str]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(header)
        writer.writerows(rows)


def write(root: Path) -> Path:
    base = Path(root) / "PMC-VQA"
    rng = rng_for("pmc_vqa")
    for path, size in IMAGES.items():
        write_jpeg(base / path, phantom(rng, *size))
    _write_csv(base / "train.csv", V1_HEADER, TRAIN)
    _write_csv(base / "test.csv", V1_HEADER, TEST)
    _write_csv(base / "test_clean.csv", V1_HEADER, TEST)
    _write_csv(base / "train_2.csv", V2_HEADER, TRAIN_2)
    return base


HUB_REPO = "xmcmic/PMC-VQA"


def write_hub(root: Path) -> Path:
    """The Hub repo holds the original CSVs and the image zips, kept packed in the cache: `images.zip` with the
    `images/` folder inside [L], `images_2.zip` with members `figures/<Figure_path>` [M] (pmc_vqa.md)."""
    from sources.samples.hub import original_files, write_snapshot, zipped_folders

    files = zipped_folders(original_files(write), {"images": ("images.zip", ""), "images_2": ("images_2.zip", "images_2/")})
    return write_snapshot(root, HUB_REPO, files)
