"""ROCOv2 sample tree: the Zenodo layout with the zips unpacked; CT, MRI, ultrasound (its modality CUI only
in the manual concepts file), chest x-ray by CUI and by caption word, a knee x-ray, angiography, PET-CT, a
French caption, a caption with a leading space and double spaces, figure-reference-only captions, a missing
image, an image below 128 px, an ID without concepts, headers with stray spaces and a BOM, and a licence file
with and without a CC token in the attribution."""

from __future__ import annotations

import csv
from pathlib import Path

from sources.samples.common import phantom, rng_for, write_jpeg

SMALL = (96, 160, 1)  # short side below 128 px
ROWS = {
    # prefix: [(number, caption, CUIs (None: no concepts row), manual CUIs, (height, width, channels) or None)]
    "train": [
        (1, "Head CT demonstrating left parotiditis.", "C0040405;C0037303", "", (192, 256, 1)),
        (2, "  Axial T2-weighted  MRI of the brain showing a  hyperintense lesion.", "C0024485", "", (192, 256, 1)),
        (3, "Transabdominal ultrasound showing a gallbladder stone.", "C0000726", "C0041618", (192, 256, 1)),
        (4, "Frontal radiograph showing right lower lobe consolidation.", "C1306645;C0817096", "", (256, 192, 1)),
        (5, "Plain radiograph of the left knee showing a fracture.", "C1306645", "", (192, 256, 1)),
        (6, "Fig. 3b", "C0040405", "", (192, 256, 1)),
        (7, "CT of the pelvis showing a presacral mass.", "C0040405", "", None),
    ],
    "valid": [
        (1, "Tomodensitométrie abdominale montrant une masse hépatique.", "C0040405;C0000726", "", (192, 256, 3)),
        (2, "Coronary angiogram showing a stenosis of the right coronary artery.", "C0002978", "", SMALL),
        (3, "(A)", "C1306645;C0817096", "", (192, 256, 1)),
    ],
    "test": [
        (1, "PET-CT showing FDG uptake in a mediastinal lymph node.", "C0032743;C0040405", "", (192, 256, 3)),
        (2, "Lateral chest radiograph.", "C1306645", "", (192, 256, 1)),
        (3, "Doppler image of the portal vein.", None, "", (192, 256, 3)),
    ],
}
CUI_NAMES = {
    "C0000726": "Abdomen", "C0002978": "Angiogram", "C0024485": "Magnetic Resonance Imaging",
    "C0032743": "Positron-Emission Tomography", "C0037303": "Bone structure of cranium",
    "C0040405": "X-Ray Computed Tomography", "C0041618": "Ultrasonography", "C0817096": "Chest",
    "C1306645": "Plain x-ray",
}
LICENCES = [
    # (ID, PMCID, Attribution); IDs without a row have no known licence
    ("ROCOv2_2023_train_000001", "PMC4083729", "Smith J, et al. J Radiol Case Rep. 2014. CC BY 4.0"),
    ("ROCOv2_2023_train_000002", "PMC5012345", "Doe A, et al. BMC Med Imaging. 2016. CC BY-NC-SA 4.0"),
    ("ROCOv2_2023_valid_000001", "PMC6123456", "Martin L, et al. Radiol Case Rep. 2018."),
]


def _write_csv(path: Path, header: list[str], rows: list[list[str]], bom: bool = False) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding="utf-8-sig" if bom else "utf-8", newline="") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(header)
        writer.writerows(rows)


def write(root: Path) -> Path:
    base = Path(root) / "ROCOv2"
    rng = rng_for("rocov2")
    for prefix, rows in ROWS.items():
        ids = [(f"ROCOv2_2023_{prefix}_{number:06d}", *rest) for number, *rest in rows]
        # Headers as some exports have them: a stray space (train) and a BOM (valid).
        _write_csv(base / f"{prefix}_captions.csv", ["ID", " Caption"] if prefix == "train" else ["ID", "Caption"],
                   [[image_id, caption] for image_id, caption, *_ in ids], bom=prefix == "valid")
        _write_csv(base / f"{prefix}_concepts.csv", ["ID ", "CUIs"],
                   [[image_id, cuis] for image_id, _, cuis, *_ in ids if cuis is not None])
        _write_csv(base / f"{prefix}_concepts_manual.csv", ["ID", "CUIs"],
                   [[image_id, manual] for image_id, _, _, manual, _ in ids if manual])
        for image_id, *_, size in ids:
            if size is not None:
                write_jpeg(base / prefix / f"{image_id}.jpg", phantom(rng, *size))
    _write_csv(base / "cui_mapping.csv", ["CUI", "Canonical name"], [list(item) for item in CUI_NAMES.items()])
    _write_csv(base / "license_information.csv", ["ID", "PMCID", "Attribution", "Link"],
               [[image_id, pmcid, attribution, f"https://www.ncbi.nlm.nih.gov/pmc/articles/{pmcid}/"]
                for image_id, pmcid, attribution in LICENCES])
    return base


HUB_REPO = "eltorio/ROCOv2-radiology"


def write_hub(root: Path) -> Path:
    """The same items as `eltorio/ROCOv2-radiology` holds them (generate.ipynb): ID -> image_id, Caption ->
    caption, the JPEG decoded and saved as PNG, cui = the manual CUIs split on ';' (empty here when the sample
    has no manual row); a row without an image file could not be opened and is absent."""
    import io

    import pyarrow as pa
    from PIL import Image as PILImage

    from sources.samples.hub import IMAGE_TYPE, image_cell, original_files, parquet_bytes, write_snapshot

    files = original_files(write)
    schema = pa.schema([("image", IMAGE_TYPE), ("image_id", pa.string()), ("caption", pa.string()),
                        ("cui", pa.list_(pa.string()))])
    out = {}
    for prefix, hub_split in (("train", "train"), ("valid", "validation"), ("test", "test")):
        rows = []
        for number, caption, _cuis, manual, size in ROWS[prefix]:
            image_id = f"ROCOv2_2023_{prefix}_{number:06d}"
            if size is None:
                continue
            png = io.BytesIO()
            with PILImage.open(io.BytesIO(files[f"{prefix}/{image_id}.jpg"])) as image:
                image.save(png, format="PNG")
            rows.append({"image": image_cell(png.getvalue()), "image_id": image_id, "caption": caption,
                         "cui": [c for c in manual.split(";") if c]})
        out[f"data/{hub_split}-00000-of-00001.parquet"] = parquet_bytes(rows, schema)
    return write_snapshot(root, HUB_REPO, out)
