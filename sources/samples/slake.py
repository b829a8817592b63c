"""SLAKE 1.0 sample tree: split JSONs (one named `validation.json`, as the HF mirror does), en and zh rows
of one image, a numeric answer, a row whose image is missing, one image below 128 px, KG/ and mask.txt."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from sources.samples.common import phantom, rng_for, write_jpeg, write_json, write_png

QUESTIONS = [
    # (img_id, qid, lang, question, answer, modality, location)
    (0, 0, "en", "What modality is used to take this image?", "MRI", "MRI", "Brain"),
    (0, 1, "zh", "这张图片的成像方式是什么?", "MRI", "MRI", "Brain"),
    (0, 2, "en", "How many kidneys are visible in this image?", 2, "MRI", "Brain"),
    (1, 3, "en", "Which organ is abnormal, heart or lung?", "Lung", "X-Ray", "Chest_lung"),
    (2, 4, "en", "Where is the liver located in this image?", "Left of the image", "CT", "Abdomen"),
    (3, 5, "en", "Is this image of the abdomen small?", "Yes", "CT", "Abdomen"),
    (9, 6, "en", "Does this image show a missing file?", "No", "CT", "Abdomen"),
]


def write(root: Path) -> Path:
    base = Path(root) / "Slake1.0"
    rng = rng_for("slake")
    sizes = {0: (256, 256, 1), 1: (320, 288, 1), 2: (256, 240, 3), 3: (96, 96, 1)}  # xmlab3 is below 128 px
    for img_id, (height, width, channels) in sizes.items():
        folder = base / "imgs" / f"xmlab{img_id}"
        write_jpeg(folder / "source.jpg", phantom(rng, height, width, channels))
        write_png(folder / "mask.png", (phantom(rng, height, width) > 128).astype(np.uint8))
        write_json(folder / "detection.json", [{"Liver": [10, 10, 40, 40]}])
        write_json(folder / "question.json", [])
    rows = []
    for img_id, qid, lang, question, answer, modality, location in QUESTIONS:
        row = {"img_id": img_id, "img_name": f"xmlab{img_id}/source.jpg", "question": question,
               "answer": answer, "q_lang": lang, "location": location, "modality": modality,
               "answer_type": "OPEN", "base_type": "vqa", "content_type": "Modality", "triple": ["vhead", "_", "_"],
               "qid": qid}
        rows.append(row)
    write_json(base / "train.json", rows[:5] + rows[6:])
    # The HF mirror's name for the validation file; key order differs from train.json.
    write_json(base / "validation.json", [{"qid": 5, **{k: v for k, v in rows[5].items() if k != "qid"}}])
    write_json(base / "test.json", [])
    (base / "KG").mkdir(parents=True, exist_ok=True)
    (base / "KG" / "en_organ.csv").write_text("organ#attribute\nliver#digestion\n", encoding="utf-8")
    (base / "mask.txt").write_text("1:Liver\n2:Kidney\n", encoding="utf-8")
    return base


HUB_REPO = "BoKelvin/SLAKE"


def write_hub(root: Path) -> Path:
    """`BoKelvin/SLAKE` holds the official files with the image and KG folders zipped (`imgs.zip` with the
    `imgs/` folder inside [L], `KG.zip`); the cache keeps them packed (slake.md)."""
    from sources.samples.hub import original_files, write_snapshot, zipped_folders

    files = zipped_folders(original_files(write), {"imgs": ("imgs.zip", ""), "KG": ("KG.zip", "")})
    return write_snapshot(root, HUB_REPO, files)
