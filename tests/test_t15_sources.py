"""The five T15 sources of issue 31 together: the stage-1 recipe names every T15 dataset, each card carries the
paper's count, and one CLI build (`unimed build --only ...`) over their sample trees where the near-duplicate stage
sees across sources and the benchmark check covers them: a VL-Health row copying a PubMedVision row is a
near duplicate of it, a VL-Health row showing a VQA-RAD test image is rejected as benchmark overlap."""

from __future__ import annotations

import io
import json
import os
import re
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pyarrow.parquet as pq
import pytest
import yaml
from PIL import Image as PILImage

from manifests.records import Rejection
from pipeline.config import DEFAULT_SPLITS, load_recipe
from sources import SOURCES, get_source
from sources.samples import write_sample_tree
from tests.conftest import REPO
from tests.test_contract import read_all

FIVE = ("vl_health", "gmai_vl", "bigbio", "internvl_medical", "pmc_inline")
# UniMed-5M spec 1.2, the paper's T15 table: dataset -> the adapter that reads it
T15 = {"PMC-OA": "pmc_oa", "Quilt-1M": "quilt_1m", "HealthGPT (VL-Health)": "vl_health",
       "PubMedVision": "pubmedvision", "GMAI-VL-5.5M": "gmai_vl", "BigBio": "bigbio", "CheXpert Plus": "chexpert_plus",
       "PMC-VQA": "pmc_vqa", "InternVL": "internvl_medical", "MediCat": "medicat",
       "Medical-Diff-VQA": "medical_diff_vqa", "PMC-Inline": "pmc_inline", "IXI": "ixi", "BraTS23": "brats",
       "SynthRAD Brain": "synthrad2023", "SynthRAD Pelvis": "synthrad2023", "ICG-CXR": "icg_cxr", "BCI": "bci"}
T15_COUNTS = {"vl_health": "638K", "gmai_vl": "288K", "bigbio": "262K", "internvl_medical": "188K",
              "pmc_inline": "121K"}


def test_stage1_recipe_names_every_t15_dataset_and_stage2_takes_bigbio_cot():
    assert len(T15) == 18
    stage1 = {entry.name for entry in load_recipe("stage1").sources}
    assert set(T15.values()) <= stage1, sorted(set(T15.values()) - stage1)
    stage2 = {entry.name: entry for entry in load_recipe("stage2").sources}
    assert stage2["bigbio"].options == {"unlabelled": "reject"} and stage2["bigbio"].splits == ["train"]


def test_cards_carry_the_paper_count_and_unimed_sources_shows_it():
    for name, count in T15_COUNTS.items():
        card = SOURCES[name].card
        assert f"paper T15: {count}" in card.counts and card.hub_repos
        assert not card.redistribute_images
    env = {**os.environ, "PYTHONPATH": str(REPO), "COLUMNS": "400"}
    shown = subprocess.run([sys.executable, "-m", "pipeline.cli", "sources"], capture_output=True, text=True,
                           env=env, cwd=REPO, timeout=120)
    assert shown.returncode == 0, shown.stderr
    listed = re.search(r"(\d+) registered sources", shown.stdout)  # the CLI's own registry (no test sources)
    assert listed and int(listed.group(1)) == len({name for name in SOURCES if name != "flaky"}) >= 52
    for name, count in T15_COUNTS.items():
        assert any(name in line and f"paper T15: {count}" in line for line in shown.stdout.splitlines()), name


