"""A small finished build written in code, in the real output layout (manifest Parquet with the manifest
schema, one WebDataset shard, stats.json, config.resolved.yaml), for the report and audit tests."""

from __future__ import annotations

import io
import json
import tarfile
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from PIL import Image as PILImage

from manifests.schema import MANIFEST_SCHEMA

# (modality, task_family, kept count): 60/30/10 by modality; `interleaved` only once, in mri
LAYOUT = (("chest_xray", "i2t", 40), ("chest_xray", "t2i", 20), ("ct", "i2t", 30), ("mri", "i2t", 9),
          ("mri", "interleaved", 1))


def _png(seed: int) -> bytes:
    pixels = np.random.default_rng(seed).integers(0, 255, size=(32, 40), dtype=np.uint8)
    buffer = io.BytesIO()
    PILImage.fromarray(pixels).save(buffer, format="PNG")
    return buffer.getvalue()


def _add(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    tar.addfile(info, io.BytesIO(data))


def write_build(root: Path) -> Path:
    build = Path(root) / "stage1"
    (build / "manifest").mkdir(parents=True)
    (build / "shards").mkdir()
    rows, n = [], 0
    with tarfile.open(build / "shards" / "stage1-000000.tar", "w") as tar:
        for modality, family, count in LAYOUT:
            for i in range(count):
                n += 1
                rid = f"src{n % 3}/train/{modality}-{family}-{i:03d}"
                key = rid.replace("/", "_")
                role = "out" if family == "t2i" else "in"
                message = [{"from": "human", "value": f"<image>\nDescribe {modality} image {i}."},
                           {"from": "gpt", "value": f"A {modality} image, finding number {i}."}]
                sample = {"id": rid, "modality": modality, "dataset": f"src{n % 3}", "split": "train",
                          "main_task_type": "image_understanding", "sub_task_type": "caption",
                          "input_img": [] if role == "out" else [{"path": "in0.png", "height": 32, "width": 40}],
                          "output_img": [{"path": "out0.png", "height": 32, "width": 40}] if role == "out" else [],
                          "message": message}
                _add(tar, f"{key}.json", json.dumps(sample).encode())
                _add(tar, f"{key}.{role}0.png", _png(n))
                score = 0.5 + (n % 50) / 100
                rows.append({"id": rid, "source": f"src{n % 3}", "dataset": f"src{n % 3}", "split": "train",
                             "modality": modality, "task_family": family, "main_task_type": "image_understanding",
                             "sub_task_type": "caption", "licence": "CC BY 4.0", "access": "open",
                             "status": "kept", "shard": "stage1-000000.tar", "key": key, "width": 40, "height": 32,
                             "text_chars": 30 + i, "align_s": score, "align_m": score / 2, "align_final": score * 1.5,
                             "sample": json.dumps(sample)})
    for i in range(6):  # rejected: two by the adapter, two coarse, two under the cut
        reason = ("missing_file", "missing_file", "image_too_small", "text_too_long",
                  "alignment_below_cut", "alignment_below_cut")[i]
        rows.append({"id": f"src0/train/rejected-{i}", "source": "src0", "dataset": "src0", "split": "train",
                     "modality": "ct", "task_family": "i2t", "licence": "CC BY 4.0", "access": "open",
                     "status": "rejected", "reason": reason, "detail": f"test reason {i}",
                     "align_final": 0.3 + i / 100 if reason == "alignment_below_cut" else None,
                     "align_s": 0.2 if reason == "alignment_below_cut" else None,
                     "align_m": 0.1 if reason == "alignment_below_cut" else None,
                     "sample": json.dumps({"id": f"src0/train/rejected-{i}", "message": [
                         {"from": "human", "value": "What is this?"}, {"from": "gpt", "value": f"rejected {i}"}],
                         "input_img": [{"path": "in0.png"}], "output_img": []})})
    table = pa.Table.from_pylist([{c: r.get(c) for c in MANIFEST_SCHEMA.names} for r in rows], schema=MANIFEST_SCHEMA)
    pq.write_table(table, build / "manifest" / "part-00000.parquet")
    stats = {"kept": n, "rejected": 6, "shards": 1, "alignment_demo_weights": True,
             "alignment_models": {"e5": {"demo": True, "model": "intfloat/e5-large-v2", "path": "/demo/e5"}}}
    (build / "stats.json").write_text(json.dumps(stats))
    (build / "config.resolved.yaml").write_text("name: stage1\nversion: 1\n")
    return build
