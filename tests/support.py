"""Test-only sources, registered inside Ray workers through `worker_process_setup_hook`.

`FlakySource` fails on purpose: a unit whose id ends in `bad` raises unless a marker file named in
its options exists, which is how a test makes a unit fail, then "fixes the input" and reruns.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from manifests.records import IMAGE_TOKEN, Record
from sources import SOURCES
from sources.base import DatasetCard, Source, WorkUnit
from sources.io.image import image_from_array


class FlakySource(Source):
    card = DatasetCard(name="flaky", title="test-only failing source", modalities=("other",), tasks=("medical_vqa",),
                       licence="test", access="open", url="-", citation="-", root_names=("Flaky",))

    def work_units(self) -> list[WorkUnit]:
        return [WorkUnit(self.name, f"flaky/train/{name}", "train", (name,)) for name in ("good", "bad")]

    def unit_inputs(self, unit: WorkUnit) -> list[str]:
        return ["fixed"] if unit.items[0] == "bad" else []  # what each unit reads: the good one, nothing

    def iter_records(self, unit: WorkUnit):
        name = unit.items[0]
        for index in range(3):
            if name == "bad" and index == 1 and not (self.root / "fixed").exists():
                raise OSError("simulated read failure in the middle of a unit")
            rng = np.random.default_rng(index + (100 if name == "bad" else 0))
            pixels = rng.integers(0, 255, size=(160, 160), dtype=np.uint8)
            yield Record(id=f"flaky/train/{name}-{index}", source=self.name, split="train", modality="other",
                         task_family="i2t", main_task_type="image_understanding", sub_task_type="medical_vqa",
                         message=[{"from": "human", "value": f"{IMAGE_TOKEN}\nWhat is shown in this image?"},
                                  {"from": "gpt", "value": "Random noise for a test."}],
                         input_images=[image_from_array(pixels, source_path=f"{name}-{index}.png")])


def register_test_sources() -> None:
    SOURCES.setdefault("flaky", FlakySource)


def make_flaky_root(root: Path) -> Path:
    path = Path(root) / "Flaky"
    path.mkdir(parents=True, exist_ok=True)
    return path


def run_released_loaders(export_dir: Path, scratch: Path) -> dict:
    """UniMedVL's released loader classes over an export, through ../shared/tools/unimedvl-loaders (the
    upstream code gathered outside the repo, UNIMEDVL_UPSTREAM); asserts PASS, returns the JSON report."""
    import json
    import os
    import subprocess
    import sys

    repo = Path(__file__).resolve().parents[1]
    harness = Path(os.environ.get("UNIMEDVL_HARNESS", repo.parent / "shared" / "tools" / "unimedvl-loaders"
                                  / "run_loaders.py"))
    # paths in dataset_info.yaml are relative to the export, as the harness's DATASET_INFO merge uses them
    done = subprocess.run([sys.executable, str(harness), ".", "--quiet", "--json", str(scratch / "r.json")],
                          cwd=export_dir, capture_output=True, text=True, timeout=3600)
    summary = done.stdout.strip().splitlines()[-1] if done.stdout.strip() else ""
    assert done.returncode == 0 and summary.endswith("-> PASS"), done.stdout[-3000:] + done.stderr[-2000:]
    report = json.loads((scratch / "r.json").read_text())
    assert report["mismatches"] == [] and report["config_errors"] == []
    return report


class CountingConnection:
    """A DuckDB connection that records what crosses into Python: `rows` gets the row count of every fetch
    (a list value in a cell counts as one row)."""

    def __init__(self, con, rows: list[int]):
        self._con, self._rows = con, rows

    def execute(self, query, *args):
        self._con.execute(query, *args)
        return self

    def fetchall(self):
        found = self._con.fetchall()
        self._rows.append(len(found))
        return found

    def fetchone(self):
        found = self._con.fetchone()
        self._rows.append(int(found is not None))
        return found

    @property
    def description(self):
        return self._con.description

    def __getattr__(self, name):
        return getattr(self._con, name)
