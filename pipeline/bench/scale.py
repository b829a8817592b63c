"""Scale benchmark (issue 26): every command a user runs, at two corpus sizes, against the issue's goals.

    python -m pipeline.bench.scale [--sizes 40000 400000] [--workdir DIR]

For each size N it generates N records in the real layouts of three sources (`write_corpus`): MedQA text
questions (`data_clean/questions/US/train.jsonl`), PMC-VQA questions over shared figures (`PMC-VQA/train.csv`,
QUESTIONS_PER_FIGURE questions per `images/figures/*.jpg`) and ROCOv2 captioned images (`ROCOv2/train_*.csv`,
`train/*.jpg`; each image is an I2T and a T2I record), 40/40/20 % of the records. Then, as a user types them:

    unimed build --recipe stage1 --sources-root CORPUS --out OUT --quiet     (stage 1, no alignment)
    unimed build ...                                                        (the same: a no-op rerun)
    unimed export --format unimedvl OUT/stage1 --out EXPORT
    unimed release OUT/stage1 --out RELEASE
    unimed report OUT/stage1 --out REPORT
    unimed audit sample OUT/stage1 --n 200 --seed 0

Each command is its own process, timed from its spawn (interpreter start, imports, Ray's start and stop
all count) and metered by pipeline/bench/measure.py: the driver's peak RSS (the command's own process,
its VmHWM: Ray's workers are not the driver) and the summed PSS of its process tree. The build's shards
are counted from its manifest and the files on disk. The benchmark's own clock starts before anything
else (corpus generation included) and its total is printed last. Ray runs locally (RAY_ADDRESS=local),
never on another process's cluster.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

QUESTIONS_PER_FIGURE = 5
SHARES = {"medqa": 0.4, "pmc_vqa": 0.4, "rocov2": 0.2}  # of the records
SIDES = (160, 192, 224, 256)  # figure sides (the recipe's shorter-side floor is 128 px)
STEPS = ("build", "rerun", "export", "release", "report", "audit sample")
ENV = {"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "RAY_USAGE_STATS_ENABLED": "0", "RAY_ADDRESS": "local"}
FINDINGS = ("a hypodense lesion", "a calcified nodule", "a pleural effusion", "an enhancing mass", "a fracture line",
            "a cystic structure", "a wedge-shaped infarct", "diffuse thickening", "a stenosis", "an abscess")
ORGANS = ("liver", "left kidney", "right lung", "spleen", "pancreas", "thyroid", "femur", "brain", "heart", "colon")
PLANES = ("Axial", "Coronal", "Sagittal", "Oblique")
MODALITY_CUIS = (("C0040405", "computed tomography"), ("C0024485", "magnetic resonance image"),
                 ("C0041618", "ultrasound image"), ("C1306645", "plain radiograph"))


def corpus_counts(records: int) -> dict[str, int]:
    """Records per source for a corpus of about `records` (ROCOv2: two records per image, so even)."""
    medqa = round(records * SHARES["medqa"])
    pmc_vqa = round(records * SHARES["pmc_vqa"])
    return {"medqa": medqa, "pmc_vqa": pmc_vqa, "rocov2": 2 * ((records - medqa - pmc_vqa) // 2)}


def _figure(rng: np.random.Generator, index: int, channels: int) -> np.ndarray:
    from sources.samples.common import phantom

    return phantom(rng, SIDES[index % len(SIDES)], SIDES[(index // len(SIDES)) % len(SIDES)], channels)


def _write_csv(path: Path, header: list[str], rows) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(header)
        writer.writerows(rows)


def write_medqa(root: Path, questions: int) -> Path:
    """MedQA's `data_clean/questions/US/train.jsonl`: one five-option vignette per line."""
    folder = root / "data_clean" / "questions" / "US"
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / "train.jsonl", "w", encoding="utf-8") as handle:
        for i in range(questions):
            options = {label: f"{FINDINGS[(i + k) % len(FINDINGS)].split(' ', 1)[1]} of the {ORGANS[k]}"
                       for k, label in enumerate("ABCDE")}
            answer = "ABCDE"[i % 5]
            row = {"question": f"A {20 + i % 60}-year-old patient, case {i}, presents with pain over the "
                               f"{ORGANS[i % len(ORGANS)]} for {1 + i % 14} days. Imaging shows "
                               f"{FINDINGS[i % len(FINDINGS)]}. Which of the following is the most likely diagnosis?",
                   "answer": options[answer], "options": options, "meta_info": "step1", "answer_idx": answer}
            handle.write(json.dumps(row) + "\n")
    return folder


