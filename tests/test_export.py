"""`unimed export --format unimedvl`: the files and config rules UniMedVL's released loaders need (issue #11).

Each of the issue's 8 problems is pinned on the export's own files; the released loaders themselves run in
test_released_loaders_read_every_row when UNIMEDVL_UPSTREAM points at the gathered upstream code.
"""

from __future__ import annotations

import json
import os
import re
import runpy
import shutil
import tracemalloc
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml

from pipeline.bench.loader import synthetic_sample, write_synthetic_build
from pipeline.curriculum.export import export_unimedvl
from pipeline.curriculum.schedule import CURRICULUM_STAGES
from tests.support import run_released_loaders

SFT, TEXT, EDIT = "SftJSONLIterableDataset_Ver1", "SftJSONLIterableDataset_TextOnly", \
    "MedicalImageEditingIterableDataset_ver1"
CF, T2I_JSONL, T2I_PARQUET = "CounterfactualMedicalIterableDataset_ver1", "T2IIterableDataset_Ver1", "t2i_pretrain"
COUNTS = {"i2t": 12, "t2i": 8, "interleaved": 5, "text": 4}
REPO = Path(__file__).resolve().parents[1]


def write_build(out: Path, docs: list[tuple[dict, dict[str, bytes]]]) -> Path:
    """A build directory of one shard holding these samples (no manifest: families come from the rows)."""
    import webdataset as wds

    from manifests.records import shard_key

    (out / "shards").mkdir(parents=True)
    with wds.TarWriter(str(out / "shards" / f"{out.name}-000000.tar"), encoder=False, mtime=0) as writer:
        for doc, images in sorted(docs, key=lambda item: item[0]["id"]):
            writer.write({"__key__": shard_key(doc["id"]), "json": json.dumps(doc).encode(), **images})
    return out


def special_rows(rng: np.random.Generator) -> list[tuple[dict, dict[str, bytes]]]:
    """A counterfactual row, two planning T2I rows (gpt turn before the image), an i2t row whose two
    placeholders sit in two human turns (no loader reads it whole), and a plain interleaved row."""
    rows = []
    for index in range(2):
        doc, images = synthetic_sample("interleaved", index, "icg", rng, 16)
        doc.update(id=f"icg/cf/{index}", main_task_type="counterfactual_generation",
                   sub_task_type="disease_progression")
        rows.append((doc, images))
        doc, images = synthetic_sample("t2i", index, "planner", rng, 16)
        doc.update(id=f"planner/t2i/{index}")
        doc["message"].append({"from": "gpt", "value": f"Plan {index}: a round lesion, left lobe."})
        rows.append((doc, images))
    doc, images = synthetic_sample("i2t", 1, "split", rng, 16)
    doc["message"] = [{"from": "human", "value": "<image>\nFirst view."}, {"from": "gpt", "value": "Seen."},
                      {"from": "human", "value": "<image>\nSecond view?"}, {"from": "gpt", "value": "Also seen."}]
    rows.append((doc, images))
    rows.append(synthetic_sample("interleaved", 7, "brats", rng, 16))
    return rows


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    root = tmp_path_factory.mktemp("export")
    build = write_synthetic_build(root / "syn", counts=COUNTS, per_shard=10, image_size=16)
    special = write_build(root / "special", special_rows(np.random.default_rng(0)))
    return export_unimedvl([build, special], root / "out", ranks=2, workers=2, rows_per_file=3, row_group=2)


def load(path: Path) -> dict:
    return yaml.safe_load(path.read_text())


def configs(export: Path) -> dict[str, dict]:
    return {p.name: load(p) for p in sorted((export / "configs").glob("*.yaml"))}


def rows_of(export: Path, registry: str) -> list[dict]:
    info = load(export / "dataset_info.yaml")
    rows = []
    for meta in info.get(registry, {}).values():
        with open(export / meta["jsonl_path"], encoding="ascii") as handle:
            rows.extend(json.loads(line) for line in handle)
    return rows


