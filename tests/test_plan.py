"""The stage plan of a recipe, the stage registry, and `unimed build --plan`."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from pipeline.config import load_recipe
from pipeline.engine.plan import describe_plan, stage_plan
from pipeline.stages import STAGES
from tests.conftest import REPO

STAGE1_ALIGNED = ["read_units", "coarse_scores", "coarse_decision", "alignment_prepare", "medgemma_captions",
                  "e5_similarity", "medsiglip_score", "alignment_cache_write", "write_staging", "finalize",
                  "write_shards"]


def test_every_stage_lives_in_a_module_named_after_it():
    stages_dir = REPO / "pipeline" / "stages"
    for name, cls in STAGES.items():
        assert cls.__module__ == f"pipeline.stages.{name}", (name, cls.__module__)
        assert (stages_dir / f"{name}.py").is_file()
    modules = {p.stem for p in stages_dir.glob("*.py")} - {"__init__", "base"}
    assert modules == set(STAGES)


def test_plan_orders_the_stages_a_recipe_runs():
    recipe = load_recipe("stage1")
    assert [s.name for s in stage_plan(recipe, None)] == ["coarse_scores", "coarse_decision"]
    recipe.alignment.enabled = True
    rows = describe_plan(recipe)
    assert [row["stage"] for row in rows] == STAGE1_ALIGNED
    captions = rows[STAGE1_ALIGNED.index("medgemma_captions")]
    assert captions["runs_as"] == "actors" and captions["num_gpus"] == recipe.alignment.captioner.resources.num_gpus
    stage3 = [row["stage"] for row in describe_plan(load_recipe("stage3"))]
    assert stage3[1:4] == ["coarse_scores", "coarse_decision", "task_builders"]


def test_cli_plan_prints_the_stages_and_runs_nothing(tmp_path: Path):
    done = subprocess.run([sys.executable, "-m", "pipeline.cli", "build", "--recipe", "stage1", "--align", "--plan",
                           "--out", str(tmp_path / "out")], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    positions = [done.stdout.index(name) for name in STAGE1_ALIGNED]
    assert positions == sorted(positions)
    assert not (tmp_path / "out").exists()
