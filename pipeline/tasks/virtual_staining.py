"""Virtual IHC staining: an H&E tile + the HER2 level -> the IHC tile of the same tissue (BCI).

The HER2 level (0, 1+, 2+, 3+) comes from BCI's file name, parsed by the adapter into `meta.her2_level`.
"""

from __future__ import annotations

from typing import Any

from manifests.records import Record
from pipeline.tasks.base import Problem, TaskBuilder

LEVELS = ("0", "1+", "2+", "3+")


class VirtualStaining(TaskBuilder):
    task = "virtual_staining"

    def construct(self, record: Record) -> dict[str, Any] | Problem:
        level = record.meta.get("her2_level")
        if level not in LEVELS:
            return "her2_level_unparsed", f"meta.her2_level {level!r} is not one of {LEVELS}"
        he, ihc = record.input_images[0], record.output_images[0]
        if (he.width, he.height) != (ihc.width, ihc.height):
            return "pair_size_mismatch", f"H&E {he.width}x{he.height} vs IHC {ihc.width}x{ihc.height}"
        return {"her2_level": level, "stain_pair": ["H&E", "HER2 IHC"]}

    def fields(self, record: Record) -> dict[str, str]:
        return {"level": str(record.meta["her2_level"])}
