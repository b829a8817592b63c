"""Shard bytes saved by `group_questions: per_image` (issue 26) on SLAKE- and PMC-VQA-shaped data.

    python -m pipeline.bench.vqa_grouping [--questions 3000] [--max-turns 8] [--out bench-out/vqa-grouping]

Each dataset is generated in its real layout (sources/slake.py, sources/pmc_vqa.py) with its real shape of
questions per image: SLAKE ~22 (14,028 QA over 642 images; English and Chinese alike), 512 px JPEG slices;
PMC-VQA ~1.6 (227k QA over 149k figures; 1 to 5 per figure here), 480-1024 px JPEG figures. Each is built
twice with `unimed build` (a recipe file per mode, one local Ray for all builds): one sample per question (the
default), then `group_questions: per_image`. Printed per dataset and mode: questions, samples kept, image
members in the shards, shard bytes (stats.json), and grouped / per-question. Storage only: no timings (the
builds share one Ray and the machine may be loaded).
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import shutil
import tarfile
from pathlib import Path

import numpy as np
import yaml

os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

SLAKE_QUESTIONS = (  # (English, Chinese, answer)
    ("What modality is used to take this image?", "这张图片的成像方式是什么?", "CT"),
    ("Which part of the body does this image belong to?", "这张图片属于身体的哪个部位?", "Abdomen"),
    ("Does the picture contain liver?", "图片中包含肝脏吗?", "Yes"),
    ("Where is the abnormality located?", "异常位于哪里?", "Left lobe of the liver"),
    ("How many kidneys are visible in this image?", "图中可以看到几个肾脏?", "2"),
    ("Is this image taken in the transverse plane?", "这张图片是横断面吗?", "Yes"),
    ("Which organ is the largest in this image?", "图中最大的器官是什么?", "Liver"),
    ("What is the main organ system shown?", "主要显示的是哪个器官系统?", "Digestive system"),
)
PMC_QUESTIONS = (  # (question, choices, label)
    ("What imaging modality was used to acquire this figure?", ("MRI", "CT scan", "Ultrasound", "PET"), "B"),
    ("Where is the lesion located in the image?", ("Left lobe", "Right lobe", "Hilum", "Apex"), "A"),
    ("What does the arrow in the figure indicate?", ("A cyst", "A calcification", "A vessel", "A tumour"), "D"),
    ("What staining method was used for this section?", ("H&E", "PAS", "Gram", "Giemsa"), "A"),
    ("What is the approximate size of the mass shown?", ("1 cm", "2 cm", "3 cm", "5 cm"), "C"),
)
PMC_HEADER = ["", "Figure_path", "Question", "Answer", "Choice A", "Choice B", "Choice C", "Choice D", "Answer_label"]


def _jpeg(path: Path, pixels: np.ndarray) -> None:
    from sources.samples.common import write_jpeg

    write_jpeg(path, pixels, quality=90)


def write_slake_shaped(root: Path, questions: int, per_image: int = 22, seed: int = 0) -> tuple[Path, int]:
    """`Slake1.0/` with `questions` train QA rows, `per_image` on each 512 px image (English and Chinese
    alternating, the qid in the text so no two rows are the same sample). Returns (folder, images)."""
    from sources.samples.common import phantom

    rng = np.random.default_rng(seed)
    base = Path(root) / "Slake1.0"
    images = -(-questions // per_image)
    rows = []
    for img_id in range(images):
        _jpeg(base / "imgs" / f"xmlab{img_id}" / "source.jpg", phantom(rng, 512, 512, 1 if img_id % 3 else 3))
    for qid in range(questions):
        img_id, turn = divmod(qid, per_image)
        english, chinese, answer = SLAKE_QUESTIONS[turn % len(SLAKE_QUESTIONS)]
        language = "zh" if turn % 2 else "en"
        rows.append({"img_id": img_id, "img_name": f"xmlab{img_id}/source.jpg",
                     "question": f"{chinese if language == 'zh' else english} ({qid})", "answer": answer,
                     "q_lang": language, "location": "Abdomen", "modality": "CT", "answer_type": "OPEN",
                     "base_type": "vqa", "content_type": "Organ", "qid": qid})
    (base / "train.json").write_text(json.dumps(rows, ensure_ascii=False), encoding="utf-8")
    return base, images


def write_pmc_vqa_shaped(root: Path, questions: int, seed: int = 0) -> tuple[Path, int]:
    """`PMC-VQA/` with `questions` rows of train.csv over figures of 1-5 questions each (mean ~1.6, as PMC-VQA's
    227k over 149k), figures 480-1024 px RGB JPEG under images/figures/. Returns (folder, figures)."""
    from sources.samples.common import phantom

    rng = np.random.default_rng(seed)
    base = Path(root) / "PMC-VQA"
    sides = ((480, 640), (600, 800), (768, 1024), (512, 512))
    rows, figure = [], 0
    while len(rows) < questions:
        name = f"PMC{100000 + figure}_F{figure % 7 + 1}.jpg"
        height, width = sides[figure % len(sides)]
        _jpeg(base / "images" / "figures" / name, phantom(rng, height, width, 3))
        for _ in range(min(int(rng.choice([1, 2, 3, 4, 5], p=[0.6, 0.25, 0.1, 0.03, 0.02])), questions - len(rows))):
            question, choices, label = PMC_QUESTIONS[len(rows) % len(PMC_QUESTIONS)]
            rows.append([str(len(rows)), name, f"{question} (row {len(rows)})", choices["ABCD".index(label)],
                         *(f"{letter}:{text}" for letter, text in zip("ABCD", choices)), label])
        figure += 1
    base.mkdir(parents=True, exist_ok=True)
    with open(base / "train.csv", "w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(PMC_HEADER)
        writer.writerows(rows)
    return base, figure


def recipe(name: str, source: str, grouping: dict | None) -> dict:
    """A one-source recipe: the paper's filters, no language rule (SLAKE is bilingual), options as given."""
    return {"name": name, "sources": [{"name": source, "splits": ["train"], "options": dict(grouping or {})}],
            "filters": {"language": None}, "shards": {"max_samples": 1000}}