def test_1_every_group_carries_the_transform_args_its_loader_requires(exported):
    groups = [g for config in configs(exported.out).values() for g in config.items()]
    need = {SFT: {"image_transform_args", "vit_image_transform_args"}, TEXT: set(),
            T2I_JSONL: {"image_transform_args"}, T2I_PARQUET: {"image_transform_args"},
            EDIT: {"image_transform_args", "vit_image_transform_args"},
            CF: {"image_transform_args", "vit_image_transform_args"}}
    for key, group in groups:
        assert {k for k in group if k.endswith("transform_args")} == need[key], key
        assert set(group) - need[key] <= {"dataset_names", "num_used_data", "weight", "is_mandatory"}, key
        assert group["is_mandatory"] is False  # a mandatory group goes into every pack, whatever the weights
    assert {key for key, _ in groups} == {SFT, TEXT, EDIT, CF, T2I_JSONL, T2I_PARQUET}


def test_2_no_placeholder_text_where_the_loader_places_images(exported):
    for registry in (EDIT, CF, T2I_JSONL, TEXT):
        rows = rows_of(exported.out, registry)
        assert rows, registry
        for row in rows:
            assert all("<image>" not in turn["value"] for turn in row["message"]), (registry, row["id"])
    for row in rows_of(exported.out, SFT):  # this loader places an image at each placeholder of one human turn
        counts = [t["value"].count("<image>") for t in row["message"] if t["from"] == "human"]
        assert max(counts) == sum(counts) == len(row["input_img"]), row["id"]
        assert all("<image>" not in t["value"] for t in row["message"] if t["from"] == "gpt")
    assert any("split" in s and "one human turn" in s for s in exported.skipped), exported.skipped


def test_3_counterfactual_rows_go_to_the_counterfactual_loader(exported):
    assert sorted(r["id"] for r in rows_of(exported.out, CF)) == ["icg/cf/0", "icg/cf/1"]
    assert all(r["main_task_type"] != "counterfactual_generation" for r in rows_of(exported.out, EDIT))
    assert rows_of(exported.out, EDIT)
    assert "icg" in configs(exported.out)["stage3.yaml"][CF]["dataset_names"]


def test_4_dataset_info_merges_into_upstreams_python_dict(exported):
    upstream = {SFT: {"kept": {"data_dir": "/elsewhere", "jsonl_path": "/elsewhere/a.jsonl"}}}
    runpy.run_path(str(exported.out / "unimed_dataset_info.py"))["merge_into"](upstream)
    assert upstream[SFT]["kept"]["data_dir"] == "/elsewhere"  # merged per registry key, not replaced
    info = load(exported.out / "dataset_info.yaml")
    assert set(upstream) == set(info) | {SFT}
    for registry, names in info.items():
        for name, meta in names.items():
            assert set(meta) == ({"data_dir"} if registry == T2I_PARQUET else {"data_dir", "jsonl_path"})
            merged = upstream[registry][name]
            assert os.path.isdir(merged["data_dir"]) and os.path.isabs(merged["data_dir"])
            if "jsonl_path" in merged:
                assert os.path.isfile(merged["jsonl_path"])


def test_5_a_copied_export_points_at_its_new_place(exported, tmp_path):
    copy = tmp_path / "moved"
    shutil.copytree(exported.out, copy)
    merged = runpy.run_path(str(copy / "unimed_dataset_info.py"))["merge_into"]({})
    paths = [v for names in merged.values() for meta in names.values() for v in meta.values()]
    assert paths and all(p.startswith(str(copy) + os.sep) and os.path.exists(p) for p in paths)
    text = (copy / "dataset_info.yaml").read_text() + "".join(p.read_text() for p in (copy / "configs").glob("*"))
    assert str(exported.out) not in text
    for row in rows_of(copy, SFT) + rows_of(copy, EDIT):
        for ref in row["input_img"] + row["output_img"]:
            assert not os.path.isabs(ref["path"]) and (copy / "images" / ref["path"]).is_file()


def test_6_t2i_parquet_counts_files_and_has_one_per_rank_and_worker(exported):
    data_dir = exported.out / load(exported.out / "dataset_info.yaml")[T2I_PARQUET]["unimed_t2i"]["data_dir"]
    files = sorted(p for p in os.listdir(data_dir) if p.endswith(".parquet"))
    assert len(files) >= 2 * 2  # ranks x workers: the loader hands out whole files
    for config in configs(exported.out).values():
        assert config[T2I_PARQUET]["num_used_data"] == [len(files)]
        assert "shuffle_lines" not in config[T2I_PARQUET]
    assert sum(pq.ParquetFile(data_dir / f).metadata.num_rows for f in files) == COUNTS["t2i"]  # planning: JSONL


