"""Builds on changed and broken inputs (#12): changed files re-run their units, Git LFS pointers, sources
whose requested split has no files, a caption line that is not UTF-8, and no traceback for bad input."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

from manifests.query import open_build
from pipeline.config import SourceEntry
from pipeline.engine.build import EXIT_SOURCE_FAILED, build
from tests.conftest import REPO, sample_recipe

POINTER = ("version https://git-lfs.github.com/spec/v1\n"
           "oid sha256:4d7a214614ab2935c943f9e0ff69d22eadbb8f32b1258daaa5e2ca24d17e2393\nsize 123456789\n")


def _copy(sample_root: Path, root: Path, *folders: str) -> Path:
    for folder in folders:
        shutil.copytree(sample_root / folder, root / folder)
    return root


def test_changed_inputs_rerun_their_units(ray_session, sample_root, tmp_path):
    root = _copy(sample_root, tmp_path / "src", "MedPix-2-0")
    image = root / "MedPix-2-0" / "images" / "MPX1009_synpic46283.png"
    held = tmp_path / "held.png"
    shutil.move(image, held)
    recipe = sample_recipe(sources=[SourceEntry("medpix2", splits=["train"], options={"items_per_unit": 2})])
    out = tmp_path / "out"
    first = build(recipe, out, root, progress=False)
    assert first.units_run == first.units_total == 2 and first.units_changed == 0
    con = open_build(first.out_dir)
    assert con.execute("SELECT reason FROM records WHERE id = 'medpix2/train/MPX1009_synpic46283'").fetchone() == (
        "missing_file",)

    unchanged = build(recipe, out, root, progress=False)  # nothing changed: nothing runs, nothing is written
    assert (unchanged.units_run, unchanged.units_changed, unchanged.result.shards_written) == (0, 0, 0)

    shutil.move(held, image)  # the missing image is put in place: its unit, and only it, runs again
    second = build(recipe, out, root, progress=False)
    assert (second.units_run, second.units_changed) == (1, 1)
    assert json.loads((second.out_dir / "stats.json").read_text())["units_changed"] == 1
    con = open_build(second.out_dir)
    assert con.execute("SELECT status FROM records WHERE id = 'medpix2/train/MPX1009_synpic46283'").fetchone() == (
        "kept",)
    assert con.execute("SELECT count(*) FROM records").fetchone()[0] == first.result.kept + first.result.rejected

    # an annotation file touched (same bytes, new mtime) re-runs every unit that reads it
    descriptions = root / "MedPix-2-0" / "splitted_dataset" / "descriptions_train.jsonl"
    info = descriptions.stat()
    os.utime(descriptions, ns=(info.st_atime_ns, info.st_mtime_ns + 10**9))
    touched = build(recipe, out, root, progress=False)
    assert (touched.units_run, touched.units_changed) == (2, 2)
    refreshed = build(recipe, out, root, progress=False, refresh=True)
    assert (refreshed.units_run, refreshed.units_changed) == (2, 0)
    assert refreshed.result.kept == second.result.kept


def test_lfs_pointers_are_one_line_that_says_git_lfs_pull(ray_session, sample_root, tmp_path):
    root = _copy(sample_root, tmp_path / "src", "llava_med", "pubmedqa", "Kvasir-SEG", "Slake1.0")
    for path in (root / "llava_med" / "data").rglob("*.json"):
        path.write_text(POINTER)
    (root / "pubmedqa" / "data" / "ori_pqal.json").write_text(POINTER)
    (root / "Kvasir-SEG" / "kavsir_bboxes.json").write_text(POINTER)
    recipe = sample_recipe(sources=[SourceEntry("llava_med", splits=["unsplit"]), SourceEntry("pubmedqa"),
                                    SourceEntry("kvasir_seg"), SourceEntry("slake", splits=["train"])])
    report = build(recipe, tmp_path / "out", root, progress=False)
    assert sorted(report.sources_failed) == ["kvasir_seg", "llava_med", "pubmedqa"]
    for name, message in report.sources_failed.items():
        assert "Git LFS pointer" in message and "git lfs pull" in message and "\n" not in message, name
        assert "123,456,789 bytes" in message
    assert report.exit_code == EXIT_SOURCE_FAILED
    con = open_build(report.out_dir)
    assert con.execute("SELECT count(*) FROM records WHERE reason = 'malformed_json'").fetchone()[0] == 0
    assert con.execute("SELECT DISTINCT source FROM kept").fetchall() == [("slake",)]  # the others go on
    stats = json.loads((report.out_dir / "stats.json").read_text())
    assert stats["sources_failed"] == report.sources_failed

    recipe.execution.on_source_error = "skip"
    skipped = build(recipe, tmp_path / "out", root, progress=False)
    assert skipped.exit_code == 0 and sorted(skipped.sources_failed) == sorted(report.sources_failed)


def test_source_found_whose_split_has_no_files_is_reported(ray_session, sample_root, tmp_path):
    root = _copy(sample_root, tmp_path / "src", "roco-dataset", "ISIC")
    shutil.rmtree(root / "roco-dataset" / "data" / "train")
    for csv_file in (root / "ISIC").rglob("*GroundTruth*.csv"):
        csv_file.unlink()
    assert any((root / "ISIC").rglob("*Task1_Training_GroundTruth")), "the sample keeps a task-1 mask folder"
    recipe = sample_recipe(sources=[SourceEntry("roco"), SourceEntry("isic")])
    report = build(recipe, tmp_path / "out", root, progress=False)
    assert sorted(report.sources_empty) == ["isic", "roco"]
    assert "data/train/radiology/captions.txt" in report.sources_empty["roco"]
    assert "ISIC_2019_Training_GroundTruth.csv" in report.sources_empty["isic"]
    assert json.loads((report.out_dir / "stats.json").read_text())["sources_empty"] == report.sources_empty
    assert report.exit_code == 0


def test_a_caption_line_that_is_not_utf8_is_one_rejected_row(ray_session, sample_root, tmp_path):
    root = _copy(sample_root, tmp_path / "src", "ROCOv2", "roco-dataset", "MedPix-2-0")
    captions = root / "ROCOv2" / "train_captions.csv"
    lines = captions.read_bytes().splitlines(keepends=True)
    lines[2] = lines[2].replace(b",", b",\xc9chographie ", 1)  # a Latin-1 E-acute in line 3
    captions.write_bytes(b"".join(lines))
    bad_id = lines[2].split(b",")[0].decode()
    roco = root / "roco-dataset" / "data" / "train" / "radiology" / "captions.txt"
    roco_lines = roco.read_bytes().splitlines(keepends=True)
    roco_lines[0] = roco_lines[0].replace(b"\t", b"\t\xc9 ", 1)
    roco.write_bytes(b"".join(roco_lines))
    roco_id = roco_lines[0].split(b"\t")[0].decode().strip()

    recipe = sample_recipe(sources=[SourceEntry("rocov2", splits=["train"]), SourceEntry("roco", splits=["train"]),
                                    SourceEntry("medpix2", splits=["train"])])
    report = build(recipe, tmp_path / "out", root, progress=False)
    assert report.exit_code == 0 and not report.sources_failed
    con = open_build(report.out_dir)
    rows = con.execute("SELECT id, reason, detail FROM records WHERE reason = 'text_encoding' ORDER BY id").fetchall()
    assert [row[0] for row in rows] == sorted(
        [f"roco/train/{roco_id}/caption", f"roco/train/{roco_id}/t2i",
         f"rocov2/train/{bad_id}/caption", f"rocov2/train/{bad_id}/t2i"])
    details = {row[0].split("/")[0]: row[2] for row in rows}
    assert "train_captions.csv line 3: byte 0xC9" in details["rocov2"]
    assert "captions.txt line 1: byte 0xC9" in details["roco"]
    # the rest of both files and the other source go on
    kept = {row[0] for row in con.execute("SELECT DISTINCT source FROM kept").fetchall()}
    assert kept == {"rocov2", "roco", "medpix2"}
    other = con.execute("SELECT count(*) FROM kept WHERE source = 'rocov2'").fetchone()[0]
    assert other > 0


def test_cli_gives_one_line_not_a_traceback(ray_session, sample_root, tmp_path):
    root = _copy(sample_root, tmp_path / "src", "ROCOv2", "pubmedqa")
    (root / "pubmedqa" / "data" / "ori_pqal.json").write_text(POINTER)
    for name in ("train", "valid", "test"):  # images still zipped: the adapter says to unzip them
        shutil.rmtree(root / "ROCOv2" / name)
        (root / "ROCOv2" / f"{name}_images.zip").write_bytes(b"PK\x05\x06" + bytes(18))
    command = [sys.executable, "-m", "pipeline.cli", "build", "--recipe", "stage1", "--sources-root", str(root),
               "--only", "rocov2,pubmedqa", "--out", str(tmp_path / "out"), "--quiet"]
    result = subprocess.run(command, capture_output=True, text=True, timeout=300,
                            env={**os.environ, "PYTHONPATH": str(REPO)})
    assert result.returncode == 1, result.stderr[-2000:]
    assert "Traceback" not in result.stderr
    lines = [line for line in result.stderr.splitlines() if line.startswith("failed ")]
    assert any(line.startswith("failed pubmedqa:") and "git lfs pull" in line for line in lines), result.stderr
    assert any(line.startswith("failed rocov2:") and "unzip train_images.zip" in line for line in lines), result.stderr
