"""Loader benchmark (P5): curriculum loader vs plain `webdataset.WebDataset`, start-up at scale, and
observed family proportions.

    python -m pipeline.bench.loader [--build build/stage1] [--samples 2000] [--batch-size 16]
                                    [--index-samples 1000000]

1. Throughput: the same shards, the same decoding (`SampleDecoder`) and collate, in the same process;
   plain WebDataset iterates the tars in order, the curriculum loader draws by the stage's weights and
   reads members by offset. Reported: samples/s of each and their ratio (target >= 0.9).
2. Proportions: 10,000 draws of each stage's plan (random and stratified) against the normalised weights
   (target: within 1 percentage point).
3. Start-up at `--index-samples` (issue: 1M; 0 skips it): a build of tiny shards (1000 samples each,
   grouped by family as finalisation groups them) and its manifest, generated fast; a fresh process
   builds the index and reads its first batch, timed from spawn, with its peak RSS. The loader's
   throughput on those shards is measured too: cold (each shard's headers read on its first use) and
   warm (the same index again).
Without `--build`, a synthetic build of all four task families is written to a temporary folder.
"""

from __future__ import annotations

import argparse
import io
import itertools
import posixpath
import json
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from pipeline.curriculum.schedule import FAMILIES, CURRICULUM_STAGES, Schedule, normalised
from pipeline.curriculum.loader import CurriculumDataset
from pipeline.curriculum.decode import ImageTransform, SampleDecoder, collate
from pipeline.curriculum.mixture import MixtureConfig, MixturePlan
from pipeline.curriculum.index import build_index, shard_paths

SYNTHETIC_COUNTS = {"i2t": 600, "t2i": 300, "interleaved": 150, "text": 100}


def _png(rng: np.random.Generator, size: int, sixteen_bit: bool = False) -> bytes:
    from PIL import Image

    if sixteen_bit:
        image = Image.fromarray(rng.integers(0, 65535, (size, size), dtype=np.uint16))
    else:
        image = Image.fromarray(rng.integers(0, 255, (size, size), dtype=np.uint8))
    out = io.BytesIO()
    image.save(out, format="PNG", compress_level=1)
    return out.getvalue()


def _image_counts(family: str, index: int) -> tuple[int, int]:
    return ({"i2t": 1 + index % 2, "t2i": 0, "interleaved": 1, "text": 0}[family],
            {"i2t": 0, "t2i": 1, "interleaved": 1, "text": 0}[family])


def synthetic_sample(family: str, index: int, source: str, rng: np.random.Generator,
                     image_size: int) -> tuple[dict[str, Any], dict[str, bytes]]:
    """One sample in exactly the shard format: UniMedVL's record plus its image members."""
    n_in, n_out = _image_counts(family, index)
    images = {f"in{i}.png": _png(rng, image_size, sixteen_bit=(index % 5 == 0)) for i in range(n_in)}
    images.update({f"out{i}.png": _png(rng, image_size) for i in range(n_out)})
    placeholders = "<image>\n" * n_in
    prompts = {"i2t": ("Describe the findings.", f"Finding number {index} in the {source} image."),
               "t2i": (f"A {source} scan showing finding {index}.", None),
               "interleaved": ("Translate this T2 slice to FLAIR.", f"The FLAIR slice {index}."),
               "text": (f"What is finding {index}?", f"Finding {index} is a textbook entity.")}[family]
    message = [{"from": "human", "value": placeholders + prompts[0]}]
    if prompts[1] is not None:
        message.append({"from": "gpt", "value": prompts[1]})
    doc = {"id": f"{source}/{family}/{index:06d}", "main_task_type": family, "sub_task_type": family,
           "modality": "other", "dataset": source, "split": "train",
           "input_img": [{"path": f"in{i}.png", "height": image_size, "width": image_size} for i in range(n_in)],
           "output_img": [{"path": f"out{i}.png", "height": image_size, "width": image_size} for i in range(n_out)],
           "message": message}
    return doc, images