def test_7_every_registered_file_is_named_by_a_config(exported):
    info = load(exported.out / "dataset_info.yaml")
    named = {(key, name) for config in configs(exported.out).values()
             for key, group in config.items() for name in group["dataset_names"]}
    assert {(key, name) for key, names in info.items() for name in names} == named
    planning = rows_of(exported.out, T2I_JSONL)
    assert sorted(r["id"] for r in planning) == ["planner/t2i/0", "planner/t2i/1"]
    assert all([t["from"] for t in r["message"]] == ["human", "gpt"] for r in planning)
    for config in configs(exported.out).values():  # each config lists each dataset once, with its row count
        for key, group in config.items():
            assert len(group["num_used_data"]) == len(group["dataset_names"])


def test_8_configs_only_for_stages_with_data_at_the_curriculum_weights(exported, tmp_path):
    build = write_synthetic_build(tmp_path / "s3", counts={"interleaved": 4}, image_size=16)
    report = export_unimedvl([build], tmp_path / "out", ranks=1, workers=1)
    assert sorted(p.name for p in (tmp_path / "out" / "configs").iterdir()) == ["stage2.yaml", "stage3.yaml"]
    assert report.stages == [2, 3] and any("stage1" in w for w in report.warnings)
    for number, stage in CURRICULUM_STAGES.items():  # the full export: family weights as the curriculum's
        config = configs(exported.out)[f"stage{number}.yaml"]
        family = {SFT: "i2t", TEXT: "text", EDIT: "interleaved", CF: "interleaved", T2I_JSONL: "t2i",
                  T2I_PARQUET: "t2i"}
        totals: dict[str, float] = {}
        for key, group in config.items():
            assert group["weight"] > 0
            totals[family[key]] = totals.get(family[key], 0) + group["weight"]
        assert totals == pytest.approx({f: w for f, w in stage.weights.items() if w > 0})


def row(n_in: int, n_out: int, *turns: tuple[str, str], task: str = "x") -> dict:
    return {"main_task_type": task, "input_img": [{"path": f"in{i}.png"} for i in range(n_in)],
            "output_img": [{"path": f"out{i}.png"} for i in range(n_out)],
            "message": [{"from": who, "value": value} for who, value in turns]}


@pytest.mark.parametrize("doc, loader, message", [
    (row(2, 0, ("human", "Compare."), ("gpt", "Same.")), SFT, ["<image>\n<image>\nCompare.", "Same."]),
    (row(1, 1, ("human", "<image>\nTo FLAIR."), ("gpt", "Done.")), EDIT, ["To FLAIR.", "Done."]),
    (row(1, 1, ("human", "<image> In 5 years?"), ("gpt", "Larger."), task="counterfactual_generation"), CF,
     ["In 5 years?", "Larger."]),
    (row(0, 1, ("human", "A CT."), ("gpt", "Plan: axial.")), T2I_JSONL, ["A CT.", "Plan: axial."]),
    (row(0, 1, ("human", "A CT.")), T2I_PARQUET, ["A CT."]),
    (row(0, 0, ("human", "<image> Why?"), ("gpt", "Because.")), TEXT, ["Why?", "Because."]),
])
def test_route_sends_each_shape_to_its_loader(doc, loader, message):
    from pipeline.curriculum.export import route

    assert route(doc) == (loader, [{"from": t["from"], "value": v} for t, v in zip(doc["message"], message)])


@pytest.mark.parametrize("doc, reason", [
    (row(1, 0, ("human", "<image> What?"), ("gpt", "See <image>.")), "gpt turn"),
    (row(2, 1, ("human", "Fuse."), ("gpt", "Fused.")), "input_img[0] and output_img[0] only"),
    (row(1, 1, ("human", "<image>"), ("gpt", "Done.")), "human instruction"),
    (row(1, 0, ("human", "What?")), "no gpt turn"),
    (row(0, 0, ("system", "Be brief."), ("human", "Why?"), ("gpt", "So.")), "role 'system'"),
])
def test_route_leaves_out_rows_no_loader_reads_whole(doc, reason):
    from pipeline.curriculum.export import Unreadable, route

    with pytest.raises(Unreadable, match=re.escape(reason)):
        route(doc)


