"""PathVQA sample tree: the `pvqa` layout with pickled QA lists for train, val and test (the pickles hold only
lists, dicts and strings, as the real ones do), a yes/no and an open answer, an answer with extra spaces,
an empty answer, a row whose image is missing, an image below 128 px, and the preprocessed side pickles."""

from __future__ import annotations

import pickle
from pathlib import Path

from sources.samples.common import phantom, rng_for, write_jpeg

IMAGES = {
    "train": {"train_0000": (256, 256, 3), "train_0001": (200, 300, 3)},
    "val": {"val_0000": (240, 320, 3)},
    "test": {"test_0000": (100, 110, 3)},
}
ROWS = {
    "train": [("train_0000", "Does this image show the liver with fatty change?", "yes"),
              ("train_0001", "What is present in the  lumen?", " thrombus "),
              ("train_0000", "Where are these cells located?", ""),
              ("train_0042", "Is the image file present here?", "no")],
    "val": [("val_0000", "How is the epithelium arranged?", "in glands")],
    "test": [("test_0000", "Is this a small histology image?", "yes")],
}


def write(root: Path) -> Path:
    base = Path(root) / "pvqa"
    rng = rng_for("pathvqa")
    for folder, images in IMAGES.items():
        for name, size in images.items():
            write_jpeg(base / "images" / folder / f"{name}.jpg", phantom(rng, *size))
    for folder, rows in ROWS.items():
        path = base / "qas" / folder / f"{folder}_qa.pkl"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(pickle.dumps([{"image": image, "question": question, "answer": answer}
                                       for image, question, answer in rows], protocol=4))
    (base / "qas" / "ans2label.pkl").write_bytes(pickle.dumps({"yes": 0, "no": 1}, protocol=4))
    return base


HUB_REPO = "flaviagiammarino/path-vqa"


def write_hub(root: Path) -> Path:
    """The same rows as `flaviagiammarino/path-vqa` holds them (scripts/processing.py): per split, duplicates
    dropped, texts lower-cased with runs of spaces collapsed, image files copied byte for byte and embedded;
    split `val` is named `validation`; a row whose image file is missing cannot be copied and is absent."""
    import re

    import pyarrow as pa

    from sources.samples.hub import IMAGE_TYPE, image_cell, original_files, parquet_bytes, write_snapshot

    def f(value) -> str:
        return re.sub(" +", " ", str(value).lower()).replace(" ?", "?").strip()

    files = original_files(write)
    schema = pa.schema([("image", IMAGE_TYPE), ("question", pa.string()), ("answer", pa.string())])
    out = {}
    for folder, hub_split in (("train", "train"), ("val", "validation"), ("test", "test")):
        rows, seen = [], set()
        for image, question, answer in ROWS[folder]:
            data = files.get(f"images/{folder}/{image}.jpg")
            if data is None or (image, question, answer) in seen:
                continue
            seen.add((image, question, answer))
            rows.append({"image": image_cell(data, f"img_{len(rows)}.jpg"), "question": f(question), "answer": f(answer)})
        out[f"data/{hub_split}-00000-of-00001-{hashlib_tag(hub_split)}.parquet"] = parquet_bytes(rows, schema)
    return write_snapshot(root, HUB_REPO, out)


def hashlib_tag(name: str) -> str:
    import hashlib

    return hashlib.sha256(name.encode()).hexdigest()[:16]
