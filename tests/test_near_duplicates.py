"""Near duplicates and benchmark decontamination: generated image pairs and texts, the keep rule, the
LSH against brute force, a planted benchmark image, and a sample build with the contamination view."""

from __future__ import annotations

import io
import json

import duckdb
import numpy as np
import pyarrow as pa
import pytest
from PIL import Image as PILImage

from filters.decontamination import contamination_report, match_benchmarks, reject_benchmark_overlap
from filters.near_duplicates import (NearDuplicateRules, hamming, hamming_pairs, near_duplicate_rejections,
                                     phash_of_pil, text_minhash)
from sources.samples.common import phantom, rng_for

VARIANTS = ("resized", "jpeg", "cropped", "shifted")


def variant(pixels: np.ndarray, kind: str) -> PILImage.Image:
    picture = PILImage.fromarray(pixels)
    width, height = picture.size
    if kind == "resized":
        return picture.resize((width // 2, height // 2), PILImage.BILINEAR)
    if kind == "jpeg":
        buffer = io.BytesIO()
        picture.save(buffer, format="JPEG", quality=60)
        return PILImage.open(io.BytesIO(buffer.getvalue()))
    if kind == "cropped":  # 2% off each side
        return picture.crop((width // 50, height // 50, width - width // 50, height - height // 50))
    return PILImage.fromarray(np.clip(pixels.astype(np.int16) + 20, 0, 255).astype(np.uint8))  # shifted


def rows(ids, sources, phashes, texts, pixels=None, families=None) -> pa.Table:
    n = len(ids)
    return pa.table({"id": ids, "source": sources, "task_family": families or ["i2t"] * n,
                     "pixels": pixels or [256 * 256] * n, "phash": pa.array(phashes, pa.int64()),
                     "text_minhash": pa.array(texts, pa.binary())})


def generated_set(count: int = 40):
    """`count` distinct phantoms (same modality and view: one grey blob image each) and their four copies."""
    originals, copies = [], {kind: [] for kind in VARIANTS}
    for seed in range(count):
        pixels = phantom(rng_for(f"near-dup-{seed}"), 256, 256)
        originals.append(phash_of_pil(PILImage.fromarray(pixels)))
        for kind in VARIANTS:
            copies[kind].append(phash_of_pil(variant(pixels, kind)))
    return originals, copies


def test_copies_are_caught_and_distinct_images_are_not():
    originals, copies = generated_set()
    caption = text_minhash("Axial brain MRI, T2 weighted, no acute abnormality.")
    for kind in VARIANTS:
        ids = [f"a/{i:03d}" for i in range(len(originals))] + [f"b/{i:03d}" for i in range(len(originals))]
        table = rows(ids, ["a"] * len(originals) + ["b"] * len(originals), originals + copies[kind],
                     [caption] * len(ids))
        rejected = near_duplicate_rejections(table, NearDuplicateRules(rule="image", source_priority=("a", "b")))
        caught = {row["id"] for row in rejected.to_pylist() if row["kept_id"] == "a" + row["id"][1:]}
        assert len(caught) / len(originals) >= 0.9, kind  # measured: resized/jpeg/shifted 1.0, cropped 2% 0.95+
    # distinct phantoms, all pairs: false positives at distance <= 8 stay rare
    pairs = [(i, j) for i in range(len(originals)) for j in range(i + 1, len(originals))]
    false = sum(hamming(originals[i], originals[j]) <= 8 for i, j in pairs)
    assert false / len(pairs) <= 0.01
    alone = near_duplicate_rejections(rows([f"a/{i:03d}" for i in range(len(originals))], ["a"] * len(originals),
                                           originals, [caption] * len(originals)), NearDuplicateRules(rule="image"))
    assert alone.num_rows <= 1


def test_text_near_copies_are_caught_and_other_texts_are_not():
    base = "Contrast-enhanced CT of the abdomen shows a 3 cm hypodense lesion in segment VII of the liver."
    near = "contrast enhanced CT of the abdomen shows a 3-cm hypodense lesion in segment 7 of the liver"
    other = "Chest radiograph: the heart size is normal and the lungs are clear, no pleural effusion."
    table = rows(["t/1", "t/2", "t/3"], ["x"] * 3, [None] * 3, [text_minhash(t) for t in (base, near, other)],
                 families=["text"] * 3)
    rejected = near_duplicate_rejections(table, NearDuplicateRules()).to_pylist()
    assert [(r["id"], r["kept_id"]) for r in rejected] == [("t/2", "t/1")]
    assert "text Jaccard" in rejected[0]["detail"]


def test_keep_rule_source_priority_then_resolution_then_id_and_same_image_new_question():
    pixels = phantom(rng_for("keep-rule"), 256, 256)
    h = phash_of_pil(PILImage.fromarray(pixels))
    caption = text_minhash("Fundus photograph with drusen at the macula.")
    question = text_minhash("How many optic discs are visible in this photograph?")
    table = rows(["z/1", "y/1", "y/2", "y/3"], ["low", "high", "high", "high"], [h, h ^ 3, h ^ 1, h],
                 [caption, caption, caption, question], pixels=[10**6, 100, 400, 400])
    rejected = {r["id"]: r for r in near_duplicate_rejections(
        table, NearDuplicateRules(source_priority=("high", "low"))).to_pylist()}
    # "high" first, then more pixels: y/2 kept; y/3 has the same image but another text: kept too
    assert set(rejected) == {"z/1", "y/1"} and {r["kept_id"] for r in rejected.values()} == {"y/2"}
    assert "pHash distance" in rejected["z/1"]["detail"] and "y/2" in rejected["z/1"]["detail"]


def test_lsh_pairs_agree_with_brute_force():
    rng = np.random.default_rng(0)
    base = rng.integers(-2**63, 2**63 - 1, size=400, dtype=np.int64)
    flips = [np.int64(sum(1 << int(b) for b in rng.choice(63, size=rng.integers(0, 9), replace=False)))
             for _ in range(100)]
    hashes = np.concatenate([base, base[:100] ^ np.array(flips, dtype=np.int64)])
    truth = {(i, j) for i in range(len(hashes)) for j in range(i + 1, len(hashes))
             if hamming(int(hashes[i]), int(hashes[j])) <= 8}
    found = hamming_pairs(hashes, None, 8)
    got = set(zip(found.column("i").to_pylist(), found.column("j").to_pylist()))
    assert got <= truth and len(got) >= 0.95 * len(truth)
    assert all(hamming(int(hashes[i]), int(hashes[j])) == d
               for i, j, d in zip(*(found.column(c).to_pylist() for c in ("i", "j", "distance"))))


@pytest.mark.parametrize("batch_rows", [50_000, 3])
def test_planted_benchmark_image_is_rejected_and_reported(batch_rows, monkeypatch):
    import filters.decontamination

    monkeypatch.setattr(filters.decontamination, "TRAIN_BATCH_ROWS", batch_rows)  # 11 rows in one batch, or four
    bench_pixels = phantom(rng_for("benchmark-item"), 256, 256)
    planted = phash_of_pil(variant(bench_pixels, "jpeg").resize((200, 200)))
    others = [phash_of_pil(PILImage.fromarray(phantom(rng_for(f"train-{i}"), 256, 256))) for i in range(10)]
    con = duckdb.connect()
    train = pa.table({"id": [f"train/{i}" for i in range(11)], "source": ["roco"] * 11, "status": ["kept"] * 11,
                      "reason": pa.array([None] * 11, pa.string()), "detail": pa.array([None] * 11, pa.string()),
                      "pixel_hash": [f"p{i}" for i in range(11)], "slice_index": pa.array([None] * 11, pa.int32()),
                      "phash": pa.array(others + [planted], pa.int64()),
                      "text_minhash": pa.array([text_minhash("A figure caption about anything.")] * 11, pa.binary())})
    con.register("train_in", train)
    con.execute("CREATE TABLE chosen AS SELECT * FROM train_in")
    bench = pa.table({"benchmark": ["slake"], "item_id": ["slake/test/7"], "split": ["test"], "pixel_hash": ["b7"],
                      "phash": pa.array([phash_of_pil(PILImage.fromarray(bench_pixels))], pa.int64()),
                      "text_minhash": pa.array([text_minhash("Which organ is abnormal?")], pa.binary()),
                      "is_slice": [False]})
    match_benchmarks(con, bench)
    assert reject_benchmark_overlap(con) == 1
    rejected = con.execute("SELECT id, detail FROM chosen WHERE reason = 'benchmark_overlap'").fetchall()
    assert rejected[0][0] == "train/10" and "slake item slake/test/7 (pHash distance" in rejected[0][1]
    (row,) = contamination_report(con, bench).to_pylist()
    assert (row["benchmark"], row["source"], row["benchmark_items"], row["exact"]) == ("slake", "roco", 1, 0)
    assert (row["phash_le_8"], row["phash_le_16"], row["text_jaccard_ge_0_5"], row["rejected_rows"]) == (1, 1, 0, 1)


@pytest.fixture(scope="module")
def near_dup_build(ray_session, sample_root, tmp_path_factory):
    """vqa_rad and HAM10000 from the sample, with a resized JPEG copy of a VQA-RAD test image planted in
    HAM10000 and a re-encoded copy of one HAM10000 image planted as an extra ISIC image."""
    import shutil

    from pipeline.engine.build import build
    from sources import get_source
    from tests.conftest import sample_recipe

    root = tmp_path_factory.mktemp("planted")
    for name in ("VQA_RAD", "HAM10000"):
        shutil.copytree(sample_root / name, root / name)
    adapter = get_source("vqa_rad")(root / "VQA_RAD", {}, ["test"])
    test_items = [r for u in adapter.work_units() for r in adapter.iter_records(u) if hasattr(r, "images") and r.images]
    test_item = test_items[0]
    # VQA-RAD asks several questions about one image: each is a benchmark item with the planted neighbour
    same_image = sum(1 for r in test_items if r.images[0].pixel_hash == test_item.images[0].pixel_hash)
    picture = PILImage.open(io.BytesIO(test_item.images[0].encoded)) if test_item.images[0].encoded is not None \
        else PILImage.fromarray(test_item.images[0].pixels)
    target = root / "HAM10000" / "HAM10000_images_part_1" / "ISIC_0027419.jpg"
    picture.convert("RGB").resize((200, 150)).save(target, format="JPEG", quality=70)
    recipe = sample_recipe()
    recipe.sources = [entry for entry in recipe.sources if entry.name in ("vqa_rad", "ham10000")]
    recipe.near_duplicates.enabled = True
    recipe.near_duplicates.benchmarks = [b for b in recipe.near_duplicates.benchmarks if b.name == "vqa_rad"]
    return build(recipe, tmp_path_factory.mktemp("nd-build"), root, progress=False), test_item.id, same_image, root


def test_sample_build_rejects_planted_benchmark_copy_and_has_contamination_view(near_dup_build):
    from manifests.query import open_build

    report, item_id, same_image, _ = near_dup_build
    con = open_build(report.out_dir)
    planted = con.execute("SELECT id, detail FROM records WHERE reason = 'benchmark_overlap' AND source = 'ham10000'"
                          ).fetchall()
    # the planted image is a caption and a T2I record of HAM10000: both rejected, both naming the item
    assert len(planted) == 2 and all(f"vqa_rad item {item_id}" in detail for _, detail in planted)
    assert con.execute("SELECT count(*) FROM kept WHERE phash IS NULL AND n_input_images > 0").fetchall()[0][0] == 0
    view = con.execute("SELECT source, phash_le_8, rejected_rows FROM contamination WHERE benchmark = 'vqa_rad'"
                       ).fetchall()
    assert ("ham10000", same_image, 2) in view  # benchmark items with a neighbour; both HAM10000 rows rejected
    stats = json.loads((report.out_dir / "stats.json").read_text())
    assert stats["near_duplicates"]["benchmark_overlap"] >= 1


def test_contamination_command_matches_every_kept_row_once_and_leaves_the_build(near_dup_build, monkeypatch):
    """`unimed contamination` streams the kept rows past the benchmark (batches of 7 here) and copies only the
    matched rows: its report equals decontaminating a copy of every kept row, and the build is unchanged."""
    import filters.decontamination
    from manifests.query import open_build
    from pipeline.engine.benchmarks import read_benchmarks
    from pipeline.engine.near_duplicates import decontaminate
    from pipeline.rescore.contamination import contamination_of_build
    from pipeline.rescore.rethreshold import load_build_recipe

    report, _, _, root = near_dup_build
    manifest = sorted((report.out_dir / "manifest").glob("*.parquet"))
    before = [(path.stat().st_mtime_ns, path.read_bytes()) for path in manifest]
    recipe, _ = load_build_recipe(report.out_dir)
    bench, _ = read_benchmarks(recipe.near_duplicates, root)
    con = open_build(report.out_dir)
    con.execute("CREATE TABLE scratch AS SELECT * FROM kept")
    expected = decontaminate(con, recipe, bench, table="scratch").to_pylist()
    monkeypatch.setattr(filters.decontamination, "TRAIN_BATCH_ROWS", 7)
    summary = contamination_of_build(report.out_dir, None, root)
    assert summary["report"] == expected and expected
    assert [(path.stat().st_mtime_ns, path.read_bytes()) for path in manifest] == before