def test_groups_too_small_for_ranks_x_workers_are_reported(tmp_path):
    from pipeline.curriculum.export_check import check_export

    build = write_synthetic_build(tmp_path / "b", counts={"i2t": 6, "text": 2, "t2i": 3}, image_size=8)
    report = export_unimedvl([build], tmp_path / "out", ranks=2, workers=2)
    assert sorted(w.split(":")[0] for w in report.warnings if "ranks" in w) == [f"group {TEXT}", f"group {T2I_PARQUET}"]
    problems = check_export(tmp_path / "out")
    assert problems and all("2 ranks x 2 workers" in p for p in problems)
    assert check_export(tmp_path / "out", ranks=1, workers=1) == []


def test_check_passes_a_good_export_and_names_each_problem(exported, tmp_path):
    from pipeline.curriculum.export_check import check_export

    assert check_export(exported.out, ranks=1, workers=1) == []  # (2 counterfactual rows: too few for 2 x 2)
    broken = tmp_path / "broken"
    shutil.copytree(exported.out, broken)
    stage3 = load(broken / "configs" / "stage3.yaml")
    del stage3[SFT]["image_transform_args"]
    stage3[T2I_PARQUET]["num_used_data"] = [COUNTS["t2i"]]
    stage3[T2I_PARQUET]["shuffle_lines"] = True
    (broken / "configs" / "stage3.yaml").write_text(yaml.safe_dump(stage3))
    (broken / "configs" / "stage1.yaml").write_text("{}\n")
    info = load(broken / "dataset_info.yaml")
    edit = next(iter(info[EDIT].values()))
    edit["data_dir"] = str(broken / "images")
    (broken / "dataset_info.yaml").write_text(yaml.safe_dump(info))
    jsonl = broken / edit["jsonl_path"]
    rows = [json.loads(line) for line in jsonl.read_text().splitlines()]
    rows[0]["message"][0]["value"] = "<image>\n" + rows[0]["message"][0]["value"]
    jsonl.write_text("".join(json.dumps(r) + "\n" for r in rows))
    problems = check_export(broken, ranks=1, workers=1)
    expected = ["missing image_transform_args", "t2i_pretrain counts files", "['shuffle_lines']",
                "configs/stage1.yaml: no dataset group", "is absolute", "reaches the tokenizer as text"]
    for fragment in expected:
        assert sum(fragment in p for p in problems) == 1, (fragment, problems)
    assert len(problems) == len(expected), problems


def test_export_memory_is_flat(tmp_path):
    peaks = []
    for n in (1, 4):
        counts = {family: count * n for family, count in COUNTS.items()}
        build = write_synthetic_build(tmp_path / f"b{n}", counts=counts, per_shard=20, image_size=64)
        tracemalloc.start()
        export_unimedvl([build], tmp_path / f"o{n}", ranks=2, workers=1, rows_per_file=10, row_group=4)
        peaks.append(tracemalloc.get_traced_memory()[1])
        tracemalloc.stop()
    assert peaks[1] < 1.5 * peaks[0], peaks  # 4x the samples, not 4x the memory


def test_cli_export_and_check(tmp_path, capsys):
    from pipeline.cli import main

    build = write_synthetic_build(tmp_path / "syn", counts={"i2t": 3, "text": 2}, image_size=8)
    out = tmp_path / "out"
    assert main(["export", "--format", "unimedvl", str(build), "--out", str(out), "--ranks", "1"]) == 0
    assert (out / "configs" / "stage1.yaml").is_file() and (out / "jsonl" / TEXT).is_dir()
    assert main(["export", "--check", str(out)]) == 0
    assert main(["export", "--check", str(out), "--ranks", "4"]) == 1
    printed = capsys.readouterr()
    assert "4 ranks x 1 workers" in " ".join((printed.out + printed.err).split())
    assert main(["export", "--check", str(tmp_path / "nowhere")]) == 1
    assert main(["export", str(build)]) == 2
    (out / "jsonl" / "stale.jsonl").write_text("{}\n")
    assert main(["export", str(build), "--out", str(out), "--ranks", "1"]) == 0  # an earlier export is replaced
    assert not (out / "jsonl" / "stale.jsonl").exists() and main(["export", "--check", str(out)]) == 0
    assert main(["export", str(build), "--out", str(build)]) == 1  # a folder that is not an export: refused
    assert main(["export", str(build), "--out", str(tmp_path / "o2"), "--ranks", "0"]) == 1


@pytest.mark.skipif(not os.environ.get("UNIMEDVL_UPSTREAM"), reason="UNIMEDVL_UPSTREAM not set (upstream loader "
                    "code is gathered outside the repo; see ../shared/tools/unimedvl-loaders/README.md)")
