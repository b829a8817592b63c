"""Build goals of issues 13 and 27: P1 (images/s per core against a bare loop, >= 1.0; with where the time
went), P1b (bytes written, peak disk), P2 (1 vs 2 CPUs), P3 (peak memory at two sizes, by process).

    python -m pipeline.bench.build [--images 3000] [--mixed-images 1000] [--p2-images 1000]
                                   [--p3-images 300 3000] [--only P1,P1b,P2,P3]

The corpus is generated in real layouts (ROCOv2 JPEGs, 8-bit; the mixed one adds MIMIC-CXR DICOMs,
12-bit stored in 16) with sides of 512-2048 px. Each build is its own process (`_child`: `ray.init
(num_cpus=N)`, then the engine's `build()`), timed from its spawn, so Python, Ray's start, listing, Ray
Data, finalisation and the manifest all count; pipeline/bench/measure.py meters its process tree (PSS,
write_bytes) and the output folder. The bare loop is one process: decode, cap the long side, encode
(JPEG quality 90, or PNG for DICOM), tar write. The headline is images/s per core (a ROCOv2 image gives
an I2T and a T2I record; records/s is printed beside). Memory is the summed PSS (shared pages split
between the processes that map them, so Ray's object store is not counted once per worker).

Every measured build records spans (manifests/spans.py: `UNIMED_SPANS` set for its process tree);
`breakdown` sums each step's self time over all processes. P3 prints the peak by process name: a build
keeps one Ray worker busy per unit being read, up to the cores, so compare sizes that both keep every core
busy (the ROCOv2 adapter's units hold 256 images), or the growth measured is the second core's worker.
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
import gzip
import io
import os
import shutil
import tarfile
import tempfile
import time
from pathlib import Path

import numpy as np
import psutil

os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
os.environ.setdefault("HF_HUB_OFFLINE", "1")


def _dicom_bytes(pixels: np.ndarray, index: int) -> bytes:
    from pydicom.dataset import FileDataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, SecondaryCaptureImageStorage, generate_uid

    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = SecondaryCaptureImageStorage
    meta.MediaStorageSOPInstanceUID = generate_uid(entropy_srcs=[f"bench-{index}"])
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = FileDataset(None, {}, file_meta=meta, preamble=b"\0" * 128)
    ds.SOPClassUID, ds.SOPInstanceUID = meta.MediaStorageSOPClassUID, meta.MediaStorageSOPInstanceUID
    ds.Modality, ds.PatientName = "DX", "Bench^Patient"
    ds.Rows, ds.Columns = pixels.shape
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 12, 11, 0
    ds.PixelData = pixels.astype(np.uint16).tobytes()
    buffer = io.BytesIO()
    ds.save_as(buffer, enforce_file_format=True)
    return buffer.getvalue()


def _texture(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    """Cheap non-trivial content: a smooth low-resolution field upsampled plus noise."""
    from PIL import Image as PILImage

    coarse = rng.uniform(0, 1, size=(max(2, height // 64), max(2, width // 64))).astype(np.float32)
    field = np.asarray(PILImage.fromarray(coarse).resize((width, height), PILImage.Resampling.BILINEAR))
    return np.clip(field + rng.normal(0, 0.03, size=field.shape).astype(np.float32), 0, 1)


def make_corpus(root: Path, images: int, seed: int = 0, mixed: bool = True) -> list[Path]:
    """ROCOv2-layout JPEGs (`mixed`: every other one a MIMIC-CXR-layout DICOM), sides 512-2048 px.
    Returns the files."""
    from PIL import Image as PILImage

    rng = np.random.default_rng(seed)
    sides = (512, 768, 1024, 1280, 1536, 2048)  # cycled, so a tenth of the corpus has every size too
    files: list[Path] = []
    roco = root / "ROCOv2"
    (roco / "train").mkdir(parents=True, exist_ok=True)
    mimic = root / "mimic-cxr" / "2.0.0"
    captions, records = [], []
    for index in range(images):
        height, width = sides[index % len(sides)], sides[(index // len(sides)) % len(sides)]
        field = _texture(rng, height, width)
        if index % 2 == 0 or not mixed:
            image_id = f"ROCOv2_2023_train_{index:06d}"
            path = roco / "train" / f"{image_id}.jpg"
            PILImage.fromarray((field * 255).astype(np.uint8)).save(path, format="JPEG", quality=90)
            captions.append((image_id, f"Axial computed tomography image number {index} of the abdomen."))
        else:
            subject, study = f"1{index:07d}", f"5{index:07d}"
            study_dir = mimic / "files" / f"p{subject[:2]}" / f"p{subject}"
            (study_dir / f"s{study}").mkdir(parents=True, exist_ok=True)
            dicom_id = f"{index:08x}-bench000-00000000-00000000-00000000"
            path = study_dir / f"s{study}" / f"{dicom_id}.dcm"
            path.write_bytes(_dicom_bytes((field * 4095).astype(np.uint16), index))
            (study_dir / f"s{study}.txt").write_text(
                " FINAL REPORT\n FINDINGS: The lungs are clear. No effusion.\n \n IMPRESSION: No acute process.\n")
            records.append((subject, study, dicom_id, f"files/p{subject[:2]}/p{subject}/s{study}/{dicom_id}.dcm"))
        files.append(path)
    with open(roco / "train_captions.csv", "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["ID", "Caption"])
        writer.writerows(captions)
    mimic.mkdir(parents=True, exist_ok=True)
    with gzip.open(mimic / "cxr-record-list.csv.gz", "wt", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["subject_id", "study_id", "dicom_id", "path"])
        writer.writerows(records)
    return files


def bare_loop(files: list[Path], out: Path, max_side: int = 4095, png_level: int = 6) -> float:
    """Decode, cap the long side, encode (JPEG at quality 90, or PNG for DICOM), tar write: one process,
    no framework. Returns seconds."""
    from PIL import Image as PILImage

    from sources.io.dicom import decode_dicom
    from manifests.images import encode_png

    started = time.perf_counter()
    with tarfile.open(out, "w") as tar:
        for index, path in enumerate(files):
            data = path.read_bytes()
            if path.suffix == ".dcm":
                image, _ = decode_dicom(data, source_path=path.name)
                pixels = image.pixels
                if max(pixels.shape) > max_side:
                    pixels = np.asarray(PILImage.fromarray(pixels).resize((max_side, max_side)))
                payload, name = encode_png(pixels, png_level), f"{index:08d}.png"
            else:
                with PILImage.open(io.BytesIO(data)) as img:
                    img.load()
                    if max(img.size) > max_side:
                        img.thumbnail((max_side, max_side))
                    buffer = io.BytesIO()
                    img.save(buffer, format="JPEG", quality=90)
                payload, name = buffer.getvalue(), f"{index:08d}.jpg"
            info = tarfile.TarInfo(name)
            info.size = len(payload)
            tar.addfile(info, io.BytesIO(payload))
    return time.perf_counter() - started


def _child(corpus: Path, out: Path, sources: str, num_cpus: int, models_dir: str | None = None) -> dict:
    """The measured build, in its own process: Ray started here with `num_cpus`, then `build()`.
    With `models_dir`, alignment on (its models on CPU, captions of at most 16 new tokens).
    With UNIMED_SPANS set, every process of the build records its spans there (manifests/spans.py)."""
    import ray

    from manifests import spans
    from pipeline.config import SourceEntry, load_recipe
    from pipeline.engine.build import build

    born = psutil.Process().create_time()
    spans.record("start_up", born, time.time() - born, time.process_time())
    # "local": a Ray of its own, never another process's cluster found through /tmp/ray
    with spans.span("ray_start"):
        ray.init(address="local", num_cpus=num_cpus, include_dashboard=False, log_to_driver=False,
                 logging_level="ERROR")
    try:
        recipe = load_recipe("stage1")
        entries = {"rocov2": SourceEntry("rocov2", splits=["train"]),
                   "mimic_cxr": SourceEntry("mimic_cxr", splits=["unsplit"])}
        recipe.sources = [entries[name] for name in sources.split(",")]
        if models_dir:
            recipe.alignment.enabled, recipe.alignment.models_dir = True, models_dir
            for section in (recipe.alignment.captioner, recipe.alignment.embedder, recipe.alignment.siglip,
                            recipe.alignment.biomedclip):
                section.resources.num_gpus = 0.0
            recipe.alignment.captioner.max_new_tokens = 16
        report = build(recipe, out, corpus, progress=False)
    finally:
        with spans.span("shutdown"):
            ray.shutdown()
        spans.flush()
    stats = json.loads((out / recipe.name / "stats.json").read_text())
    own = psutil.Process().io_counters().write_bytes  # this process's last writes, after the meter's last look
    return {"records": report.result.kept + report.result.rejected, "kept": report.result.kept,
            "build_dir": str(out / recipe.name), "driver_write_bytes": own,
            "stats_bytes_written": stats.get("bytes_written"), "stats_shard_bytes": stats.get("shard_bytes")}


def measure_build(corpus: Path, out: Path, images: int, sources: str = "rocov2", num_cpus: int | None = None,
                  models_dir: Path | None = None, spans_dir: Path | None = None) -> dict:
    """One whole build, timed from spawning its process (Ray's start included), with its tree metered.
    `spans_dir`: where the build's processes record their spans (manifests/spans.py; `breakdown` reads them)."""
    from manifests.spans import ENV as SPANS_ENV
    from pipeline.bench.measure import folder_bytes, run_measured

    num_cpus = num_cpus or os.cpu_count() or 1
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    if spans_dir is not None:
        shutil.rmtree(spans_dir, ignore_errors=True)
    run = run_measured([sys.executable, "-m", "pipeline.bench.build", "--child", str(corpus), str(out), sources,
                        str(num_cpus), *([str(models_dir)] if models_dir else [])], watch=out,
                       env={SPANS_ENV: str(spans_dir)} if spans_dir is not None else None)
    child = run.pop("result")
    build_dir = Path(child["build_dir"])
    shard_bytes = folder_bytes(build_dir / "shards")
    final = folder_bytes(out) - folder_bytes(build_dir / ".state")
    # the driver's own count at its end replaces the meter's last look at it (its final writes came after)
    written = run["bytes_written"] - run["root_written"] + max(run["root_written"], child["driver_write_bytes"])
    return {**run, **child, "images": images, "num_cpus": num_cpus, "shard_bytes": shard_bytes,
            "final_bytes": final, "state_bytes": folder_bytes(build_dir / ".state"), "bytes_written": written}


def breakdown(spans_dir: Path, run: dict) -> list[str]:
    """Where a measured build's time went: each step's self time (wall and CPU) summed over all processes,
    against cores x wall time from spawn and the CPU time of the whole process tree. A step that waits
    (Ray's start, the driver waiting on the workers) has less CPU than wall; CPU outside spans is Ray's own
    processes and scheduling and Python between the steps; idle is the cores' time nobody used."""
    from manifests.spans import STEPS, read

    wall: dict[str, float] = {}
    cpu: dict[str, float] = {}
    for entry in read(spans_dir):
        wall[entry["step"]] = wall.get(entry["step"], 0.0) + entry["self_seconds"]
        cpu[entry["step"]] = cpu.get(entry["step"], 0.0) + entry["self_cpu"]
    budget = run["num_cpus"] * run["seconds"]
    tree_cpu = run.get("cpu_seconds", 0.0)
    images = max(1, run["images"])
    named = [step for step, _ in STEPS if not step.endswith(".*")]
    order: list[str] = []
    for step, _ in STEPS:
        if step.endswith(".*"):
            order += sorted(name for name in wall if name.startswith(step[:-1]) and name not in named)
        elif step in wall:
            order.append(step)
    order += sorted(set(wall) - set(order))
    row = "     {:36s} {:>8s} {:>8s} {:>6s} {:>9s}"
    lines = [f"     breakdown: {run['images']} images, {run['num_cpus']} cores x {run['seconds']:.1f} s wall = "
             f"{budget:.1f} core-s; each step's self time summed over all processes",
             row.format("step", "wall s", "cpu s", "share", "ms/image")]
    for name in order:
        lines.append(row.format(name, f"{wall[name]:.2f}", f"{cpu[name]:.2f}", f"{100 * wall[name] / budget:.1f}%",
                                f"{1000 * wall[name] / images:.2f}"))
    in_spans = sum(cpu.values())
    lines.append(row.format("CPU outside spans (Ray, scheduling)", "", f"{max(0.0, tree_cpu - in_spans):.2f}",
                            f"{100 * max(0.0, tree_cpu - in_spans) / budget:.1f}%", ""))
    for name, seconds in sorted(run.get("cpu_by_name", {}).items(), key=lambda item: -item[1])[:8]:
        lines.append(row.format(f"  all CPU of {name[:23]}", "", f"{seconds:.2f}", "", ""))
    lines.append(row.format("cores unused (idle, or others on them)", "", f"{max(0.0, budget - tree_cpu):.2f}",
                            f"{100 * max(0.0, budget - tree_cpu) / budget:.1f}%", ""))
    return lines


def memory_by_process(small: dict, large: dict, sizes) -> list[str]:
    """P3's peak memory by process name (Ray names its workers after their task), at both sizes: what grows."""
    at_small, at_large = small["peak_pss_by_name"], large["peak_pss_by_name"]
    names = sorted(set(at_small) | set(at_large), key=lambda name: -at_large.get(name, [0, 0])[0])
    lines = [f"     at the peak, PSS by process name (MiB, processes) at {sizes[0]} / {sizes[1]} images:"]
    for name in names:
        (a, n), (b, m) = at_small.get(name, [0, 0]), at_large.get(name, [0, 0])
        lines.append(f"     {name[:60]:60s} {a / 2**20:6.0f} ({n}) {b / 2**20:6.0f} ({m}) {(b - a) / 2**20:+6.0f}")
    return lines


def _line(goal: str, measured: str, target: str, met: bool, counted: str) -> str:
    return f"{goal:4s} {measured}  goal {target}  {'MET' if met else 'NOT MET'}  [{counted}]"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m pipeline.bench.build", description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=3000, help="P1/P1b/P2 corpus of ROCOv2 JPEGs (issue: 3000)")
    parser.add_argument("--mixed-images", type=int, default=1000, help="P1's second line: JPEG/DICOM corpus")
    parser.add_argument("--p2-images", type=int, default=1000, help="P2: images built on 1 and on 2 CPUs")
    parser.add_argument("--p3-images", type=int, nargs=2, default=(300, 3000), metavar=("SMALL", "LARGE"),
                        help="P3: the two corpus sizes (issue: 1000 10000)")
    parser.add_argument("--only", default="P1,P1b,P2,P3", help="comma-separated goals to measure")
    parser.add_argument("--workdir", default=None, help="scratch folder (default: a temporary one, removed)")
    parser.add_argument("--child", nargs="+", help=argparse.SUPPRESS)  # CORPUS OUT SOURCES CPUS [MODELS_DIR]
    args = parser.parse_args(argv)
    if args.child:
        corpus, out, sources, cpus, *models = args.child
        print(json.dumps(_child(Path(corpus), Path(out), sources, int(cpus), *models)))  # noqa: T201
        return 0
    goals = set(args.only.split(","))
    workdir = Path(args.workdir or tempfile.mkdtemp(prefix="unimed-bench-build-"))
    cores = os.cpu_count() or 1
    corpora: dict[tuple[int, bool], list[Path]] = {}

    def corpus(images: int, mixed: bool = False) -> Path:
        folder = workdir / f"corpus-{'mixed' if mixed else 'rocov2'}-{images}"
        if (images, mixed) not in corpora:
            corpora[(images, mixed)] = make_corpus(folder, images, mixed=mixed)
        return folder

    runs: dict[tuple, dict] = {}

    def spans_of(images: int, mixed: bool = False, cpus: int = cores) -> Path:
        return workdir / f"spans-{'mixed' if mixed else 'rocov2'}-{images}-{cpus}"

    def build_of(images: int, mixed: bool = False, cpus: int = cores) -> dict:
        if (images, mixed, cpus) not in runs:
            runs[(images, mixed, cpus)] = measure_build(corpus(images, mixed), workdir / "out", images,
                                                        "rocov2,mimic_cxr" if mixed else "rocov2", cpus,
                                                        spans_dir=spans_of(images, mixed, cpus))
        return runs[(images, mixed, cpus)]

    lines = [f"machine: {cores} cores (shared: other work may run beside the bench)"]
    try:
        if "P1" in goals or "P1b" in goals:
            for mixed, images in ((False, args.images), (True, args.mixed_images)):
                if mixed and ("P1" not in goals or not images):  # --mixed-images 0: JPEG only
                    continue
                run = build_of(images, mixed)
                bare = images / bare_loop(corpora[(images, mixed)], workdir / "bare.tar")
                rate = images / run["seconds"]
                ratio = rate / cores / bare
                label = "mixed JPEG/DICOM" if mixed else "ROCOv2 JPEG"
                if "P1" in goals:
                    lines.append(_line("P1", f"{ratio:.2f} of the bare loop per core ({rate / cores:.1f} vs "
                                       f"{bare:.1f} images/s/core; build {rate:.1f} images/s = "
                                       f"{run['records'] / run['seconds']:.1f} records/s on {cores} cores)",
                                       ">= 1.00", ratio >= 1.0,
                                       f"{images} {label} images 512-2048 px; clock from spawning the build's "
                                       "process (Ray start, listing, Ray Data, finalise, manifest); bare loop: 1 "
                                       "process decode -> cap side at 4095 -> encode -> tar"))
                    lines.extend(breakdown(spans_of(images, mixed), run))
            if "P1b" in goals:
                run = build_of(args.images)
                written = run["bytes_written"] / run["shard_bytes"]
                disk = run["peak_folder"] / run["final_bytes"]
                engine = (f"; stats.json says bytes_written {run['stats_bytes_written']}, shard_bytes "
                          f"{run['stats_shard_bytes']}" if run["stats_bytes_written"] is not None else
                          "; stats.json has no bytes_written")
                lines.append(_line("P1b", f"bytes written {written:.2f}x the shard bytes ({run['bytes_written'] / 1e6:.0f}"
                                   f" MB vs {run['shard_bytes'] / 1e6:.0f} MB)", "<= 1.10", written <= 1.1,
                                   "/proc/<pid>/io write_bytes summed over the build's process tree (driver, raylet,"
                                   f" Ray workers; last value of each), {args.images} images{engine}"))
                lines.append(_line("P1b", f"peak disk {disk:.2f}x the final outputs ({run['peak_folder'] / 1e6:.0f} "
                                   f"MB vs {run['final_bytes'] / 1e6:.0f} MB)", "<= 1.30", disk <= 1.3,
                                   "output folder sampled every 0.1 s; final = the folder without .state/; "
                                   f".state/ left after the build: {run['state_bytes'] / 1e6:.0f} MB"))
        if "P2" in goals and cores >= 2:
            one, two = build_of(args.p2_images, cpus=1), build_of(args.p2_images, cpus=2)
            speedup = one["seconds"] / two["seconds"]
            lines.append(_line("P2", f"{speedup:.2f}x faster on 2 CPUs than on 1 ({two['seconds']:.1f} s vs "
                               f"{one['seconds']:.1f} s)", ">= 1.70", speedup >= 1.7,
                               f"{args.p2_images} ROCOv2 images, ray.init(num_cpus=N) in the build's process, "
                               "wall time from spawn"))
        elif "P2" in goals:
            lines.append("P2   not measured: this machine has 1 core")
        if "P3" in goals:
            small, large = (build_of(n) for n in args.p3_images)
            growth = large["peak_pss"] / small["peak_pss"] - 1
            lines.append(_line("P3", f"peak memory {100 * growth:+.1f}% ({small['peak_pss'] / 2**20:.0f} MiB at "
                               f"{args.p3_images[0]} images, {large['peak_pss'] / 2**20:.0f} MiB at "
                               f"{args.p3_images[1]})", "< +20%", growth < 0.2,
                               "summed PSS of the build's driver and all its Ray processes, sampled every 0.1 s"))
            lines.extend(memory_by_process(small, large, args.p3_images))
    finally:
        if not args.workdir:
            shutil.rmtree(workdir, ignore_errors=True)
    print("\n".join(lines))  # noqa: T201 - the benchmark's report is its output
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
