"""Rethreshold benchmark (P7): `unimed rethreshold` against the build it re-decides, and which shards it
rewrote.

    python -m pipeline.bench.rethreshold [--images 10000] [--keep-fraction 0.45]

An aligned build (ROCOv2-layout JPEGs of 512-2048 px, two records per image; alignment on the tiny demo
models, on CPU, captions of at most 16 new tokens: real models would make the build slower and the
ratio smaller) is timed from spawning its process; then `unimed rethreshold --keep-fraction F` is timed
from spawn the same way. A shard counts as rewritten when its bytes, inode or mtime changed, and as
changed when the set of keys the manifest puts in it changed.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import sys
import tempfile
from pathlib import Path


def shard_states(build_dir: Path) -> dict[str, tuple[str, int, int]]:
    """shard path -> (sha256, inode, mtime_ns)."""
    from manifests.shards import list_shards, relative_shard

    states = {}
    for path in list_shards(build_dir):
        stat = path.stat()
        states[relative_shard(build_dir, path)] = (hashlib.sha256(path.read_bytes()).hexdigest(), stat.st_ino,
                                                   stat.st_mtime_ns)
    return states


def shard_keys(build_dir: Path) -> dict[str, frozenset[str]]:
    from manifests.query import open_build

    rows = open_build(build_dir).execute("SELECT shard, list(key) FROM kept GROUP BY shard").fetchall()
    return {shard: frozenset(keys) for shard, keys in rows}


def compare(before: dict, after: dict, keys_before: dict, keys_after: dict) -> dict[str, int]:
    """Counts of shards rewritten (bytes, inode or mtime changed, or new) and of shards whose samples
    changed; `needless` is rewritten without a change of samples."""
    names = set(before) | set(after)
    rewritten = {name for name in names if before.get(name) != after.get(name)}
    changed = {name for name in names if keys_before.get(name) != keys_after.get(name)}
    return {"shards_before": len(before), "shards_after": len(after), "rewritten": len(rewritten),
            "changed": len(changed), "needless": len(rewritten - changed)}


def main(argv: list[str] | None = None) -> int:
    from filters.demo_models import write_demo_models
    from pipeline.bench.build import make_corpus, measure_build
    from pipeline.bench.measure import run_measured

    parser = argparse.ArgumentParser(prog="python -m pipeline.bench.rethreshold", description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=10_000, help="ROCOv2 images; records = 2x (issue: 20,000)")
    parser.add_argument("--keep-fraction", type=float, default=0.45, help="the new cut (the build keeps 0.5)")
    parser.add_argument("--workdir", default=None, help="scratch folder (default: a temporary one, removed)")
    args = parser.parse_args(argv)
    workdir = Path(args.workdir or tempfile.mkdtemp(prefix="unimed-bench-rethreshold-"))
    try:
        models = workdir / "demo-models"
        write_demo_models(models, None)
        corpus = workdir / "corpus"
        make_corpus(corpus, args.images, mixed=False)
        built = measure_build(corpus, workdir / "out", args.images, models_dir=models)
        build_dir = Path(built["build_dir"])
        states, keys = shard_states(build_dir), shard_keys(build_dir)
        again = run_measured([sys.executable, "-m", "pipeline.cli", "rethreshold", str(build_dir), "--keep-fraction",
                              str(args.keep_fraction)], watch=build_dir, env={"HF_HUB_OFFLINE": "1"})
        counts = compare(states, shard_states(build_dir), keys, shard_keys(build_dir))
    finally:
        if not args.workdir:
            shutil.rmtree(workdir, ignore_errors=True)
    share = again["seconds"] / built["seconds"]
    print(f"P7   rethreshold {100 * share:.1f}% of the build's wall time ({again['seconds']:.1f} s vs "  # noqa: T201
          f"{built['seconds']:.1f} s)  goal < 10%  {'MET' if share < 0.1 else 'NOT MET'}  [{built['records']:,} "
          f"records from {args.images:,} images, aligned on demo models (CPU); keep fraction 0.5 -> "
          f"{args.keep_fraction}; both timed from spawn; {again['bytes_written'] / 1e6:.0f} MB written by it]")
    print(f"P7   shards rewritten without a change of samples: {counts['needless']}  goal 0  "  # noqa: T201
          f"{'MET' if counts['needless'] == 0 else 'NOT MET'}  [{counts['rewritten']} rewritten, {counts['changed']} "
          f"with changed samples, of {counts['shards_before']} before / {counts['shards_after']} after; "
          "rewritten = bytes, inode or mtime changed]")
    return 0


if __name__ == "__main__":
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    raise SystemExit(main())