def test_released_loaders_read_every_row(exported, tmp_path):
    run_released_loaders(exported.out, tmp_path)


def write_shared_figure_build(out: Path, questions: int, figures: int, per_shard: int, texts: int = 3) -> Path:
    """PMC-VQA's shape: `questions` i2t samples over `figures` JPEGs (question i asks about figure i % figures,
    each sample holding its figure's bytes, as a build stores them), plus `texts` text samples; a manifest of
    the real schema whose `image_hashes` name each figure, and `per_shard` samples a shard."""
    import hashlib
    import io
    import tarfile

    from PIL import Image as PILImage

    from manifests.records import shard_key
    from manifests.schema import MANIFEST_SCHEMA

    rng = np.random.default_rng(1)
    jpegs = []
    for _ in range(figures):
        buffer = io.BytesIO()
        PILImage.fromarray(rng.integers(0, 255, (24, 32, 3), dtype=np.uint8)).save(buffer, format="JPEG")
        jpegs.append(buffer.getvalue())
    samples = []
    for index in range(questions):
        figure = index % figures
        doc = {"id": f"pmc_vqa/train/{index:05d}", "dataset": "pmc_vqa", "main_task_type": "image_understanding",
               "sub_task_type": "medical_vqa", "modality": "other", "split": "train",
               "input_img": [{"path": "in0.jpg", "height": 24, "width": 32}], "output_img": [],
               "message": [{"from": "human", "value": f"<image>\nQuestion {index}?"},
                           {"from": "gpt", "value": f"Answer {index}."}]}
        samples.append((doc, {"in0.jpg": jpegs[figure]}, "i2t", [hashlib.md5(jpegs[figure]).hexdigest()]))
    for index in range(texts):
        doc = {"id": f"medqa/train/{index:05d}", "dataset": "medqa", "main_task_type": "text", "sub_task_type": "qa",
               "modality": "text", "split": "train", "input_img": [], "output_img": [],
               "message": [{"from": "human", "value": f"Vignette {index}?"}, {"from": "gpt", "value": "B."}]}
        samples.append((doc, {}, "text", None))
    rows = []
    (out / "shards" / "g").mkdir(parents=True)
    for start in range(0, len(samples), per_shard):
        name = f"g/{out.name}-{start // per_shard:06d}.tar"
        with tarfile.open(out / "shards" / name, "w", format=tarfile.USTAR_FORMAT) as tar:
            for doc, images, family, hashes in sorted(samples[start:start + per_shard], key=lambda s: s[0]["id"]):
                key = shard_key(doc["id"])
                for suffix, data in (("json", json.dumps(doc).encode()), *images.items()):
                    info = tarfile.TarInfo(f"{key}.{suffix}")
                    info.size = len(data)
                    tar.addfile(info, io.BytesIO(data))
                rows.append({"id": doc["id"], "source": doc["dataset"], "status": "kept", "task_family": family,
                             "shard": name, "key": key, "image_hashes": hashes, "n_input_images": len(images),
                             "n_output_images": 0, "sample": json.dumps(doc)})
    (out / "manifest").mkdir()
    table = pa.Table.from_pylist([{c: r.get(c) for c in MANIFEST_SCHEMA.names} for r in rows], schema=MANIFEST_SCHEMA)
    pq.write_table(table, out / "manifest" / "part-00000.parquet")
    return out


def folder_sizes(root: Path) -> dict[str, int]:
    return {folder: len(dirs) + len(files) for folder, dirs, files in os.walk(root)}


def test_each_distinct_image_is_written_once_in_folders_of_bounded_size(tmp_path):
    from pipeline.curriculum.export_check import check_export

    build = write_shared_figure_build(tmp_path / "vqa", questions=40, figures=7, per_shard=6)
    report = export_unimedvl([build], tmp_path / "out", ranks=1, workers=1, folder_entries=4)
    images = tmp_path / "out" / "images"
    files = sorted(p for p in images.rglob("*") if p.is_file())
    assert len(files) == report.images == 7 and report.image_refs == 40  # one file per figure, 40 references
    assert max(folder_sizes(images).values()) <= 4 and len(files[0].relative_to(images).parts) > 2  # nested
    rows = rows_of(tmp_path / "out", SFT)
    assert len(rows) == 40 and len(rows_of(tmp_path / "out", TEXT)) == 3
    by_figure: dict[int, set[str]] = {}
    for row in rows:
        by_figure.setdefault(int(row["id"].rsplit("/", 1)[1]) % 7, set()).add(row["input_img"][0]["path"])
    assert all(len(paths) == 1 for paths in by_figure.values()) and len(by_figure) == 7
    assert check_export(tmp_path / "out") == []  # (ranks 1 x workers 1, from unimed_export.json)


