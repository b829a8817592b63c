"""What decoding only what a rule needs saves, and how far it moves the scores (issue 27).

    python -m pipeline.bench.decode [--images 300] [--files 'DIR/**/*.jpg' ...]

For every JPEG of the bench's ROCOv2 corpus (pipeline/bench/build.py, sides 512-2048 px) and of any files
given, it compares the facts of a full decode (what the build computed before: `pixel_hash` over the
decoded array, `normalised_std` over it, pHash of the full image, model inputs resized from the full
image) with those the build computes now (manifests/images.py: the coded image's hash, a draft decode's
spread, pHash and model inputs from draft decodes). Printed: CPU ms per image for each way (the two
interleaved, the least of 3 tries per image), the largest and mean change of `pixel_std` and how many
images cross the recipe's blank threshold, the pHash Hamming distances, and the mean/max difference
(grey levels) of model inputs at 224/448/896 px.
"""

from __future__ import annotations

import argparse
import glob
import io
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image as PILImage

MODEL_SIDES = (224, 448, 896)  # BiomedCLIP, MedSigLIP-448, Gemma 3 (MedGemma)


def full_facts(data: bytes) -> tuple[str, float, np.ndarray]:
    """What decode_bytes computed before issue 27: a full decode, then the hash and spread of every pixel."""
    from manifests.images import normalised_std, pil_to_array, pixel_hash

    with PILImage.open(io.BytesIO(data)) as img:
        img.load()
        pixels = pil_to_array(img)
    return pixel_hash(pixels), normalised_std(pixels), pixels


def _cpu_per_item(ways: list, data: list[bytes], repeats: int = 3) -> list[float]:
    """CPU seconds per item of each way, the ways interleaved item by item and the least of `repeats` kept:
    a shared machine slows both alike, and CPU time does not count the time another process had the core."""
    totals = [0.0] * len(ways)
    for item in data:
        for index, way in enumerate(ways):
            best = float("inf")
            for _ in range(repeats):
                started = time.thread_time()
                way(item)
                best = min(best, time.thread_time() - started)
            totals[index] += best
    return [total / max(1, len(data)) for total in totals]


def _model_input(picture: PILImage.Image, side: int) -> np.ndarray:
    """A processor's square resize (SigLIP's: bicubic to side x side), as float grey levels."""
    return np.asarray(picture.convert("RGB").resize((side, side), PILImage.Resampling.BICUBIC), dtype=np.float32)


def compare(files: list[Path], min_pixel_std: float = 0.01) -> list[str]:
    from filters.near_duplicates import hamming, image_phash, phash_of_pil
    from manifests.images import decode_bytes, reduced_view

    data = [path.read_bytes() for path in files]
    before, after = _cpu_per_item([full_facts, lambda item: decode_bytes(item, source_path="x")], data)
    std_moves, crossings, distances = [], 0, []
    model_diffs: dict[int, list[tuple[float, float]]] = {side: [] for side in MODEL_SIDES}
    for item in data:
        _, old_std, pixels = full_facts(item)
        image = decode_bytes(item, source_path="x")
        std_moves.append(image.pixel_std - old_std)
        crossings += (old_std < min_pixel_std) != (image.pixel_std < min_pixel_std)
        full = PILImage.fromarray(pixels)
        distances.append(hamming(phash_of_pil(full), image_phash(image)))
        for side in MODEL_SIDES:
            diff = np.abs(_model_input(full, side) - _model_input(reduced_view(image, side), side))
            model_diffs[side].append((float(diff.mean()), float(diff.max())))
    moves = np.abs(np.array(std_moves))
    hist = np.bincount(np.minimum(distances, 9), minlength=10)
    lines = [f"decode   {1000 * before:.2f} CPU ms/image before (full decode, hash and spread of every pixel), "
             f"{1000 * after:.2f} after (header, draft decode, coded-image hash): {before / after:.2f}x "
             f"[{len(data)} JPEGs, one thread, each image the least of 3 tries, the two ways interleaved]",
             f"pixel_std  |change| max {moves.max():.4f} mean {moves.mean():.4f} (mean signed "
             f"{np.mean(std_moves):+.4f}); {crossings} of {len(data)} images cross the blank threshold "
             f"{min_pixel_std}",
             "phash    Hamming distance to the full decode's: "
             + ", ".join(f"{d if d < 9 else '>=9'}: {n}" for d, n in enumerate(hist) if n)
             + f" (near-duplicate threshold 8; max {max(distances)})"]
    for side, values in model_diffs.items():
        means, maxima = np.array(values).T
        lines.append(f"model input {side}x{side}: |draft - full| mean {means.mean():.2f} grey levels "
                     f"(worst image {means.max():.2f}), largest single value {maxima.max():.0f}")
    return lines


def main(argv: list[str] | None = None) -> int:
    from pipeline.bench.build import make_corpus

    parser = argparse.ArgumentParser(prog="python -m pipeline.bench.decode", description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=300, help="bench ROCOv2 JPEGs to generate (0: none)")
    parser.add_argument("--files", nargs="*", default=[], help="globs of JPEG files to compare as well")
    args = parser.parse_args(argv)
    workdir = Path(tempfile.mkdtemp(prefix="unimed-bench-decode-"))
    lines = []
    try:
        if args.images:
            corpus = make_corpus(workdir / "corpus", args.images, mixed=False)
            lines += [f"[bench corpus: {args.images} ROCOv2-layout JPEGs, 512-2048 px]", *compare(corpus)]
        files = sorted({Path(p) for pattern in args.files for p in glob.glob(pattern, recursive=True)
                        if p.lower().endswith((".jpg", ".jpeg"))})
        if files:
            lines += [f"[files: {len(files)} JPEGs from {', '.join(args.files)}]", *compare(files)]
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    print("\n".join(lines))  # noqa: T201 - the benchmark's report is its output
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
