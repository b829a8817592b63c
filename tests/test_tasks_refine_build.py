"""MedGemma refinement inside a Ray build: an OpenAI-compatible server (local, bounded) rewrites the
BCI staining texts; the rewritten text lands in the shard, the template stays in the manifest."""

from __future__ import annotations

import json

from manifests.query import open_build
from pipeline.engine.build import build
from pipeline.config import parse_recipe
from manifests.records import Record
from pipeline.tasks.settings import TaskSettings
from pipeline.stages.task_builders import TaskBuildersStage
from pipeline.tasks.templates import seed_for
from sources import get_source
from sources.samples import write_sample_tree
from tests.test_tasks_refine import _Server


def test_refined_texts_reach_the_shards_and_the_template_stays(ray_session, tmp_path):
    tree = write_sample_tree(tmp_path / "src", ["bci"])
    source, stage = get_source("bci")(tree["bci"], {}, ["train"]), TaskBuildersStage(TaskSettings(enabled=True))
    levels = {}
    for unit in source.work_units():
        for item in source.iter_records(unit):
            if isinstance(item, Record):
                item.status = "kept"
                stage.process(item)
                levels[item.id] = item.meta["task_build"]["fields"]["level"]
    assert levels
    answers = {seed_for(0, record_id, "refine"): json.dumps({
        "instruction": f"From this H&E section, generate the matching HER2 IHC image at level {level}.",
        "response": f"The HER2 {level} IHC image is ready."}) for record_id, level in levels.items()}
    server = _Server(answers, limit=4 * len(levels))
    try:
        recipe = parse_recipe({"name": "refined", "sources": [{"name": "bci", "splits": ["train"]}],
                               "filters": {"language": "en"},
                               "tasks": {"enabled": True, "refine": {"enabled": True, "backend": "openai",
                                                                      "model": "medgemma-test", "endpoint": server.url,
                                                                      "request_timeout_s": 5, "max_retries": 1}}})
        report = build(recipe, tmp_path / "out", tmp_path / "src", progress=False)
    finally:
        server.close()
    assert report.exit_code == 0 and len(server.requests) == len(levels)
    rows = open_build(report.out_dir).execute("SELECT id, sample, meta FROM kept ORDER BY id").fetchall()
    assert [row[0] for row in rows] == sorted(levels)
    for record_id, sample, meta in rows:
        message, task_build = json.loads(sample)["message"], json.loads(meta)["task_build"]
        assert message[0]["value"] == ("<image>\nFrom this H&E section, generate the matching HER2 IHC image at "
                                       f"level {levels[record_id]}.")
        assert message[1]["value"] == f"The HER2 {levels[record_id]} IHC image is ready."
        assert task_build["refine"]["status"] == "rewritten"
        assert task_build["instruction"] != message[0]["value"] and levels[record_id] in task_build["instruction"]