def _plant(root: Path) -> tuple[str, str]:
    """Two extra VL-Health rows: a near copy of a PubMedVision row (its image, a reworded question) and a row
    showing a VQA-RAD test image. Returns their record ids."""
    instruct = root / "VL-Health" / "Instruct" / "comprehension" / "medical_vqa.json"
    rows = json.loads(instruct.read_text(encoding="utf-8"))
    pubmedvision = json.loads((root / "PubMedVision" / "PubMedVision_Alignment_VQA.json").read_text())[0]
    question, answer = (turn["value"] for turn in pubmedvision["conversations"])
    rows.append({"id": "pubmedvision_copy", "image": pubmedvision["image"][0], "conversations": [
        {"from": "human", "value": "<image>\n" + question.replace("this", "the")}, {"from": "gpt", "value": answer}]})
    adapter = get_source("vqa_rad")(root / "VQA_RAD", {}, ["test"])
    test_item = next(r for u in adapter.work_units() for r in adapter.iter_records(u) if getattr(r, "images", None))
    image = test_item.images[0]
    picture = PILImage.open(io.BytesIO(image.encoded)) if image.encoded is not None else \
        PILImage.fromarray(image.pixels)
    (root / "VL-Health" / "copies").mkdir()
    picture.convert("RGB").resize((256, 256)).save(root / "VL-Health" / "copies" / "rad.jpg", quality=90)
    rows.append({"id": "vqa_rad_test_copy", "image": "copies/rad.jpg", "conversations": [
        {"from": "human", "value": "<image>\nIs there an abnormality in this radiograph?"},
        {"from": "gpt", "value": "Yes, a lesion is visible in the region shown."}]})
    instruct.write_text(json.dumps(rows, indent=1), encoding="utf-8")
    prefix = "vl_health/unsplit/Instruct-comprehension-medical_vqa"
    return f"{prefix}/pubmedvision_copy", f"{prefix}/vqa_rad_test_copy"


@pytest.fixture(scope="module")
def t15_build(tmp_path_factory):
    root = tmp_path_factory.mktemp("t15-sources")
    write_sample_tree(root, [*FIVE, "pubmedvision", "vqa_rad"])
    planted = _plant(root)
    recipe = yaml.safe_load((REPO / "pipeline" / "recipes" / "stage1.yaml").read_text(encoding="utf-8"))
    recipe["name"] = "t15"
    recipe["sources"] = [{"name": "pubmedvision"}, *({"name": name} for name in FIVE if name != "bigbio"),
                         {"name": "bigbio", "splits": ["train"]}]
    recipe["shards"]["max_samples"] = 8
    recipe["near_duplicates"]["enabled"] = True
    recipe["near_duplicates"]["benchmarks"] = [{"name": "vqa_rad", "splits": ["test"]}]
    path = tmp_path_factory.mktemp("t15-recipe") / "t15.yaml"
    path.write_text(yaml.safe_dump(recipe), encoding="utf-8")
    out = tmp_path_factory.mktemp("t15-out")
    env = {**os.environ, "PYTHONPATH": str(REPO), "RAY_USAGE_STATS_ENABLED": "0", "HF_HUB_OFFLINE": "1"}
    done = subprocess.run([sys.executable, "-m", "pipeline.cli", "build", "--recipe", str(path), "--sources-root",
                           str(root), "--only", ",".join(["pubmedvision", *FIVE]), "--out", str(out), "--quiet"],
                          capture_output=True, text=True, env=env, cwd=REPO, timeout=900)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-4000:]
    return root, pq.read_table(out / "t15" / "manifest").to_pylist(), planted


def test_cli_build_gives_every_item_one_row_with_the_adapters_reasons(t15_build):
    root, manifest, _ = t15_build
    rows = {row["id"]: row for row in manifest}
    for name in FIVE:
        items = [item for item in read_all(name, root) if item.split in (["train"] if name == "bigbio" else
                                                                         DEFAULT_SPLITS)]
        assert {row["id"] for row in manifest if row["source"] == name} == {item.id for item in items}, name
        for item in items:
            if isinstance(item, Rejection):
                assert rows[item.id]["reason"] == item.reason, item.id
        assert any(rows[item.id]["status"] == "kept" for item in items), f"{name}: nothing kept"
    reasons = Counter((row["source"], row["reason"]) for row in manifest if row["status"] != "kept")
    assert reasons[("gmai_vl", "language")] == 1  # the Chinese caption, under the stage-1 English rule
    assert reasons[("vl_health", "general_domain")] == 2


def test_near_duplicates_and_benchmarks_see_across_sources(t15_build):
    _, manifest, (near_copy, benchmark_copy) = t15_build
    rows = {row["id"]: row for row in manifest}
    near = rows[near_copy]
    assert (near["status"], near["reason"]) == ("rejected", "near_duplicate")
    assert "pubmedvision/unsplit/alignment/pmc_a" in near["detail"]
    assert rows["pubmedvision/unsplit/alignment/pmc_a"]["status"] == "kept"  # earlier in the recipe: kept
    overlap = rows[benchmark_copy]
    assert (overlap["status"], overlap["reason"]) == ("rejected", "benchmark_overlap")
    assert "vqa_rad item" in overlap["detail"]
