"""Alignment scoring throughput: pairs/s per actor for each model, and caption tokens/s.

CPU: the tiny demo models (their numbers show per-pair overhead, not real model cost). With a CUDA
GPU, also MedSigLIP-448-sized random weights (SigLIP-400M towers, 448 px, 64 text tokens) in bf16,
with model FLOPs per pair x pairs/s as a fraction of the GPU's dense bf16 peak.

Also the score cache: the cost of one batch's lookup (256 keys) at two cache sizes ten times apart,
probing the compacted, key-indexed table against scanning every per-batch file (the lookup before
compaction existed), in the same run.

    python -m pipeline.bench.scoring [--pairs 32] [--out bench-scoring.json]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

# Dense bf16 peak (TFLOP/s, no sparsity) by device-name fragment; unknown GPUs report no fraction.
PEAK_BF16_TFLOPS = {"H200": 989.0, "H100": 989.0, "A100": 312.0, "L40S": 362.0, "L4": 121.0, "A10": 125.0}
MEDSIGLIP_448 = {
    "vision": {"hidden_size": 1152, "intermediate_size": 4304, "num_hidden_layers": 27, "num_attention_heads": 16,
               "image_size": 448, "patch_size": 14},
    "text": {"hidden_size": 1152, "intermediate_size": 4304, "num_hidden_layers": 27, "num_attention_heads": 16,
             "max_position_embeddings": 64, "vocab_size": 32000},
}


def _images(n: int, size: int = 64):
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(0)
    return [Image.fromarray(rng.integers(0, 255, (size, size, 3), dtype=np.uint8)) for _ in range(n)]


def _timed(fn, repeats: int = 2) -> float:
    fn()  # warm-up
    start = time.perf_counter()
    for _ in range(repeats):
        fn()
    return (time.perf_counter() - start) / repeats


def bench_cpu(pairs: int) -> dict:
    from filters.alignment.biomedclip import BiomedCLIPScorer
    from filters.demo_models import NAMES, write_demo_models
    from filters.alignment.e5 import E5Embedder
    from filters.alignment.captioner import TransformersCaptioner
    from filters.alignment.medsiglip import SiglipScorer
    from filters.settings import AlignmentSettings

    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        write_demo_models(Path(tmp))
        s = AlignmentSettings(enabled=True)
        for section in (s.captioner, s.embedder, s.siglip, s.biomedclip):
            section.resources.num_gpus = 0.0
        texts = [f"query: chest radiograph number {i} with clear lungs" for i in range(pairs)]
        images = _images(pairs)
        e5 = E5Embedder(Path(tmp) / NAMES["e5"], s.embedder)
        results["e5_pairs_per_s"] = pairs / _timed(lambda: e5.embed(texts * 6))  # a pair: original + 5 captions
        siglip = SiglipScorer(Path(tmp) / NAMES["medsiglip"], s.siglip)
        results["medsiglip_pairs_per_s"] = pairs / _timed(lambda: siglip.score(images, texts))
        bmc = BiomedCLIPScorer(Path(tmp) / NAMES["biomedclip"], s.biomedclip)
        results["biomedclip_pairs_per_s"] = pairs / _timed(lambda: bmc.score(images, texts))
        s.captioner.max_new_tokens = 32
        captioner = TransformersCaptioner(Path(tmp) / NAMES["medgemma"], s.captioner)
        batch = images[: min(pairs, 4)]
        seconds = _timed(lambda: captioner.generate(batch, seed=0), repeats=1)
        tokens = len(batch) * s.captioner.k * s.captioner.max_new_tokens  # upper bound: stops at eos
        results["medgemma_images_per_s"] = len(batch) / seconds
        results["medgemma_tokens_per_s_max"] = tokens / seconds
    return {"device": "cpu", "weights": "demo (tiny random)", "threads": os.cpu_count(), **results}


def bench_gpu_medsiglip(pairs: int) -> dict:
    import torch
    from transformers import SiglipConfig, SiglipModel

    config = SiglipConfig(text_config=MEDSIGLIP_448["text"], vision_config=MEDSIGLIP_448["vision"])
    model = SiglipModel(config).to("cuda", torch.bfloat16).eval()
    vision = MEDSIGLIP_448["vision"]
    pixels = torch.randn(pairs, 3, vision["image_size"], vision["image_size"], device="cuda", dtype=torch.bfloat16)
    ids = torch.randint(0, MEDSIGLIP_448["text"]["vocab_size"], (pairs, 64), device="cuda")

    def step():
        with torch.inference_mode():
            model(input_ids=ids, pixel_values=pixels)
        torch.cuda.synchronize()

    seconds = _timed(step, repeats=5)
    patches = (vision["image_size"] // vision["patch_size"]) ** 2
    vision_params = sum(p.numel() for p in model.vision_model.parameters())
    text_params = sum(p.numel() for p in model.text_model.parameters())
    # 2 FLOPs per parameter per token, plus attention (QK^T and AV: 4 * tokens^2 * width per layer)
    flops = 2 * vision_params * patches + 4 * patches**2 * vision["hidden_size"] * vision["num_hidden_layers"]
    flops += 2 * text_params * 64 + 4 * 64**2 * 1152 * 27
    name = torch.cuda.get_device_name()
    peak = next((v for k, v in PEAK_BF16_TFLOPS.items() if k in name), None)
    rate = pairs / seconds
    return {"device": name, "weights": "random, MedSigLIP-448 sized", "dtype": "bf16", "batch": pairs,
            "pairs_per_s": rate, "gflops_per_pair": flops / 1e9,
            "fraction_of_peak": (flops * rate / (peak * 1e12)) if peak else None, "peak_tflops": peak}


def bench_cache(sizes: tuple[int, ...] = (20_000, 200_000), batch: int = 256, repeats: int = 5) -> dict:
    import hashlib

    import duckdb
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq

    from filters.alignment.cache import CACHE_SCHEMA, compact_cache, read_cache

    rng = np.random.default_rng(0)
    out = {}
    for size in sizes:
        with tempfile.TemporaryDirectory() as tmp:
            folder = Path(tmp) / "digest"
            folder.mkdir()
            keys = [hashlib.blake2b(str(i).encode(), digest_size=16).hexdigest() for i in range(size)]
            values = rng.random(size, dtype=np.float32)
            for start in range(0, size, batch):  # one file per batch, as the cache-write stage leaves them
                part = keys[start:start + batch]
                column = pa.array(values[start:start + batch])
                pq.write_table(pa.table({"key": part, "align_s_raw": column, "align_m_logit": column,
                                         "align_m_prob": column, "align_bmc": column,
                                         "align_caption": ["a caption"] * len(part),
                                         "captions": ['["a caption"]'] * len(part)}, schema=CACHE_SCHEMA),
                               folder / f"{start:09d}.parquet")
            wanted = [keys[i] for i in rng.integers(0, size, batch)]

            def scan():
                con = duckdb.connect()
                con.register("wanted", pa.table({"key": wanted}))
                rows = con.execute(f"SELECT c.* FROM read_parquet('{folder.as_posix()}/*.parquet') c "
                                   "SEMI JOIN wanted USING (key)").fetchall()
                con.close()
                return rows

            assert len(scan()) == len(set(wanted))
            scan_s = _timed(scan, repeats)
            started = time.perf_counter()
            compact_cache(tmp, "digest")
            compact_s = time.perf_counter() - started
            index_s = _timed(lambda: read_cache(tmp, "digest", wanted), repeats)
            assert len(read_cache(tmp, "digest", wanted)) == len(set(wanted))  # the same hits as the scan
            out[size] = {"files": -(-size // batch), "scan_ms": scan_s * 1e3, "index_ms": index_s * 1e3,
                         "speedup": scan_s / index_s, "compact_s": compact_s}
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m pipeline.bench.scoring", description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=32)
    parser.add_argument("--gpu-batch", type=int, default=64)
    parser.add_argument("--out", help="also write the results here as JSON")
    args = parser.parse_args(argv)
    import torch

    torch.set_num_threads(max(1, min(4, os.cpu_count() or 1)))
    results = {"cpu": bench_cpu(args.pairs), "cache_lookup_256_keys": bench_cache()}
    if torch.cuda.is_available():
        results["gpu_medsiglip_448"] = bench_gpu_medsiglip(args.gpu_batch)
    text = json.dumps(results, indent=2)
    if args.out:
        Path(args.out).write_text(text)
    sys.stdout.write(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
