"""`make bench`: the build pipeline against a bare single-process loop, and its memory at two sizes.

The corpus is generated in real layouts (ROCOv2 JPEGs, 8-bit; MIMIC-CXR DICOMs, 12-bit stored in 16)
with sides of 512-2048 px. The bare loop does only what the same output needs: decode, resize when
past the loaders' limits, encode (PNG for DICOM, the JPEG's own bytes) and tar write, in one
process. The pipeline does that plus listing, coarse scoring, staging, finalisation and the
manifest, on Ray with every core. Both are reported in records/s per core, in the same run.
Peak memory is the summed PSS (shared pages split between the processes that map them, so Ray's
object store is not counted once per worker) of the build's driver and all its Ray workers, sampled
every 100 ms; each pipeline run is its own process with its own local Ray, so nothing from the bare
loop or an earlier run is counted. Both corpus sizes use the same cycle of image sizes.
"""

from __future__ import annotations

import argparse
import csv
import json
import subprocess
import sys
import gzip
import io
import os
import shutil
import tarfile
import tempfile
import threading
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


def make_corpus(root: Path, images: int, seed: int = 0) -> list[Path]:
    """Half ROCOv2-layout JPEGs, half MIMIC-CXR-layout DICOMs, sides 512-2048 px. Returns the files."""
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
        if index % 2 == 0:
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
    """Decode, resize if needed, encode, tar write: one process, no framework. Returns seconds."""
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
                        img = img.resize((max_side, max_side))
                payload, name = data, f"{index:08d}.jpg"
            info = tarfile.TarInfo(name)
            info.size = len(payload)
            tar.addfile(info, io.BytesIO(payload))
    return time.perf_counter() - started


class PeakMemory:
    """Peak summed PSS of this process and its descendants (the Ray workers), sampled in a thread."""

    def __init__(self, interval: float = 0.1):
        self.interval, self.peak, self._stop = interval, 0, threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        me = psutil.Process()
        while not self._stop.is_set():
            total = 0
            for process in [me, *me.children(recursive=True)]:
                try:
                    total += process.memory_full_info().pss
                except psutil.Error:
                    continue
            self.peak = max(self.peak, total)
            time.sleep(self.interval)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()


def pipeline_run(root: Path, out: Path) -> tuple[float, int]:
    from pipeline.engine.build import build
    from pipeline.config import SourceEntry, load_recipe

    recipe = load_recipe("stage1")
    recipe.sources = [SourceEntry("rocov2", splits=["train"]), SourceEntry("mimic_cxr", splits=["unsplit"])]
    started = time.perf_counter()
    report = build(recipe, out, root, progress=False)
    return time.perf_counter() - started, report.result.kept + report.result.rejected


def _measure_pipeline(corpus: Path, out: Path) -> dict:
    """In this process: start Ray, then time the build and watch the memory of the process tree."""
    import ray

    ray.init(include_dashboard=False, log_to_driver=False, logging_level="ERROR")
    try:
        with PeakMemory() as memory:
            seconds, records = pipeline_run(corpus, out)
    finally:
        ray.shutdown()
    return {"seconds": seconds, "records": records, "peak_bytes": memory.peak}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--images", type=int, default=300, help="the larger corpus; the smaller is a tenth")
    parser.add_argument("--workdir", default=None, help="scratch folder (default: a temporary one)")
    parser.add_argument("--pipeline-only", nargs=2, metavar=("CORPUS", "OUT"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.pipeline_only:
        print(json.dumps(_measure_pipeline(Path(args.pipeline_only[0]), Path(args.pipeline_only[1]))))  # noqa: T201
        return 0
    workdir = Path(args.workdir or tempfile.mkdtemp(prefix="unimed-bench-"))
    cores = os.cpu_count() or 1
    results = {}
    for size in (max(12, args.images // 10), args.images):
        corpus = workdir / f"corpus-{size}"
        files = make_corpus(corpus, size)
        bare_seconds = bare_loop(files, workdir / f"bare-{size}.tar")
        run = subprocess.run([sys.executable, "-m", "pipeline.bench.build", "--pipeline-only", str(corpus),
                              str(workdir / f"out-{size}")], capture_output=True, text=True, check=True)
        results[size] = {"bare_seconds": bare_seconds, **json.loads(run.stdout.strip().splitlines()[-1])}
        shutil.rmtree(corpus)
    small, large = sorted(results)
    big = results[large]
    bare_rate, pipe_rate = large / big["bare_seconds"], big["records"] / big["seconds"]
    growth = results[large]["peak_bytes"] / results[small]["peak_bytes"] - 1
    lines = [
        f"corpus: {large} images (512-2048 px; half 8-bit JPEG, half 12-bit DICOM), {cores} cores",
        f"bare loop   {bare_rate:8.2f} records/s on 1 core   = {bare_rate:8.2f} records/s/core",
        f"pipeline    {pipe_rate:8.2f} records/s on {cores} cores  = {pipe_rate / cores:8.2f} records/s/core"
        " (Ray started beforehand; listing, scoring, staging, finalising, manifest included)",
        f"ratio pipeline/bare per core: {pipe_rate / cores / bare_rate:.2f}  (target >= 0.80)",
        f"peak PSS (driver + Ray workers): {results[small]['peak_bytes'] / 2**20:.0f} MiB at {small} images, "
        f"{results[large]['peak_bytes'] / 2**20:.0f} MiB at {large} images: growth {100 * growth:+.1f}%"
        "  (target < +20%)",
    ]
    print("\n".join(lines))  # noqa: T201 - the benchmark's report is its output
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
