"""End-to-end builds on the sample tree: layout, shard/manifest consistency, readers, determinism,
reruns, kill-and-rerun, failing units and bad input."""

from __future__ import annotations

import hashlib
import json
import os
import re
import signal
import subprocess
import sys
import tarfile
import time
from pathlib import Path

import duckdb
import pytest

from manifests.query import open_build
from manifests.shards import list_shards, relative_shard
from pipeline.engine.build import EXIT_INCOMPLETE, build
from pipeline.config import SourceEntry
from sources import SOURCES
from tests.conftest import REPO, sample_recipe
from tests.support import make_flaky_root


def shard_digests(build_dir: Path) -> dict[str, str]:
    return {relative_shard(build_dir, p): hashlib.sha256(p.read_bytes()).hexdigest() for p in list_shards(build_dir)}


def manifest_rows(build_dir: Path) -> list[tuple]:
    return open_build(build_dir).execute(
        "SELECT id, status, reason, shard, key, content_hash FROM records ORDER BY id").fetchall()


def test_layout_and_summary_counts(stage1_build):
    out = stage1_build.out_dir
    assert (out / "config.resolved.yaml").is_file()
    first = relative_shard(out, list_shards(out)[0])  # shards/<group>/<recipe>-<group>-<tag>.tar
    group = first.partition("/")[0]
    assert re.fullmatch(rf"{group}/stage1-{group}-[0-9a-f]{{10}}\.tar", first)
    stats = json.loads((out / "stats.json").read_text())
    assert stats["kept"] == stage1_build.result.kept > 0
    assert stats["rejected"] == stage1_build.result.rejected > 0
    assert stats["failed_units"] == [] and stage1_build.exit_code == 0
    # every registered source of the recipe contributes kept records, and rejections carry a reason
    con = open_build(out)
    kept_sources = {row[0] for row in con.execute("SELECT DISTINCT source FROM kept").fetchall()}
    assert kept_sources == {entry.name for entry in sample_recipe().sources}
    assert con.execute("SELECT count(*) FROM rejected WHERE reason IS NULL OR reason = ''").fetchone()[0] == 0
    assert con.execute("SELECT count(*) FROM records").fetchone()[0] == stats["kept"] + stats["rejected"]


def test_every_kept_row_is_in_its_shard_exactly_once(stage1_build):
    out = stage1_build.out_dir
    con = open_build(out)
    kept = {key: shard for key, shard in con.execute("SELECT key, shard FROM kept").fetchall()}
    assert con.execute("SELECT count(*) FROM kept WHERE key IS NULL OR shard IS NULL").fetchone()[0] == 0
    assert con.execute("SELECT count(*) FROM rejected WHERE key IS NOT NULL OR shard IS NOT NULL").fetchone()[0] == 0
    in_shards: dict[str, str] = {}
    for shard in list_shards(out):
        with tarfile.open(shard) as tar:
            for member in tar.getmembers():
                key, _, suffix = member.name.partition(".")
                assert "." not in key and "/" not in key
                if suffix == "json":
                    assert key not in in_shards, f"{key} appears twice"
                    in_shards[key] = relative_shard(out, shard)
                    document = json.loads(tar.extractfile(member).read())
                    names = set(tar.getnames())
                    for ref in document["input_img"] + document["output_img"]:
                        assert f"{key}.{ref['path']}" in names
    assert in_shards == kept
    assert len(kept) <= stage1_build.result.kept and max(
        sum(1 for _ in tarfile.open(p)) for p in list_shards(out)) <= 4 * 3  # max_samples=4


def test_shards_read_with_webdataset_and_ray(stage1_build, ray_session):
    import ray.data
    import webdataset as wds

    out = stage1_build.out_dir
    urls = [str(p) for p in list_shards(out)]
    samples = list(wds.WebDataset(urls, shardshuffle=False).decode("pil"))
    assert len(samples) == stage1_build.result.kept
    for sample in samples:
        document = sample["json"]
        for ref in document["input_img"] + document["output_img"]:
            image = sample[ref["path"]]
            assert (image.width, image.height) == (ref["width"], ref["height"])
        placeholders = sum(turn["value"].count("<image>") for turn in document["message"])
        assert placeholders == len(document["input_img"])
    rows = ray.data.read_webdataset(urls, decoder=None).take_all()
    assert sorted(row["__key__"] for row in rows) == sorted(s["__key__"] for s in samples)


def test_second_build_is_byte_identical_and_rerun_is_a_noop(stage1_build, sample_root, tmp_path):
    again = build(sample_recipe(), tmp_path, sample_root, progress=False)
    assert shard_digests(again.out_dir) == shard_digests(stage1_build.out_dir)
    assert manifest_rows(again.out_dir) == manifest_rows(stage1_build.out_dir)
    rerun = build(sample_recipe(), tmp_path, sample_root, progress=False)
    assert rerun.units_run == 0 and rerun.result.shards_written == 0
    assert shard_digests(rerun.out_dir) == shard_digests(stage1_build.out_dir)