def shard_counts(build_dir: Path) -> dict[str, int]:
    """Samples (json members), image members and bytes of a build's shards."""
    from manifests.shards import list_shards

    samples = images = size = 0
    for path in list_shards(build_dir):
        size += path.stat().st_size
        with tarfile.open(path) as tar:
            for member in tar:
                samples += member.name.endswith(".json")
                images += member.name.endswith((".jpg", ".png"))
    return {"samples": samples, "images": images, "shard_bytes": size}


def build_both(root: Path, source: str, max_turns: int) -> dict[str, dict[str, int]]:
    """Build `source` from `root` per question and per image with the CLI; the shard counts of each."""
    from pipeline.cli import main

    results = {}
    for mode, options in (("per_question", None), ("per_image", {"group_questions": "per_image",
                                                                  "max_turns": max_turns})):
        name = f"{source}-{mode}"
        path = root / f"{name}.yaml"
        path.write_text(yaml.safe_dump(recipe(name, source, options)), encoding="utf-8")
        code = main(["build", "--recipe", str(path), "--sources-root", str(root / "sources"),
                     "--out", str(root / "builds"), "--quiet"])
        if code != 0:
            raise SystemExit(f"unimed build of {name} exited {code}")
        results[mode] = shard_counts(root / "builds" / name)
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--questions", type=int, default=3000, help="questions per dataset (default 3000)")
    parser.add_argument("--max-turns", type=int, default=8, help="max_turns of the grouped builds (default 8)")
    parser.add_argument("--out", default="bench-out/vqa-grouping", help="work folder (cleared first)")
    args = parser.parse_args(argv)
    root = Path(args.out).resolve()
    shutil.rmtree(root, ignore_errors=True)
    (root / "sources").mkdir(parents=True)
    shapes = {"slake": write_slake_shaped(root / "sources", args.questions),
              "pmc_vqa": write_pmc_vqa_shaped(root / "sources", args.questions)}
    lines = [f"{'dataset':<9} {'questions':>9} {'images':>6} {'mode':<13} {'samples':>7} {'image members':>13} "
             f"{'shard MB':>9} {'vs per question':>15}"]
    for source, (_, images) in shapes.items():
        counts = build_both(root, source, args.max_turns)
        base = counts["per_question"]["shard_bytes"]
        for mode, found in counts.items():
            lines.append(f"{source:<9} {args.questions:>9} {images:>6} {mode:<13} {found['samples']:>7} "
                         f"{found['images']:>13} {found['shard_bytes'] / 1e6:>9.2f} "
                         f"{found['shard_bytes'] / base:>14.3f}x")
    print(f"\nShards with and without group_questions: per_image (max_turns {args.max_turns}):")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
