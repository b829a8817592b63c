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