def test_exact_duplicates_are_rejected_once(ray_session, sample_root, tmp_path):
    # Copy SLAKE with one QA row repeated under a new qid: same pixels, same text.
    import shutil

    root = tmp_path / "src"
    shutil.copytree(sample_root / "Slake1.0", root / "Slake1.0")
    rows = json.loads((root / "Slake1.0" / "train.json").read_text())
    rows.append({**rows[0], "qid": 999})
    (root / "Slake1.0" / "train.json").write_text(json.dumps(rows))
    report = build(sample_recipe(sources=[SourceEntry("slake", splits=["train"])]), tmp_path / "out", root,
                   progress=False)
    con = open_build(report.out_dir)
    assert con.execute("SELECT status, reason, detail FROM records WHERE id = 'slake/train/999'").fetchone() == (
        "rejected", "duplicate", "same decoded pixels and text as slake/train/0")
    assert con.execute("SELECT status FROM records WHERE id = 'slake/train/0'").fetchone() == ("kept",)


def test_malformed_json_is_a_rejection_and_the_build_goes_on(ray_session, sample_root, tmp_path):
    import shutil

    root = tmp_path / "src"
    shutil.copytree(sample_root / "Slake1.0", root / "Slake1.0")
    (root / "Slake1.0" / "train.json").write_text('[{"qid": 1, "question": "truncated')
    recipe = sample_recipe(sources=[SourceEntry("slake", splits=["train", "validate"])])
    report = build(recipe, tmp_path / "out", root, progress=False)
    con = open_build(report.out_dir)
    reason, detail = con.execute("SELECT reason, detail FROM records WHERE id = 'slake/train/train.json'").fetchone()
    assert reason == "malformed_json" and "line 1" in detail
    assert con.execute("SELECT count(*) FROM kept WHERE split = 'validate'").fetchone()[0] == 0  # xmlab3 too small
    assert con.execute("SELECT reason FROM records WHERE split = 'validate'").fetchone() == ("image_too_small",)
    assert report.exit_code == 0


def test_failed_unit_is_reported_then_completed_by_a_rerun(ray_session, tmp_path):
    root = tmp_path / "src"
    flaky_root = make_flaky_root(root)
    recipe = sample_recipe(sources=[SourceEntry("flaky", splits=["train"])])
    recipe.filters.language = None
    first = build(recipe, tmp_path / "out", root, progress=False)
    assert first.exit_code == EXIT_INCOMPLETE
    assert [u["unit_id"] for u in first.result.failed_units] == ["flaky/train/bad"]
    assert "simulated read failure" in first.result.failed_units[0]["error"]
    con = open_build(first.out_dir)
    # the good unit is in; nothing of the failed unit is (not even the row it emitted before failing)
    assert [r[0] for r in con.execute("SELECT id FROM kept ORDER BY id").fetchall()] == [
        "flaky/train/good-0", "flaky/train/good-1", "flaky/train/good-2"]
    (flaky_root / "fixed").touch()
    second = build(recipe, tmp_path / "out", root, progress=False)
    assert second.exit_code == 0 and second.units_run == 1
    ids = [r[0] for r in open_build(second.out_dir).execute("SELECT id FROM kept ORDER BY id").fetchall()]
    assert ids == [f"flaky/train/{name}-{i}" for name in ("bad", "good") for i in range(3)]


def _many_unit_slake(root: Path, images: int = 24, questions: int = 6) -> Path:
    """A SLAKE tree with many small units, so a build takes long enough to be killed half-way."""
    from sources.samples.common import phantom, rng_for, write_jpeg

    base = root / "Slake1.0"
    rng = rng_for("kill-test")
    rows = []
    for img in range(images):
        write_jpeg(base / "imgs" / f"xmlab{img}" / "source.jpg", phantom(rng, 192, 192))
        for q in range(questions):
            rows.append({"qid": img * questions + q, "img_id": img, "img_name": f"xmlab{img}/source.jpg",
                         "question": f"Question number {q} about image {img}?", "answer": f"Answer {q}",
                         "q_lang": "en", "modality": "CT", "location": "Abdomen"})
    base.mkdir(parents=True, exist_ok=True)
    (base / "train.json").write_text(json.dumps(rows))
    return root