def write_synthetic_build(out: Path, counts: dict[str, int] | None = None, per_shard: int = 100, image_size: int = 32,
                          sources: tuple[str, ...] = ("srca", "srcb"), seed: int = 0, manifest: bool = True) -> Path:
    """A build directory (shards + manifest + card) holding every task family, in the real layout:
    one member layout per group, `shards/<group>/<name>-<group>-NNNNNN.tar` (manifests/shards.py)."""
    import pyarrow as pa
    import pyarrow.parquet as pq
    import webdataset as wds

    from manifests.records import shard_key
    from manifests.shards import dataset_card, shard_group, shard_name

    counts = counts or SYNTHETIC_COUNTS
    out = Path(out)
    (out / "shards").mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    groups: dict[str, list[tuple[str, int, str]]] = {}
    for family in FAMILIES:
        for i in range(counts.get(family, 0)):
            n_in, n_out = _image_counts(family, i)
            suffixes = [f"in{k}.png" for k in range(n_in)] + [f"out{k}.png" for k in range(n_out)]
            groups.setdefault(shard_group(family, suffixes), []).append((family, i, sources[i % len(sources)]))
    rows, sizes = [], {}
    for group, items in sorted(groups.items()):
        items.sort(key=lambda item: f"{item[2]}/{item[0]}/{item[1]:06d}")  # id order, as finalize writes
        sizes[group] = len(items)
        for start in range(0, len(items), per_shard):
            name = shard_name(out.name, group, start // per_shard)
            (out / "shards" / name).parent.mkdir(parents=True, exist_ok=True)
            with wds.TarWriter(str(out / "shards" / name), encoder=False, mtime=0) as writer:
                for family, index, source in items[start:start + per_shard]:
                    doc, images = synthetic_sample(family, index, source, rng, image_size)
                    key = shard_key(doc["id"])
                    writer.write({"__key__": key, "json": json.dumps(doc).encode(), **images})
                    rows.append({"id": doc["id"], "source": source, "task_family": family, "status": "kept",
                                 "shard": name, "key": key})
    (out / "README.md").write_text(dataset_card(out.name, sizes), encoding="utf-8")
    if manifest:
        (out / "manifest").mkdir(exist_ok=True)
        pq.write_table(pa.Table.from_pylist(rows), out / "manifest" / "part-00000.parquet")
    return out


def write_tiny_build(out: Path, samples: int, per_shard: int = 1000, seed: int = 0) -> Path:
    """`samples` tiny samples (an 8 px PNG per image, a short JSON) in the real shard layout, with a
    manifest of the columns the loader reads: fast enough for a million (one template per family)."""
    import tarfile

    import pyarrow as pa
    import pyarrow.parquet as pq

    from manifests.records import shard_key
    from manifests.shards import dataset_card, shard_group, shard_name

    rng = np.random.default_rng(seed)
    share = {f: n / sum(SYNTHETIC_COUNTS.values()) for f, n in SYNTHETIC_COUNTS.items()}
    counts = {f: int(samples * share[f]) for f in FAMILIES}
    counts["i2t"] += samples - sum(counts.values())
    png = _png(rng, 8)
    columns: dict[str, list] = {name: [] for name in ("id", "source", "task_family", "status", "shard", "key")}
    sizes = {}
    for family in FAMILIES:
        n_in, n_out = {"i2t": (1, 0), "t2i": (0, 1), "interleaved": (1, 1), "text": (0, 0)}[family]
        suffixes = [f"in{k}.png" for k in range(n_in)] + [f"out{k}.png" for k in range(n_out)]
        group = shard_group(family, suffixes)
        sizes[group] = counts[family]
        template, _ = synthetic_sample(family, 0, "srca", rng, 8)  # index 0: one input image
        for start in range(0, counts[family], per_shard):
            name = shard_name(out.name, group, start // per_shard)
            path = out / "shards" / name
            path.parent.mkdir(parents=True, exist_ok=True)
            with tarfile.open(path, "w", format=tarfile.USTAR_FORMAT) as tar:
                for i in range(start, min(start + per_shard, counts[family])):
                    source = "srca" if i < counts[family] // 2 else "srcb"  # ids in write order, as finalize
                    doc = {**template, "id": f"{source}/{family}/{i:07d}", "dataset": source}
                    key = shard_key(doc["id"])
                    for suffix, data in (("json", json.dumps(doc).encode()), *((s, png) for s in suffixes)):
                        info = tarfile.TarInfo(f"{key}.{suffix}")
                        info.size = len(data)
                        tar.addfile(info, io.BytesIO(data))
                    for column, value in zip(columns, (doc["id"], source, family, "kept", name, key)):
                        columns[column].append(value)
    (out / "README.md").write_text(dataset_card(out.name, sizes), encoding="utf-8")
    (out / "manifest").mkdir(exist_ok=True)
    pq.write_table(pa.table(columns), out / "manifest" / "part-00000.parquet")
    return out


def _startup(build: Path) -> dict[str, float]:
    """In a fresh process: the index and the first batch of stage 1, and this process's peak RSS."""
    import resource

    started = time.perf_counter()
    dataset = CurriculumDataset([build], Schedule((CURRICULUM_STAGES[1],), scale=1e-3), MixtureConfig(batch_size=16),
                                SampleDecoder(image_transform=ImageTransform(64), max_tokens=512))
    indexed = time.perf_counter()
    next(iter(dataset))
    return {"samples": len(dataset.index), "index_s": indexed - started, "first_batch_s": time.perf_counter() - indexed,
            "peak_rss": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024}


def bench_startup(samples: int, workdir: Path) -> dict[str, Any]:
    import sys

    from pipeline.bench.measure import run_measured

    started = time.perf_counter()
    build = write_tiny_build(workdir / "tiny", samples)
    generated = time.perf_counter() - started
    run = run_measured([sys.executable, "-m", "pipeline.bench.loader", "--startup", str(build)])
    return {"generate_s": generated, "spawn_to_first_batch_s": run["seconds"], **run["result"], "build": build}


def bench_throughput(build: Path, samples: int, batch_size: int, image_size: int) -> dict[str, float]:
    import webdataset as wds

    decoder = SampleDecoder(image_transform=ImageTransform(image_size), max_tokens=512)
    # shards round-robin over the groups (one family each), so plain WebDataset meets every family early
    # as the mixture does, instead of only the first group's
    by_group: dict[str, list[str]] = {}
    for path in shard_paths([build]):
        by_group.setdefault(posixpath.basename(posixpath.dirname(path)), []).append(path)  # a path or a URL
    shards = [path for round_ in itertools.zip_longest(*by_group.values()) for path in round_ if path]

    def plain() -> tuple[int, int]:
        seen, images, batch = 0, 0, []
        dataset = wds.WebDataset(shards, shardshuffle=False, empty_check=False)
        while seen < samples:
            for raw in dataset:
                doc = json.loads(raw["json"])
                members = {k: v for k, v in raw.items() if not k.startswith("__") and k != "json"}
                sample = decoder(doc, members)
                sample.update(family="i2t", key=raw["__key__"], source="", stream="", draw=0)
                images += len(sample["input_images"]) + len(sample["output_images"])
                batch.append(sample)
                if len(batch) == batch_size:
                    collate(batch)
                    seen, batch = seen + batch_size, []
                    if seen >= samples:
                        break
        return seen, images

    index = build_index([build])  # once: the first curriculum run reads each shard's headers (cold), the second not

    def curriculum() -> tuple[int, int]:
        steps = samples // batch_size
        schedule = Schedule((CURRICULUM_STAGES[3],), scale=steps / CURRICULUM_STAGES[3].steps)
        dataset = CurriculumDataset(index, schedule, MixtureConfig(batch_size=batch_size), decoder)
        seen = images = 0
        for batch in dataset:
            seen += len(batch["key"])
            images += batch["input_images"].shape[0] + batch["output_images"].shape[0]
        return seen, images

    # each measured twice, interleaved: webdataset best of two; the curriculum loader cold, then warm
    rates: dict[str, list[tuple[float, float]]] = {"webdataset": [], "curriculum": []}
    for name, run in (("webdataset", plain), ("curriculum", curriculum)) * 2:
        started = time.perf_counter()
        count, images = run()
        elapsed = time.perf_counter() - started
        rates[name].append((count / elapsed, images / elapsed))
    wds_rate, ours = max(rates["webdataset"]), rates["curriculum"][0]
    warm = rates["curriculum"][1]
    # the mixture draws image-heavier families than the shards' own order holds, so images/s is the
    # like-for-like figure; samples/s is reported as asked
    return {"webdataset_samples_per_s": wds_rate[0], "curriculum_samples_per_s": ours[0],
            "ratio": ours[0] / wds_rate[0], "webdataset_images_per_s": wds_rate[1],
            "curriculum_images_per_s": ours[1], "images_ratio": ours[1] / wds_rate[1],
            "warm_ratio": warm[0] / wds_rate[0], "warm_images_ratio": warm[1] / wds_rate[1]}


def observed_proportions(stage: int, draws: int = 10_000, mode: str = "random", global_batch: int = 16,
                         seed: int = 0) -> dict[str, float]:
    """Family shares over `draws` draws of a stage's plan (no reading): the mixer alone."""
    steps = -(-draws // global_batch)
    schedule = Schedule((CURRICULUM_STAGES[stage],), scale=steps / CURRICULUM_STAGES[stage].steps)
    config = MixtureConfig(batch_size=global_batch, seed=seed, mode=mode)
    plan = MixturePlan(list(FAMILIES), [1000] * 4, list(FAMILIES), [1.0] * 4, schedule, config)
    counts = dict.fromkeys(FAMILIES, 0)
    taken = 0
    while taken < draws:
        for stream, _ in plan.next_batch()[: draws - taken]:
            counts[FAMILIES[stream]] += 1
            taken += 1
    return {family: counts[family] / draws for family in FAMILIES}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m pipeline.bench.loader", description=__doc__.splitlines()[0])
    parser.add_argument("--build", help="a build directory (default: a synthetic one)")
    parser.add_argument("--samples", type=int, default=2000)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--image-size", type=int, default=64, help="side the decoder resizes to")
    parser.add_argument("--index-samples", type=int, default=1_000_000,
                        help="P5 start-up: samples of the generated tiny build (issue: 1M; 0 skips)")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--startup", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.startup:
        print(json.dumps(_startup(Path(args.startup))))
        return 0

    with tempfile.TemporaryDirectory(prefix="bench-loader-") as tmp:
        build = Path(args.build) if args.build else write_synthetic_build(Path(tmp) / "synthetic", image_size=128)
        report: dict[str, Any] = {"throughput": bench_throughput(build, args.samples, args.batch_size,
                                                                 args.image_size)}
        if args.index_samples:
            startup = bench_startup(args.index_samples, Path(tmp))
            report["startup"] = {k: v for k, v in startup.items() if k != "build"}
            report["throughput_at_scale"] = bench_throughput(startup["build"], args.samples, args.batch_size,
                                                             args.image_size)
    report["proportions"] = {}
    for stage in CURRICULUM_STAGES:
        expected = normalised(CURRICULUM_STAGES[stage].weights)
        for mode in ("random", "stratified"):
            observed = observed_proportions(stage, mode=mode)
            worst = max(abs(observed[f] - expected[f]) for f in FAMILIES) * 100
            report["proportions"][f"stage{stage}/{mode}"] = {
                "observed": observed, "expected": expected, "max_abs_error_pp": worst}
    if args.json:
        print(json.dumps(report, indent=2))
        return 0
    t = report["throughput"]
    print(f"throughput ({args.samples} samples, batch {args.batch_size}, decode to {args.image_size} px):")
    print(f"  webdataset.WebDataset  {t['webdataset_samples_per_s']:8.1f} samples/s")
    print(f"  curriculum loader      {t['curriculum_samples_per_s']:8.1f} samples/s   "
          f"ratio {t['ratio']:.3f} (target >= 0.9)")
    print(f"  images decoded/s: webdataset {t['webdataset_images_per_s']:.1f}, curriculum "
          f"{t['curriculum_images_per_s']:.1f}, ratio {t['images_ratio']:.3f}")
    print(f"  curriculum loader warm (shard headers already read): ratio {t['warm_ratio']:.3f}")
    if "startup" in report:
        u, big = report["startup"], report["throughput_at_scale"]
        fast = u["spawn_to_first_batch_s"] < 15 and u["peak_rss"] < 1.5e9
        print(f"P5   start-up {u['spawn_to_first_batch_s']:.1f} s, peak RSS {u['peak_rss'] / 2**30:.2f} GiB at "
              f"{u['samples']:,} samples  goal < 15 s, < 1.5 GB  {'MET' if fast else 'NOT MET'}  [fresh process, "
              f"spawn to first batch (index {u['index_s']:.1f} s, first batch {u['first_batch_s']:.1f} s); "
              f"tiny shards of 1000 generated in {u['generate_s']:.0f} s]")
        print(f"P5   throughput {big['ratio']:.2f} of plain webdataset cold, {big['warm_ratio']:.2f} warm (images/s: "
              f"{big['images_ratio']:.2f} cold, {big['warm_images_ratio']:.2f} warm)  goal >= 0.90"
              f"  {'MET' if big['ratio'] >= 0.9 else 'NOT MET'}  [{args.samples} samples over the same "
              f"{u['samples']:,}-sample shards; cold: each shard's headers read on first use]")
    print("family proportions over 10,000 draws (target: within 1 pp of the normalised weights):")
    for name, row in report["proportions"].items():
        shares = "  ".join(f"{f} {row['observed'][f] * 100:5.2f}/{row['expected'][f] * 100:5.2f}" for f in FAMILIES)
        print(f"  {name:18s} {shares}   max error {row['max_abs_error_pp']:.2f} pp")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