def write_pmc_vqa(root: Path, questions: int, rng: np.random.Generator) -> Path:
    """PMC-VQA's v1 `train.csv` (its spaced column names, "A:" choices, an index column) over
    `images/figures/*.jpg`, QUESTIONS_PER_FIGURE questions per figure."""
    from sources.samples.common import write_jpeg
    from sources.samples.pmc_vqa import V1_HEADER

    base = root / "PMC-VQA"
    rows = []
    for figure in range(-(-questions // QUESTIONS_PER_FIGURE)):
        name = f"PMC{1000000 + figure}_F{1 + figure % 7}.jpg"
        write_jpeg(base / "images" / "figures" / name, _figure(rng, figure, 3 if figure % 3 else 1))
        for k in range(min(QUESTIONS_PER_FIGURE, questions - figure * QUESTIONS_PER_FIGURE)):
            i = figure * QUESTIONS_PER_FIGURE + k
            choices = [f"{FINDINGS[(i + j) % len(FINDINGS)]} in the {ORGANS[(figure + j) % len(ORGANS)]}"
                       for j in range(4)]
            label = "ABCD"[i % 4]
            rows.append([str(i), name, f"Question {k + 1} on figure {figure}: what does panel {k + 1} show?",
                         choices["ABCD".index(label)], *(f"{l}:{c}" for l, c in zip("ABCD", choices)), label])
    _write_csv(base / "train.csv", V1_HEADER, rows)
    return base


def write_rocov2(root: Path, images: int, rng: np.random.Generator) -> Path:
    """ROCOv2's `train_captions.csv`, `train_concepts.csv`, `cui_mapping.csv` and `train/<ID>.jpg`."""
    from sources.samples.common import write_jpeg

    base = root / "ROCOv2"
    captions, concepts = [], []
    for i in range(images):
        image_id = f"ROCOv2_2023_train_{i:06d}"
        cui, words = MODALITY_CUIS[i % len(MODALITY_CUIS)]
        write_jpeg(base / "train" / f"{image_id}.jpg", _figure(rng, i, 1))
        captions.append([image_id, f"{PLANES[i % len(PLANES)]} {words} of the {ORGANS[i % len(ORGANS)]} showing "
                                   f"{FINDINGS[(i // 3) % len(FINDINGS)]} (case {i})."])
        concepts.append([image_id, cui])
    _write_csv(base / "train_captions.csv", ["ID", "Caption"], captions)
    _write_csv(base / "train_concepts.csv", ["ID", "CUIs"], concepts)
    _write_csv(base / "cui_mapping.csv", ["CUI", "Canonical name"], [list(pair) for pair in MODALITY_CUIS])
    return base


def write_corpus(root: Path, records: int, seed: int = 0) -> dict[str, int]:
    """About `records` records in the three layouts under `root`; returns the records per source."""
    counts = corpus_counts(records)
    rng = np.random.default_rng(seed)
    write_medqa(root, counts["medqa"])
    write_pmc_vqa(root, counts["pmc_vqa"], rng)
    write_rocov2(root, counts["rocov2"] // 2, rng)
    return counts


def _unimed(*args: str) -> list[str]:
    return [sys.executable, "-m", "pipeline.cli", *args]


def shard_stats(build: Path) -> dict:
    """Shards of a build: count, samples and bytes per shard (mean, median), against the recipe's bounds."""
    import yaml

    from manifests.query import open_build

    con = open_build(build)
    per_shard = con.execute("SELECT shard, count(*) FROM kept WHERE shard IS NOT NULL GROUP BY ALL").fetchall()
    con.close()
    samples = [n for _, n in per_shard]
    sizes = [(build / "shards" / name).stat().st_size for name, _ in per_shard]
    bounds = (yaml.safe_load((build / "config.resolved.yaml").read_text(encoding="utf-8")) or {}).get("shards") or {}
    return {"shards": len(per_shard), "kept": sum(samples),
            "samples_mean": statistics.fmean(samples) if samples else 0.0,
            "samples_median": statistics.median(samples) if samples else 0.0,
            "bytes_mean": statistics.fmean(sizes) if sizes else 0.0,
            "bytes_median": statistics.median(sizes) if sizes else 0.0,
            "max_samples": bounds.get("max_samples"), "max_bytes": bounds.get("max_bytes")}


def measure_size(records: int, workdir: Path) -> dict:
    """Generate, then run and meter each step at one size; returns {step: run} plus the corpus and shards."""
    from pipeline.bench.measure import run_measured

    corpus, out = workdir / f"corpus-{records}", workdir / f"out-{records}"
    started = time.perf_counter()
    counts = write_corpus(corpus, records)
    generated = time.perf_counter() - started
    build = out / "stage1"
    commands = {
        "build": _unimed("build", "--recipe", "stage1", "--sources-root", str(corpus), "--out", str(out), "--quiet"),
        "rerun": _unimed("build", "--recipe", "stage1", "--sources-root", str(corpus), "--out", str(out), "--quiet"),
        "export": _unimed("export", "--format", "unimedvl", str(build), "--out", str(workdir / f"export-{records}")),
        "release": _unimed("release", str(build), "--out", str(workdir / f"release-{records}")),
        "report": _unimed("report", str(build), "--out", str(workdir / f"report-{records}")),
        "audit sample": _unimed("audit", "sample", str(build), "--n", "200", "--seed", "0"),
    }
    runs = {step: run_measured(command, env=ENV) for step, command in commands.items()}
    return {"records": sum(counts.values()), "counts": counts, "generated_s": generated, "runs": runs,
            "shards": shard_stats(build)}


def _mb(value: float) -> str:
    return f"{value / 2**20:,.0f} MiB"


def _bytes(value: float) -> str:
    """A size in the largest binary unit that keeps it at 1 or more."""
    for unit, scale in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if value >= scale:
            return f"{value / scale:,.1f} {unit}"
    return f"{value:,.0f} B"


def _line(goal: str, measured: str, target: str, met: bool, counted: str = "") -> str:
    return f"{goal:14s} {measured}  goal {target}  {'MET' if met else 'NOT MET'}" + (f"  [{counted}]" if counted else "")


def report_lines(small: dict, large: dict) -> list[str]:
    """The table of both sizes, then one line per goal of the issue."""
    grow = large["records"] / small["records"]
    lines = [f"{'step':14s} {'records':>9s} {'wall s':>9s} {'driver RSS':>12s} {'tree PSS':>12s}"]
    for size in (small, large):
        for step in STEPS:
            run = size["runs"][step]
            lines.append(f"{step:14s} {size['records']:9,d} {run['seconds']:9.1f} {_mb(run['peak_rss']):>12s} "
                         f"{_mb(run['peak_pss']):>12s}")
    for size in (small, large):
        s = size["shards"]
        lines.append(f"shards at {size['records']:,} records: {s['shards']} shards, {s['kept']} kept samples; samples "
                     f"per shard mean {s['samples_mean']:.0f} median {s['samples_median']:.0f} (max_samples "
                     f"{s['max_samples']}); bytes per shard mean {_bytes(s['bytes_mean'])} median "
                     f"{_bytes(s['bytes_median'])} (max_bytes {_bytes(s['max_bytes'] or 0)})")
    lines.append(f"goals, {large['records']:,} vs {small['records']:,} records ({grow:.1f}x), one run:")
    build_s, build_l = small["runs"]["build"], large["runs"]["build"]
    rss_ratio = build_l["peak_rss"] / build_s["peak_rss"]
    lines.append(_line("build memory", f"driver peak RSS {rss_ratio:.2f}x ({_mb(build_s['peak_rss'])} -> "
                       f"{_mb(build_l['peak_rss'])})", "<= 1.25x and <= 2 GB",
                       rss_ratio <= 1.25 and build_l["peak_rss"] <= 2e9, "VmHWM of the `unimed build` process"))
    per_record = (build_l["seconds"] / large["records"]) / (build_s["seconds"] / small["records"])
    lines.append(_line("build time", f"time per record {per_record:.2f}x ({1000 * build_s['seconds'] / small['records']:.2f}"
                       f" -> {1000 * build_l['seconds'] / large['records']:.2f} ms)", "<= 1.2x", per_record <= 1.2,
                       "wall from spawn: Python, Ray start, listing, Ray Data, finalisation, manifest"))
    for size in (small, large):
        share = size["runs"]["rerun"]["seconds"] / size["runs"]["build"]["seconds"]
        lines.append(_line("no-op rerun", f"{100 * share:.1f}% of the build at {size['records']:,} records "
                           f"({size['runs']['rerun']['seconds']:.1f} s)", "<= 5%", share <= 0.05,
                           "the same command again, nothing changed"))
    for step in ("export", "release", "report", "audit sample"):
        time_ratio = large["runs"][step]["seconds"] / small["runs"][step]["seconds"]
        memory_ratio = large["runs"][step]["peak_rss"] / small["runs"][step]["peak_rss"]
        lines.append(_line(step, f"{time_ratio:.1f}x the time, {memory_ratio:.2f}x the driver memory",
                           f"<= {1.2 * grow:.0f}x, <= 1.25x", time_ratio <= 1.2 * grow and memory_ratio <= 1.25,
                           f"time goal 1.2 x the {grow:.1f}x size ratio"))
    s = large["shards"]
    fill = s["samples_mean"] / s["max_samples"] if s["max_samples"] else 0.0
    byte_fill = s["bytes_median"] / s["max_bytes"] if s["max_bytes"] else 0.0
    lines.append(_line("shard fill", f"mean {100 * fill:.0f}% of max_samples, median {100 * byte_fill:.1f}% of "
                       f"max_bytes at {large['records']:,} records", ">= 90% of either", max(fill, byte_fill) >= 0.9,
                       "kept samples per shard from the manifest, bytes from the files"))
    return lines


def main(argv: list[str] | None = None) -> int:
    started = time.perf_counter()  # the benchmark's own clock: generation and every command
    parser = argparse.ArgumentParser(prog="python -m pipeline.bench.scale", description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs=2, default=(40_000, 400_000), metavar=("SMALL", "LARGE"),
                        help="records generated for the two builds (issue: 40000 400000)")
    parser.add_argument("--workdir", default=None, help="scratch folder, kept (default: a temporary one, removed)")
    args = parser.parse_args(argv)
    workdir = Path(args.workdir or tempfile.mkdtemp(prefix="unimed-bench-scale-")).resolve()
    workdir.mkdir(parents=True, exist_ok=True)
    try:
        small, large = (measure_size(records, workdir) for records in args.sizes)
        lines = [f"machine: {os.cpu_count()} cores (shared: other work may run beside the bench); corpus: "
                 f"{', '.join(f'{k} {v:,}' for k, v in large['counts'].items())} records at the large size "
                 f"(MedQA text, PMC-VQA {QUESTIONS_PER_FIGURE} questions per figure, ROCOv2 I2T + T2I per image); "
                 f"generated in {small['generated_s']:.0f} s and {large['generated_s']:.0f} s",
                 *report_lines(small, large),
                 f"total {time.perf_counter() - started:.0f} s, from the start of this program (generation, every "
                 "command, its process start included)"]
    finally:
        if not args.workdir:
            shutil.rmtree(workdir, ignore_errors=True)
    print("\n".join(lines))  # noqa: T201 - the benchmark's report is its output
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