def test_killed_build_reruns_to_the_same_result(ray_session, tmp_path):
    import yaml

    root = _many_unit_slake(tmp_path / "src")
    recipe_path = tmp_path / "recipe.yaml"
    recipe_path.write_text(yaml.safe_dump({
        "name": "killtest", "sources": [{"name": "slake", "splits": ["train"], "options": {"items_per_unit": 3}}],
        "shards": {"max_samples": 10}, "execution": {"batch_size": 4}}))
    command = [sys.executable, "-m", "pipeline.cli", "build", "--recipe", str(recipe_path), "--sources-root",
               str(root), "--out", str(tmp_path / "killed"), "--quiet"]
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    process = subprocess.Popen(command, env=env, start_new_session=True, stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
    staging = tmp_path / "killed" / "killtest" / ".state" / "staging"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and not list(staging.glob("*/*.parquet")):
        time.sleep(0.02)
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()
    staged_at_kill = len(list(staging.glob("*/*.parquet")))
    assert staged_at_kill > 0

    rerun = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
    assert rerun.returncode == 0, rerun.stderr[-2000:]
    clean = subprocess.run([*command[:-2], str(tmp_path / "clean"), "--quiet"], env=env, capture_output=True,
                           text=True, timeout=300)
    assert clean.returncode == 0, clean.stderr[-2000:]
    killed_dir, clean_dir = tmp_path / "killed" / "killtest", tmp_path / "clean" / "killtest"
    assert manifest_rows(killed_dir) == manifest_rows(clean_dir)
    assert len(manifest_rows(clean_dir)) == 24 * 6
    assert shard_digests(killed_dir) == shard_digests(clean_dir)


def test_query_cli_and_plain_duckdb(stage1_build):
    out = stage1_build.out_dir
    result = subprocess.run(
        [sys.executable, "-m", "pipeline.cli", "query", str(out),
         "SELECT source, task_family, count(*) AS n FROM kept GROUP BY ALL ORDER BY ALL", "--format", "json"],
        capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(REPO)}, timeout=60)
    assert result.returncode == 0, result.stderr
    rows = json.loads(result.stdout)
    assert sum(row["n"] for row in rows) == stage1_build.result.kept
    direct = duckdb.connect().execute(f"SELECT count(*) FROM '{out}/manifest/*.parquet' WHERE status = 'kept'").fetchone()[0]
    assert direct == stage1_build.result.kept


def test_sources_listing_json():
    result = subprocess.run([sys.executable, "-m", "pipeline.cli", "sources", "--json"], capture_output=True,
                            text=True, env={**os.environ, "PYTHONPATH": str(REPO)}, timeout=60)
    cards = json.loads(result.stdout)
    assert {card["name"] for card in cards} == set(SOURCES) - {"flaky"}
    assert all(card["root_names"] and card["access"] in ("open", "registration", "credentialed") for card in cards)


@pytest.mark.parametrize("only", ["slake"])
def test_missing_sources_are_reported_and_skipped(ray_session, sample_root, tmp_path, only):
    recipe = sample_recipe(sources=[SourceEntry("slake", splits=["train"]), SourceEntry("rocov2")])
    empty = tmp_path / "empty"
    empty.mkdir()
    report = build(recipe, tmp_path / "out", empty, source_paths={only: sample_root / "Slake1.0"}, progress=False)
    skipped = {s.name: s.reason for s in report.sources if s.root is None}
    assert list(skipped) == ["rocov2"] and "ROCOv2" in skipped["rocov2"]
    assert json.loads((report.out_dir / "stats.json").read_text())["sources_skipped"] == skipped


def _shard_member(build_dir: Path, shard: str, name: str) -> bytes:
    with tarfile.open(build_dir / "shards" / shard) as tar:
        return tar.extractfile(name).read()


def test_images_are_stored_losslessly(stage1_build, sample_root):
    import io

    import numpy as np
    from PIL import Image as PILImage

    con = open_build(stage1_build.out_dir)
    # a 12-bit DICOM becomes a 16-bit PNG
    shard, key, bits = con.execute(
        "SELECT shard, key, bit_depth FROM kept WHERE source = 'mimic_cxr' ORDER BY id LIMIT 1").fetchone()
    stored = PILImage.open(io.BytesIO(_shard_member(stage1_build.out_dir, shard, f"{key}.in0.png")))
    assert bits == 12 and stored.mode.startswith("I;16") and np.asarray(stored).max() > 255
    # a JPEG that needs no resize is the source file, byte for byte
    shard, key, provenance = con.execute(
        "SELECT shard, key, provenance FROM kept WHERE source = 'slake' ORDER BY id LIMIT 1").fetchone()
    source_bytes = (sample_root / "Slake1.0" / provenance[-1]).read_bytes()
    assert _shard_member(stage1_build.out_dir, shard, f"{key}.in0.jpg") == source_bytes


def test_shard_size_bound_from_the_recipe(ray_session, sample_root, tmp_path):
    recipe = sample_recipe(max_samples=1000, sources=[SourceEntry("mimic_cxr", splits=["train", "unsplit"]),
                                                      SourceEntry("slake", splits=["train"])])
    recipe.shards.max_bytes = 150_000
    report = build(recipe, tmp_path, sample_root, progress=False)
    sizes = [p.stat().st_size for p in list_shards(report.out_dir)]
    assert len(sizes) > 1
    # a shard closes before its samples (with their tar headers) pass the bound; only the end-of-archive
    # padding of the tar format (at most one 10 KiB record) may come on top
    assert max(sizes) <= 150_000 + tarfile.RECORDSIZE
