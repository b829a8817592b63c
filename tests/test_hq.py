"""The high-quality subset: chosen from a finished build's manifest and stored scores, with no model."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from filters.settings import RecipeError
from pipeline.config import parse_recipe
from pipeline.stage2.hq import select_hq, write_selection
from pipeline.stage2.settings import HqSettings


def row(rid, family, modality, score, status="kept", split="train", source="src"):
    return {"id": rid, "source": source, "split": split, "modality": modality, "task_family": family,
            "main_task_type": "m", "sub_task_type": "s", "provenance": ["p"], "sample": "{}", "meta": "{}",
            "shard": "stage1-000000.tar" if status == "kept" else None, "key": rid.replace("/", "_"),
            "status": status, "align_final": score}


def fake_build(root: Path, rows: list[dict]) -> Path:
    (root / "manifest").mkdir(parents=True)
    (root / "shards").mkdir()
    pq.write_table(pa.Table.from_pylist(rows), root / "manifest" / "part-00000.parquet")
    return root


ROWS = [
    # i2t chest_xray: 5 scored kept -> ceil(2.5) = 3 best; a rejected one and an unscored one never count
    *[row(f"a/train/cxr{i}", "i2t", "chest_xray", s) for i, s in enumerate([0.9, 0.1, 0.5, 0.7, 0.3])],
    row("a/train/cxr-rej", "i2t", "chest_xray", 0.99, status="rejected"),
    row("a/train/cxr-null", "i2t", "chest_xray", None),
    row("a/test/cxr-test", "i2t", "chest_xray", 0.95, split="test"),
    # i2t ct: 1 scored -> 1; t2i ct: ties broken by id
    row("b/train/ct0", "i2t", "ct", 0.2),
    row("b/train/t2i-b", "t2i", "ct", 0.4), row("b/train/t2i-a", "t2i", "ct", 0.4),
    row("b/train/t2i-c", "t2i", "ct", 0.1),
    # replayed whole: interleaved and text (no score), but not rejected rows
    row("c/train/brats0", "interleaved", "mri", None), row("c/train/brats1", "interleaved", "mri", None),
    row("d/train/q0", "text", "other", None), row("d/train/q1", "text", "other", None, status="rejected"),
]


def test_top_fraction_per_family_and_modality_without_any_model(tmp_path, monkeypatch):
    from filters.alignment import biomedclip, captioner, e5, medsiglip
    from filters.cag import client

    def forbidden(*args, **kwargs):
        raise AssertionError("a model was loaded or called while choosing the HQ subset")

    for cls in (captioner.TransformersCaptioner, captioner.OpenAICaptioner, e5.E5Embedder, medsiglip.SiglipScorer,
                biomedclip.BiomedCLIPScorer, client.TransformersChat, client.OpenAIChat):
        monkeypatch.setattr(cls, "__init__", forbidden)
    monkeypatch.setattr(captioner, "post_chat", forbidden)
    build = fake_build(tmp_path / "stage1", ROWS)
    chosen = select_hq(build, HqSettings(enabled=True)).fetchall()
    ids = [r[0] for r in chosen]
    assert ids == sorted(["a/train/cxr0", "a/train/cxr3", "a/train/cxr2", "b/train/ct0", "b/train/t2i-a",
                          "b/train/t2i-b", "c/train/brats0", "c/train/brats1", "d/train/q0"])
    path = write_selection(build, HqSettings(enabled=True), tmp_path / "stage2" / ".state")
    table = pq.read_table(path).to_pylist()
    ranks = {r["id"]: (r["hq_rank"], r["hq_pool"], r["hq_score"]) for r in table}
    assert ranks["a/train/cxr0"] == (1, 5, 0.9) and ranks["a/train/cxr2"] == (3, 5, 0.5)
    assert ranks["b/train/t2i-a"] == (1, 3, 0.4) and ranks["b/train/t2i-b"] == (2, 3, 0.4)
    assert ranks["c/train/brats0"] == (None, None, None)
    summary = json.loads((tmp_path / "stage2" / "hq_summary.json").read_text())
    assert summary["selected"] == 9 and {"task_family": "i2t", "modality": "chest_xray", "count": 3} in \
        summary["by_family_modality"]


def test_scope_fraction_and_families_are_settings(tmp_path):
    build = fake_build(tmp_path / "stage1", ROWS)
    glob = select_hq(build, HqSettings(enabled=True, scope="global", keep_fraction=0.2,
                                       replay_families=[])).fetchall()
    # i2t pool of 6 scored -> 2 best overall (cxr0 0.9, cxr3 0.7); t2i pool 3 -> 1
    assert sorted(r[0] for r in glob) == ["a/train/cxr0", "a/train/cxr3", "b/train/t2i-a"]
    with_test = select_hq(build, HqSettings(enabled=True, keep_fraction=0.2, splits=["test"],
                                            replay_families=[])).fetchall()
    assert [r[0] for r in with_test] == ["a/test/cxr-test"]


def test_bad_settings_and_unfinished_builds_say_what_to_do(tmp_path):
    with pytest.raises(RecipeError, match="keep_fraction"):
        parse_recipe({"name": "x", "hq": {"keep_fraction": 0}})
    with pytest.raises(RecipeError, match="either ranked or replayed"):
        parse_recipe({"name": "x", "hq": {"ranked_families": ["i2t"], "replay_families": ["i2t"]}})
    with pytest.raises(RecipeError, match="not a finished build"):
        select_hq(tmp_path, HqSettings(enabled=True))
    unscored = [{k: v for k, v in r.items() if k != "align_final"} for r in ROWS]
    with pytest.raises(RecipeError, match="--align"):
        select_hq(fake_build(tmp_path / "noscore", unscored), HqSettings(enabled=True))


def test_hq_and_cag_settings_change_the_processing_digest():
    base = parse_recipe({"name": "x"})
    hq = parse_recipe({"name": "x", "hq": {"enabled": True}})
    hq_elsewhere = parse_recipe({"name": "x", "hq": {"enabled": True, "build": "/elsewhere/stage1"}})
    cag = parse_recipe({"name": "x", "cag": {"enabled": True}})
    cag_v2 = parse_recipe({"name": "x", "cag": {"enabled": True, "prompts": {"plan": "cag_plan_v2"}}})
    assert len({base.processing_digest(), hq.processing_digest(), cag.processing_digest(),
                cag_v2.processing_digest()}) == 4
    assert hq.processing_digest() == hq_elsewhere.processing_digest()


def test_replay_rebuilds_records_adds_cag_rows_and_rejects_missing_members(tmp_path):
    from manifests.records import Record, Rejection
    from pipeline.stage2.replay import HqReplay, hq_units

    def doc(message, inputs=(), outputs=()):
        return json.dumps({"message": message, "input_img": [{"path": p} for p in inputs],
                           "output_img": [{"path": p} for p in outputs]})

    rows = [
        {**row("d/train/q0", "text", "other", None), "sample": doc([{"from": "human", "value": "Q?"},
                                                                   {"from": "gpt", "value": "A."}])},
        {**row("b/train/t2i-a", "t2i", "ct", 0.4), "sample": doc([{"from": "human", "value": "An axial CT."}])},
        {**row("a/train/cxr0", "i2t", "chest_xray", 0.9), "sample": doc([], inputs=["in0.png"])},
    ]
    build = fake_build(tmp_path / "stage1", rows)
    settings = HqSettings(enabled=True, keep_fraction=1.0)
    root, options_json, units = hq_units(settings, build, tmp_path / "stage2" / ".state")
    adapter = HqReplay(root, json.loads(options_json), ("train",))
    assert [u.id.split("-")[0] for u in units] == ["hq_replay/train/stage1"] and all(u.split == "train" for u in units)
    items = {item.id: item for unit in units for item in adapter.iter_records(unit)}
    assert sorted(items) == ["a/train/cxr0", "b/train/t2i-a", "b/train/t2i-a/cag", "b/train/t2i-a/plan", "d/train/q0"]
    missing = items["a/train/cxr0"]
    assert isinstance(missing, Rejection) and missing.reason == "hq_image_missing" and missing.source == "src"
    text = items["d/train/q0"]
    assert isinstance(text, Record) and text.message[1] == {"from": "gpt", "value": "A."}
    assert text.meta["hq"] == {"from_id": "d/train/q0", "score": None, "rank": None, "pool": None}
    plan = items["b/train/t2i-a/plan"]
    assert plan.meta["cag"] == {"role": "plan", "caption": "An axial CT."} and plan.sub_task_type == "s_planning"
    assert items["b/train/t2i-a/cag"].meta["cag"]["role"] == "t2i" and items["b/train/t2i-a"].meta["hq"]["rank"] == 1
    no_original = HqReplay(root, {**json.loads(options_json), "t2i_original": False, "cag_roles": ["plan"]}, ("train",))
    ids = {item.id for unit in units for item in no_original.iter_records(unit)}
    assert "b/train/t2i-a" not in ids and "b/train/t2i-a/plan" in ids and "b/train/t2i-a/cag" not in ids
