"""GMAI-VL-5.5M sample tree: the HF repo's two parts with their JSONL annotations and the OpenSource image zips.

Quirks in the tree: zip members without the JSONL path's leading `images/`, split over two chunks; a 16-bit
grey TIFF (crc100k histopathology, as in the authors' example) and PNGs; an `image` given as a list of one and as a
list of two (a caption over two images); a row whose image is in no chunk; a blank line and a line that is not
JSON; a Chinese caption; a chest x-ray; Instrunct and Percept rows (the latter with `<ref>`/`<box>` grounding
text); a text-only file (not read); a NonOpenSource caption row (no image in the release)."""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
from PIL import Image as PILImage

from sources.samples.common import phantom, rng_for

OPEN, CLOSED = "GMAI-VL-5.5M-OpenSource", "GMAI-VL-5.5M-NonOpenSource"
# member path (= JSONL path without images/) -> (height, width, channels, format, chunk)
IMAGES = {
    "2d/cls/histopathology/crc100k/images/NORM/NORM-AAAWMSFI.tif": (224, 224, 1, "TIFF16", 1),
    "2d/seg/CT/AMOS_CT/images/amos_0001_slice_045.png": (256, 256, 1, "PNG", 1),
    "2d/cls/X-ray/ChestXray-NIHCC/images/00000013_005.png": (256, 256, 1, "PNG", 2),
    "2d/cls/dermoscopy/PAD-UFES-20/images/PAT_46_881_939.png": (200, 200, 3, "PNG", 2),
    "2d/seg/MRI/BraTS2021/images/BraTS2021_00000_t1_s077.png": (240, 240, 1, "PNG", 2),
}


def _turns(*values: str) -> list[dict]:
    return [{"from": "human" if i % 2 == 0 else "gpt", "value": value} for i, value in enumerate(values)]


def _row(image, *turns: str, width: int = 224, height: int = 224) -> dict:
    first = image[0] if isinstance(image, list) else image
    return {"image": image, "conversations": _turns(*turns), "width": width, "height": height,
            "id": first.removeprefix("images/").replace("/", "#")}


ASK = "<image>\nCould you kindly generate a caption that gives an overview of the medical image?"
TIF, CT, CXR, DERM, MR = (f"images/{path}" for path in IMAGES)
CAPTION = [
    _row(TIF, ASK, "This histopathological image shows colonic mucosa with regular glands lined by columnar "
                   "epithelium and goblet cells; the stroma is unremarkable."),
    _row([CT], ASK, "An axial abdominal CT slice at the level of the kidneys; liver, spleen and both kidneys are "
                    "visible with normal attenuation.", width=256, height=256),
    _row([CT, MR], "<image>\n<image>\nDescribe both images.", "A CT and an MRI slice of different patients."),
    _row("images/2d/cls/fundus/APTOS/images/missing_0001.png", ASK, "A colour fundus photograph of the right eye."),
    None,  # a blank line
    "{\"image\": \"images/2d/cls/CT/broken.png\", \"conversations\": [",  # not JSON
    _row(DERM, "<image>\n请描述这张图像。", "这是一张皮肤镜图像，显示色素性病变，边界不规则。", width=200, height=200),
    _row(CXR, ASK, "A frontal chest radiograph with a small left pleural effusion and clear right lung.",
         width=256, height=256),
]
INSTRUCT = [
    _row(CXR, "What abnormality is seen?\n<image>", "A small left pleural effusion.", "Is the heart enlarged?",
         "No.", width=256, height=256),
    _row(MR, "<image>\nWhich MRI sequence is this?", "T1-weighted.", width=240, height=240),
]
PERCEPT = [
    _row(CT, "<image>\nPlease locate the <ref>liver</ref> in the image.",
         "<ref>liver</ref><box>[[120, 80, 230, 190]]</box>", width=256, height=256),
]
TEXT_SINGLE = [{"id": "text_0", "conversations": _turns("What is the normal range of serum sodium?",
                                                        "About 135 to 145 mmol/L.")}]
NON_OPEN = [_row("images/2d/cls/CT/LIDC-IDRI/images/LIDC-IDRI-0001_slice_070.png", ASK,
                 "An axial chest CT slice with a small nodule in the right upper lobe.")]


def _jsonl(path: Path, rows: list) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = ["" if row is None else row if isinstance(row, str) else json.dumps(row, ensure_ascii=False)
             for row in rows]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def _encoded(rng, height: int, width: int, channels: int, kind: str) -> bytes:
    buffer = io.BytesIO()
    if kind == "TIFF16":
        pixels = phantom(rng, height, width, channels, dtype=np.uint16)
        PILImage.fromarray(pixels).save(buffer, format="TIFF")
    else:
        PILImage.fromarray(phantom(rng, height, width, channels)).save(buffer, format=kind)
    return buffer.getvalue()


def write(root: Path) -> Path:
    from sources.samples.hub import zip_bytes

    base = Path(root) / "GMAI-VL-5.5M"
    (base / OPEN / "zips").mkdir(parents=True, exist_ok=True)
    (base / "README.md").write_text("---\nlicense: other\n---\n# GMAI-VL-5.5M (sample)\n", encoding="utf-8")
    (base / OPEN / "README.md").write_text("# GMAI-VL-5.5M OpenSource (sample)\n", encoding="utf-8")
    _jsonl(base / OPEN / "annotations" / "GMAI-MM-Caption-1.7M.jsonl", CAPTION)
    _jsonl(base / OPEN / "annotations" / "GMAI-MM-Instrunct-0.9M.jsonl", INSTRUCT)
    _jsonl(base / OPEN / "annotations" / "GMAI-MM-Percept-1.3M.jsonl", PERCEPT)
    _jsonl(base / OPEN / "annotations" / "GMAI_Text_Single_1M.jsonl", TEXT_SINGLE)
    _jsonl(base / CLOSED / "annotations" / "GMAI-MM-Caption-1.7M.jsonl", NON_OPEN)
    rng = rng_for("gmai_vl")
    chunks: dict[int, dict[str, bytes]] = {}
    for member, (height, width, channels, kind, chunk) in IMAGES.items():
        chunks.setdefault(chunk, {})[member] = _encoded(rng, height, width, channels, kind)
    for chunk, members in chunks.items():
        (base / OPEN / "zips" / f"images_chunk_{chunk:03d}.zip").write_bytes(zip_bytes(members))
    return base


HUB_REPO = "General-Medical-AI/GMAI-VL-5.5M"


def write_hub(root: Path) -> Path:
    """`General-Medical-AI/GMAI-VL-5.5M` in a Hub cache: the same files (the zips stay packed)."""
    from sources.samples.hub import original_files, write_snapshot

    return write_snapshot(root, HUB_REPO, original_files(write))