def test_a_build_without_manifest_shares_its_figures_too(tmp_path):
    import shutil

    build = write_shared_figure_build(tmp_path / "vqa", questions=30, figures=4, per_shard=7)
    shutil.rmtree(build / "manifest")  # families from the samples, image counts from the tar headers
    report = export_unimedvl([build], tmp_path / "out", ranks=1, workers=1, folder_entries=4)
    files = [p for p in (tmp_path / "out" / "images").rglob("*") if p.is_file()]
    assert len(files) == report.images == 4 and report.image_refs == 30
    assert max(folder_sizes(tmp_path / "out" / "images").values()) <= 4
    assert len(rows_of(tmp_path / "out", SFT)) == 30 and len(rows_of(tmp_path / "out", TEXT)) == 3


class CountingConnection:
    """A DuckDB connection that records every statement it runs."""

    def __init__(self, con, log: list[str]):
        self._con, self._log = con, log

    def execute(self, query, *args):
        self._log.append(query)
        return self._con.execute(query, *args)

    def sql(self, query, *args):
        self._log.append(query)
        return self._con.sql(query, *args)

    def __getattr__(self, name):
        return getattr(self._con, name)


def test_export_reads_the_manifest_in_one_query_and_each_shard_once(tmp_path, monkeypatch):
    import duckdb

    import pipeline.curriculum.export as export

    statements: list[str] = []
    connect = duckdb.connect
    monkeypatch.setattr(duckdb, "connect", lambda *a, **k: CountingConnection(connect(*a, **k), statements))
    opened: list[str] = []
    read_shard = export.iter_shard
    monkeypatch.setattr(export, "iter_shard", lambda path: opened.append(str(path)) or read_shard(path))
    counts = []
    for questions in (12, 120):  # 2 shards, then 20
        statements.clear()
        opened.clear()
        build = write_shared_figure_build(tmp_path / f"b{questions}", questions=questions, figures=5, per_shard=6,
                                          texts=0)
        report = export_unimedvl([build], tmp_path / f"o{questions}", ranks=1, workers=1)
        assert sum(report.rows.values()) == questions and report.images == 5
        reads = [s for s in statements if "read_parquet" in s]
        # image count (DESCRIBE, sum), kept rows per shard, the rows: none names a shard
        assert len(reads) == 4 and not any("shard =" in s or "?" in s for s in reads), reads
        assert sorted(opened) == sorted(set(opened)) and len(opened) == questions // 6
        counts.append(len(statements))
    assert counts[0] == counts[1]  # ten times the shards, the same statements


def test_rows_of_the_manifest_and_samples_of_the_shards_that_disagree_are_named(tmp_path):
    build = write_shared_figure_build(tmp_path / "vqa", questions=6, figures=2, per_shard=6, texts=0)
    table = pq.read_table(build / "manifest")
    rows = table.to_pylist()
    ghost = {**rows[0], "id": "pmc_vqa/train/ghost", "key": "ghost"}  # in the manifest, in no shard
    kept = [r for r in rows if r["id"] != rows[1]["id"]] + [ghost]  # rows[1]: in the shard, not kept
    pq.write_table(pa.Table.from_pylist(kept, schema=table.schema), build / "manifest" / "part-00000.parquet")
    report = export_unimedvl([build], tmp_path / "out", ranks=1, workers=1)
    assert sum(report.rows.values()) == 5 and report.skipped_count == 2
    assert any(rows[1]["key"] in s and "not a kept sample" in s for s in report.skipped)
    assert any("ghost" in s and "not in its shard" in s for s in report.skipped)


def test_a_shard_the_manifest_names_but_the_disk_lacks_is_one_clear_error(tmp_path):
    build = write_shared_figure_build(tmp_path / "vqa", questions=12, figures=2, per_shard=6, texts=0)
    next((build / "shards").rglob("*.tar")).unlink()
    with pytest.raises(FileNotFoundError, match="named by the manifest .* is missing; rebuild or restore it"):
        export_unimedvl([build], tmp_path / "out", ranks=1, workers=1)
