"""A stage-3 build of the sample tree: all five tasks built, readable with webdataset, countable per task
and source with `unimed query`, and the leakage rule applied at finalisation."""

from __future__ import annotations

import io
import json
import subprocess
import sys

import numpy as np
import pytest
import webdataset as wds
from PIL import Image as PILImage

from manifests.query import open_build
from manifests.shards import list_shards
from pipeline.tasks.settings import TASKS
from pipeline.tasks.super_resolution import degrade
from tests.conftest import REPO

LEAKED = "icg_cxr/train/chexpertplus/p00023/i01s0001-i04s0002"
HELD_OUT = "icg_cxr/test/chexpertplus/p00023/i04s0002-i05s0005"


@pytest.fixture(scope="module")
def stage3(stage3_build):  # tests/conftest.py: the sample tree plus a leaked training patient
    return stage3_build


def test_all_five_tasks_are_built(stage3):
    assert stage3.exit_code == 0 and not stage3.result.failed_units
    con = open_build(stage3.out_dir)
    counts = dict(con.execute("SELECT main_task_type, count(*) FROM kept GROUP BY ALL").fetchall())
    assert set(counts) == set(TASKS)
    # every kept row was rendered by a builder, and the row names its templates (the recipe's libraries: v2)
    assert con.execute("SELECT count(*) FROM kept WHERE task_template IS NULL "
                       "OR json_extract_string(meta, '$.task_build.template_version') <> '2'").fetchone()[0] == 0


def test_query_counts_per_task_and_source(stage3):
    sql = "SELECT main_task_type, source, count(*) AS n FROM kept GROUP BY ALL ORDER BY ALL"
    done = subprocess.run([sys.executable, "-m", "pipeline.cli", "query", str(stage3.out_dir), sql, "--format", "json"],
                          capture_output=True, text=True, cwd=REPO, check=True)
    rows = json.loads(done.stdout)
    pairs = {(row["main_task_type"], row["source"]) for row in rows}
    assert {("super_resolution", "ixi"), ("super_resolution", "fastmri"), ("cross_modal_synthesis", "brats"),
            ("virtual_staining", "bci"), ("counterfactual_generation", "icg_cxr"), ("segmentation", "drive")} <= pairs
    assert sum(row["n"] for row in rows) == stage3.result.kept


def test_an_all_background_mask_is_rejected_by_the_builder_rule(stage3):
    con = open_build(stage3.out_dir)
    reasons = dict(con.execute("SELECT id, reason FROM rejected WHERE source = 'busi'").fetchall())
    assert reasons["busi/unsplit/normal (1)/segmentation"] == "mask_empty"
    assert "image_blank" not in con.execute(
        "SELECT list(reason) FROM rejected WHERE main_task_type = 'segmentation'").fetchone()[0]


def test_shards_open_and_sr_inputs_rebuild_from_the_row(stage3):
    out = stage3.out_dir
    meta = dict(open_build(out).execute("SELECT key, meta FROM kept").fetchall())
    urls = [str(p) for p in list_shards(out)]
    samples = list(wds.WebDataset(urls, shardshuffle=False))
    assert len(samples) == stage3.result.kept
    checked = 0
    for sample in samples:
        doc = json.loads(sample["json"])
        assert len(doc["message"]) == 2 and doc["message"][0]["value"].startswith("<image>\n")
        if doc["main_task_type"] != "super_resolution":
            continue
        params = json.loads(meta[sample["__key__"]])["task_build"]["params"]
        hr = np.asarray(PILImage.open(io.BytesIO(sample["out0.png"])))
        low = np.asarray(PILImage.open(io.BytesIO(sample["in0.png"])))
        assert np.array_equal(low, degrade(hr.astype(np.uint16), params).astype(low.dtype))
        checked += 1
    assert checked > 0


def test_a_test_split_subject_never_trains(stage3):
    con = open_build(stage3.out_dir)
    rows = dict(con.execute("SELECT id, reason FROM records WHERE id IN (?, ?)", [LEAKED, HELD_OUT]).fetchall())
    assert rows == {LEAKED: "subject_in_test_split", HELD_OUT: "held_out_split"}
    assert con.execute("SELECT count(*) FROM kept WHERE split = 'test'").fetchone()[0] == 0
