"""A stage-2 build exported for UniMedVL's released loaders: each row goes to the loader of its shape (issue #14).

Stage 1 -> HQ subset -> CAG on a scripted OpenAI-compatible server on 127.0.0.1 -> DCOT, as
tests/test_stage2_build.py builds it; then `export_unimedvl`. Planning rows (prompt -> `<think>` plan with loss ->
image) must reach T2IIterableDataset_Ver1, the one loader that reads a gpt turn before the image; plain CAG rows
(fused prompt -> image) Bagel's t2i_pretrain parquet; DCOT rows the SFT loaders, dialogues (several turns) the
text-only one. The released loaders themselves run when UNIMEDVL_UPSTREAM points at the gathered upstream code
(see ../shared/tools/unimedvl-loaders/README.md).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pyarrow.parquet as pq
import pytest
import yaml

from filters.cag.settings import CagSettings
from pipeline.config import SourceEntry, load_recipe
from pipeline.curriculum.export import BAGEL_T2I, SFT_I2T, T2I_JSONL, TEXT_ONLY, export_unimedvl
from tests.cag_server import FakeChatServer
from tests.conftest import sample_recipe
from tests.support import run_released_loaders
from tests.test_stage2_build import STAGE1_SOURCES, script, write_scores

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def stage2(ray_session, sample_root, tmp_path_factory):
    """(build dir, export report) of a stage-2 build with kept rows in all four families."""
    from pipeline.engine.build import build

    root = tmp_path_factory.mktemp("stage2_export")
    stage1 = build(sample_recipe(), root / "s1", sample_root, only=STAGE1_SOURCES, progress=False)
    assert stage1.exit_code == 0
    write_scores(stage1.out_dir)
    server = FakeChatServer(script)
    try:
        recipe = load_recipe("stage2")
        recipe.sources = [SourceEntry("medical_o1_reasoning_sft"), SourceEntry("medreason"), SourceEntry("meddialog"),
                          SourceEntry("medthink", splits=["train"])]
        recipe.cag = CagSettings(enabled=True, backend="openai", endpoint=server.endpoint, model="fake-medgemma",
                                 max_retries=0, request_timeout_s=20)
        report = build(recipe, root / "s2", sample_root, hq_build=stage1.out_dir, progress=False)
    finally:
        server.close()
    assert report.exit_code == 0, report.result.failed_units
    return report.out_dir, export_unimedvl([report.out_dir], root / "export", ranks=1, workers=1)


def kept_rows(build_dir: Path) -> dict[str, tuple[dict, str]]:
    """id -> (sample JSON, task family) of every kept row of the build."""
    from manifests.query import open_build

    con = open_build(build_dir)
    return {i: (json.loads(s), f) for i, s, f in con.execute("SELECT id, sample, task_family FROM kept").fetchall()}


def jsonl_rows(export: Path) -> dict[str, tuple[str, dict]]:
    """id -> (registry key, exported row) over every JSONL file the export registers."""
    info = yaml.safe_load((export / "dataset_info.yaml").read_text())
    rows = {}
    for registry, names in info.items():
        for meta in names.values():
            if "jsonl_path" not in meta:
                continue
            for line in (export / meta["jsonl_path"]).read_text(encoding="ascii").splitlines():
                row = json.loads(line)
                assert row["id"] not in rows, row["id"]  # exported once
                rows[row["id"]] = (registry, row)
    return rows


def parquet_captions(export: Path) -> list[str]:
    return [json.loads(c)["caption"] for path in sorted((export / "parquet" / "t2i").glob("*.parquet"))
            for c in pq.read_table(path, columns=["captions"])["captions"].to_pylist()]


def test_every_stage2_row_goes_to_the_loader_of_its_shape(stage2):
    from pipeline.curriculum.export_check import check_export

    build_dir, report = stage2
    export = report.out
    assert report.skipped == []  # every kept stage-2 row is read whole by some released loader
    kept = kept_rows(build_dir)
    exported = jsonl_rows(export)
    captions = parquet_captions(export)
    assert len(exported) + len(captions) == len(kept)

    plans = {i: doc for i, (doc, _) in kept.items() if i.endswith("/plan")}
    cags = {i: doc for i, (doc, _) in kept.items() if i.endswith("/cag")}
    assert plans and cags
    for record_id, doc in plans.items():  # planning: prompt (no loss), `<think>` plan (loss), then the image
        registry, row = exported[record_id]
        assert registry == T2I_JSONL and row["sub_task_type"].endswith("_planning")
        assert [t["from"] for t in row["message"]] == ["human", "gpt"]
        assert row["message"][1]["value"].startswith("<think>") and row["message"] == doc["message"]
        assert len(row["output_img"]) == 1 and not row["input_img"]
        assert (export / "images" / row["output_img"][0]["path"]).is_file()
    for record_id, doc in cags.items():  # CAG: the fused prompt alone, then the image, in the parquet
        assert record_id not in exported
        assert " ".join(doc["message"][0]["value"].split()) in captions
    assert sum(c.startswith("Please generate a realistic") for c in captions) == len(cags)
    in_parquet = [i for i, (_, family) in kept.items() if family == "t2i" and i not in plans]
    assert len(in_parquet) == len(captions)  # every other T2I row (CAG and HQ originals) is in the parquet

    dcot = {i: exported[i] for i, (doc, _) in kept.items() if doc["message"][-1]["value"].startswith("<think>")
            and i not in plans}
    sources = {i.split("/")[0] for i in dcot}
    assert sources == {"medthink", "medical_o1_reasoning_sft", "medreason"}
    for record_id, (registry, row) in dcot.items():
        want = SFT_I2T if record_id.startswith("medthink/") else TEXT_ONLY
        assert registry == want, (record_id, registry)
        assert row["message"][-1]["value"] == kept[record_id][0]["message"][-1]["value"]  # `<think>` kept as is
    dialogues = {i: exported[i] for i in kept if i.startswith("meddialog/")}  # several turns, text-only loader
    assert dialogues and {registry for registry, _ in dialogues.values()} == {TEXT_ONLY}
    assert max(len(row["message"]) for _, row in dialogues.values()) == 4
    for record_id, (doc, family) in kept.items():  # every other kept row by family
        if record_id in exported and family == "text":
            assert exported[record_id][0] == TEXT_ONLY
        if record_id in exported and family == "i2t":
            assert exported[record_id][0] == SFT_I2T

    stage2_config = yaml.safe_load((export / "configs" / "stage2.yaml").read_text())
    assert {T2I_JSONL, BAGEL_T2I, SFT_I2T, TEXT_ONLY} <= set(stage2_config)
    assert check_export(export, ranks=1, workers=1) == []


@pytest.mark.skipif(not os.environ.get("UNIMEDVL_UPSTREAM"), reason="UNIMEDVL_UPSTREAM not set (upstream loader "
                    "code is gathered outside the repo; see ../shared/tools/unimedvl-loaders/README.md)")
def test_released_loaders_read_every_stage2_row(stage2, tmp_path):
    _, report = stage2
    result = run_released_loaders(report.out, tmp_path)
    loaders = json.dumps(result)
    assert T2I_JSONL in loaders and BAGEL_T2I in loaders
