"""InternVL-Domain-Adaptation-Data sample tree: the medical JSONL with its images unpacked under
`images/medical_images/` as the InternVL docs direct; the meta list (general-domain entries and the medical one,
not read) and another domain's JSONL (not read).

Quirks in the tree: a one-image row, a row whose `image` is a list of two, a row whose image path already starts
with `medical_images/` (relative to `images/`), a chest x-ray path, a missing image, a line that is not JSON,
a conversation ending on a human turn, a row without an image. `write_hub` keeps the images as the Hub has them:
a split `medical_images.tar.gz_part_aa` / `_ab` (the same files, packed)."""

from __future__ import annotations

import io
import json
import tarfile
from pathlib import Path

from PIL import Image as PILImage

from sources.samples.common import phantom, rng_for

BASE = "InternVL-Domain-Adaptation-Data"
ANNOTATION = "train_data/medical_sft_sample500k.jsonl"
# path under images/medical_images/ -> (height, width, channels)
IMAGES = {"Chest-Xray/pneumonia/person1_virus_6.png": (256, 256, 1),
          "Fundus/APTOS/0a4e1a29ffff.png": (224, 224, 3),
          "Fundus/APTOS/0a61bddab956.png": (224, 224, 3),
          "CT/KiTS/case_00012_slice_120.png": (256, 256, 1)}


def _turns(*values: str) -> list[dict]:
    return [{"from": "human" if i % 2 == 0 else "gpt", "value": value} for i, value in enumerate(values)]


ROWS = [
    {"id": 0, "image": "Chest-Xray/pneumonia/person1_virus_6.png", "width": 256, "height": 256,
     "conversations": _turns("<image>\nWhat disease does this chest radiograph show?\nA. Normal\nB. Pneumonia",
                             "B. Pneumonia")},
    {"id": 1, "image": ["Fundus/APTOS/0a4e1a29ffff.png", "Fundus/APTOS/0a61bddab956.png"],
     "conversations": _turns("Image-1: <image>\nImage-2: <image>\nWhich eye shows more severe retinopathy?",
                             "The second image shows more haemorrhages: its retinopathy is more severe.")},
    {"id": 2, "image": "medical_images/CT/KiTS/case_00012_slice_120.png",
     "conversations": _turns("<image>\nWhich organ is outlined?", "The right kidney.",
                             "Is a tumour visible?", "Yes, an exophytic mass on the lower pole.")},
    {"id": 3, "image": "Dermoscopy/ISIC/ISIC_0000000.png",
     "conversations": _turns("<image>\nIs this lesion melanoma?", "No.")},
    "{\"id\": 4, \"image\": \"CT/broken.png\"",
    {"id": 5, "image": "CT/KiTS/case_00012_slice_120.png", "conversations": _turns("<image>\nDescribe it.")},
    {"id": 6, "conversations": _turns("What is the usual dose of aspirin?", "75 to 100 mg a day.")},
]
META = {
    "sharegpt4v_instruct_gpt4-vision_cap100k": {"root": "playground/data/", "annotation":
                                                "playground/opensource/sharegpt4v_instruct_gpt4-vision_cap100k.jsonl",
                                                "data_augment": False, "repeat_time": 0.3, "length": 102025},
    "medical_sft_sample500k": {"root": "InternVL-Domain-Adaptation-Data/images/medical_images/",
                               "annotation": f"InternVL-Domain-Adaptation-Data/{ANNOTATION}", "data_augment": False,
                               "repeat_time": 1, "length": 500000},
}


def _png(rng, height: int, width: int, channels: int) -> bytes:
    buffer = io.BytesIO()
    PILImage.fromarray(phantom(rng, height, width, channels)).save(buffer, format="PNG")
    return buffer.getvalue()


def _annotations() -> dict[str, bytes]:
    lines = [row if isinstance(row, str) else json.dumps(row) for row in ROWS]
    other = json.dumps({"id": 0, "image": "GeoChat/images/P0001.png",
                        "conversations": _turns("<image>\nHow many planes?", "Three.")})
    return {ANNOTATION: ("\n".join(lines) + "\n").encode(), "train_data/geochat_instruct.jsonl": (other + "\n").encode(),
            "train_meta/internvl_1_2_finetune_medical.json": json.dumps(META, indent=2).encode(),
            "README.md": b"---\nlicense: apache-2.0\n---\n"}


def _images() -> dict[str, bytes]:
    rng = rng_for("internvl_medical")
    return {f"images/medical_images/{path}": _png(rng, *size) for path, size in IMAGES.items()}


def write(root: Path) -> Path:
    base = Path(root) / BASE
    for name, data in {**_annotations(), **_images()}.items():
        (base / name).parent.mkdir(parents=True, exist_ok=True)
        (base / name).write_bytes(data)
    return base


def split_archive(images: dict[str, bytes], parts: int = 2) -> dict[str, bytes]:
    """`medical_images.tar.gz_part_aa`, `_ab`, ...: a tar.gz of `medical_images/...` cut like `split -b`."""
    import gzip

    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as archive:
        for name, data in sorted(images.items()):
            info = tarfile.TarInfo(name.removeprefix("images/"))
            info.size, info.mtime = len(data), 0
            archive.addfile(info, io.BytesIO(data))
    packed = gzip.compress(buffer.getvalue(), mtime=0)
    size = -(-len(packed) // parts)
    return {f"images/medical_images.tar.gz_part_a{chr(ord('a') + i)}": packed[i * size:(i + 1) * size]
            for i in range(parts)}


HUB_REPO = "OpenGVLab/InternVL-Domain-Adaptation-Data"


def write_hub(root: Path) -> Path:
    """The Hub cache snapshot: annotations as above, images only as the split archive (not unpacked)."""
    from sources.samples.hub import write_snapshot

    return write_snapshot(root, HUB_REPO, {**_annotations(), **split_archive(_images())})
