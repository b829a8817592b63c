"""`make bench-scale` (pipeline/bench/scale.py): the corpus it generates is read by the real adapters as the
records it promises, each goal line says MET only when the numbers meet it, and the whole benchmark runs."""

from __future__ import annotations

import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from pipeline.bench.scale import STEPS, corpus_counts, report_lines, write_corpus

REPO = Path(__file__).resolve().parents[1]


def test_the_corpus_is_what_the_adapters_read(tmp_path):
    from manifests.records import Record
    from sources import get_source

    counts = write_corpus(tmp_path, 61)
    assert counts == corpus_counts(61) == {"medqa": 24, "pmc_vqa": 24, "rocov2": 12}
    figures = list((tmp_path / "PMC-VQA" / "images" / "figures").glob("*.jpg"))
    assert len(figures) == 5  # five questions a figure: 24 questions over 5 figures
    read = {}
    for name, folder in (("medqa", "data_clean"), ("pmc_vqa", "PMC-VQA"), ("rocov2", "ROCOv2")):
        adapter = get_source(name)(tmp_path / folder, {}, ["train"])
        read[name] = Counter((type(r).__name__, r.task_family) for unit in adapter.work_units()
                             for r in adapter.iter_records(unit))
        assert all(isinstance(r, Record) for unit in adapter.work_units() for r in adapter.iter_records(unit))
    assert read == {"medqa": {("Record", "text"): 24}, "pmc_vqa": {("Record", "i2t"): 24},
                    "rocov2": {("Record", "i2t"): 6, ("Record", "t2i"): 6}}


def _size(records: int, seconds: dict[str, float], rss: dict[str, float], samples: float) -> dict:
    runs = {step: {"seconds": seconds[step], "peak_rss": rss.get(step, 300e6), "peak_pss": 400e6} for step in STEPS}
    return {"records": records, "runs": runs,
            "shards": {"shards": 10, "kept": records, "samples_mean": samples, "samples_median": samples,
                       "bytes_mean": 1e6, "bytes_median": 1e6, "max_samples": 1000, "max_bytes": 2**30}}


def test_each_goal_is_met_only_by_numbers_that_meet_it():
    small = _size(40_000, dict.fromkeys(STEPS, 10.0) | {"build": 100.0, "rerun": 3.0}, {"build": 1.0e9}, 400)
    good = _size(400_000, {"build": 1100.0, "rerun": 20.0, "export": 110.0, "release": 100.0, "report": 30.0,
                           "audit sample": 20.0}, {"build": 1.2e9, "export": 330e6}, 950)
    lines = [line for line in report_lines(small, good) if "  goal " in line]
    assert len(lines) == 9 and all(line.endswith("]") and "NOT MET" not in line for line in lines), lines
    bad = _size(400_000, {"build": 1300.0, "rerun": 100.0, "export": 130.0, "release": 100.0, "report": 30.0,
                          "audit sample": 20.0}, {"build": 2.5e9, "report": 400e6}, 500)
    lines = [line for line in report_lines(small, bad) if "  goal " in line]
    failed = {line.split("  ")[0].strip() for line in lines if "NOT MET" in line}
    assert failed == {"build memory", "build time", "no-op rerun", "export", "report", "shard fill"}, lines


@pytest.mark.slow
def test_the_whole_benchmark_runs_at_a_tiny_size(tmp_path):
    done = subprocess.run([sys.executable, "-m", "pipeline.bench.scale", "--sizes", "30", "60",
                           "--workdir", str(tmp_path)], cwd=REPO, capture_output=True, text=True, timeout=3000)
    assert done.returncode == 0, done.stderr[-3000:]
    out = done.stdout
    for step in STEPS:
        assert sum(line.startswith(f"{step} ") for line in out.splitlines()) >= 2, (step, out)
    for goal in ("build memory", "build time", "no-op rerun", "export", "release", "report", "audit sample",
                 "shard fill"):
        assert any(line.startswith(goal) and "  goal " in line for line in out.splitlines()), (goal, out)
    assert "shards at 60 records" in out and out.strip().splitlines()[-1].startswith("total ")
    assert (tmp_path / "export-60" / "unimed_export.json").is_file() and (tmp_path / "release-60").is_dir()
