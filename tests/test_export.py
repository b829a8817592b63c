"""`unimed export --format unimedvl`: read back by a minimal re-implementation of the loaders' parsing."""

from __future__ import annotations

import io
import json
import os
import tracemalloc
from pathlib import Path

import pyarrow.parquet as pq
import pytest
import yaml
from PIL import Image

from pipeline.bench.loader import write_synthetic_build
from pipeline.curriculum.export import BAGEL_T2I, REGISTRY_KEY, export_unimedvl
from pipeline.curriculum.schedule import FAMILIES, CURRICULUM_STAGES

COUNTS = {"i2t": 12, "t2i": 8, "interleaved": 5, "text": 4}
REQUIRED = ("id", "main_task_type", "sub_task_type", "modality", "dataset", "input_img", "output_img", "message")


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    root = tmp_path_factory.mktemp("export")
    build = write_synthetic_build(root / "syn", counts=COUNTS, per_shard=10, image_size=16)
    report = export_unimedvl([build], root / "out", rows_per_file=5, row_group=2)
    return report


def read_jsonl_like_unimedvl(data_dir: str, jsonl_path: str) -> list[dict]:
    """What SftJSONLIterableDataset_Ver1 / T2IIterableDataset_Ver1 / MedicalImageEditing do per line:
    parse, join each image path to data_dir and open it, count `<image>` in the human turns."""
    samples = []
    with open(jsonl_path, encoding="utf-8") as handle:
        for line in handle:
            record = json.loads(line)
            for name in REQUIRED:
                assert name in record, name
            for role in ("input_img", "output_img"):
                for ref in record[role]:
                    assert not os.path.isabs(ref["path"])
                    with Image.open(os.path.join(data_dir, ref["path"])) as image:
                        assert image.size == (ref["width"], ref["height"])
            placeholders = sum(turn["value"].count("<image>") for turn in record["message"] if turn["from"] == "human")
            assert placeholders == len(record["input_img"])
            assert all(turn["from"] in ("human", "gpt") for turn in record["message"])
            samples.append(record)
    return samples


def read_parquet_like_bagel_t2i(data_dir: str) -> int:
    """T2IIterableDataset: per row group, decode `image`, json-load `captions` and pick one caption."""
    rows = 0
    for name in sorted(os.listdir(data_dir)):
        parquet = pq.ParquetFile(os.path.join(data_dir, name))
        for group in range(parquet.num_row_groups):
            for row in parquet.read_row_group(group).to_pylist():
                Image.open(io.BytesIO(row["image"])).load()
                captions = json.loads(row["captions"])
                assert isinstance(captions, dict) and all(isinstance(v, str) and v for v in captions.values())
                rows += 1
    return rows


def test_export_reads_back_through_the_loaders_rules(exported):
    info = yaml.safe_load((exported.out / "dataset_info.yaml").read_text())
    seen = {}
    for registry_key, names in info.items():
        for name, entry in names.items():
            if registry_key == BAGEL_T2I:
                assert read_parquet_like_bagel_t2i(entry["data_dir"]) == entry["num_total_samples"] == COUNTS["t2i"]
                assert len(os.listdir(entry["data_dir"])) == entry["num_files"] == 2  # 8 rows, 5 per file
                continue
            records = read_jsonl_like_unimedvl(entry["data_dir"], entry["jsonl_path"])
            assert len(records) == entry["num_total_samples"]
            seen[registry_key] = seen.get(registry_key, 0) + len(records)
    assert seen == {REGISTRY_KEY[f]: COUNTS[f] for f in FAMILIES}


def test_stage_configs_carry_the_stage_weights(exported):
    for number, stage in CURRICULUM_STAGES.items():
        config = yaml.safe_load((exported.out / "configs" / f"stage{number}.yaml").read_text())
        groups = {REGISTRY_KEY[f] if f != "t2i" else BAGEL_T2I: w for f, w in stage.weights.items() if w > 0}
        assert {k: v["weight"] for k, v in config.items()} == groups
        for group in config.values():
            assert isinstance(group["is_mandatory"], bool)
            assert len(group["num_used_data"]) == len(group["dataset_names"])
        assert config[BAGEL_T2I]["is_mandatory"] is True


def test_export_memory_is_flat(tmp_path):
    peaks = []
    for n in (1, 4):
        counts = {family: count * n for family, count in COUNTS.items()}
        build = write_synthetic_build(tmp_path / f"b{n}", counts=counts, per_shard=20, image_size=64)
        tracemalloc.start()
        export_unimedvl([build], tmp_path / f"o{n}", rows_per_file=10, row_group=4)
        peaks.append(tracemalloc.get_traced_memory()[1])
        tracemalloc.stop()
    assert peaks[1] < 1.5 * peaks[0], peaks  # 4x the samples, not 4x the memory


def test_cli_export(tmp_path):
    from pipeline.cli import main

    build = write_synthetic_build(tmp_path / "syn", counts={"i2t": 3, "text": 2}, image_size=8)
    assert main(["export", "--format", "unimedvl", str(build), "--out", str(tmp_path / "out")]) == 0
    assert (tmp_path / "out" / "configs" / "stage1.yaml").is_file()
    assert Path(tmp_path / "out" / "jsonl" / "text").is_dir()
