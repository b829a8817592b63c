"""Cross-modal synthesis: a slice in contrast A -> the same slice in contrast B (BraTS, SynthRAD2023, IXI).

The adapters pair slices of co-registered volumes on one grid (same affine), slice both at one index in
one orientation and normalise each volume once (MR: 0.5-99.5th percentile of non-zero voxels; CT and
CBCT: the recipe's HU window); empty or out-of-mask slices are already rejected there. This builder
checks that the pair really is one position (slice index, axis and size agree), applies the recipe's
slice policy, and renders the texts from the sub-task's contrast codes.
"""

from __future__ import annotations

from typing import Any

from manifests.records import Record
from pipeline.tasks.base import Problem, TaskBuilder

NAMES = {  # contrast code in the sub-task type -> how the texts call it
    "t1n": "T1-weighted MRI", "t1c": "contrast-enhanced T1-weighted MRI", "t2w": "T2-weighted MRI",
    "t2f": "T2-FLAIR MRI", "t1": "T1-weighted MRI", "t2": "T2-weighted MRI", "pd": "proton density-weighted MRI",
    "mr": "MRI", "cbct": "cone-beam CT", "ct": "CT",
}
MR_WINDOW = {"method": "percentile", "low_pct": 0.5, "high_pct": 99.5, "scope": "volume, non-zero voxels"}


def pair_codes(sub_task_type: str) -> tuple[str, str] | None:
    """("t2w", "t2f") from "mri_t2w_to_t2f"; ("mr", "ct") from "mr_to_ct"."""
    src, sep, dst = sub_task_type.removeprefix("mri_").partition("_to_")
    return (src, dst) if sep and src in NAMES and dst in NAMES else None


def normalisation(code: str, meta: dict) -> dict[str, Any]:
    if code in ("ct", "cbct") and meta.get("ct_window"):
        return {"method": "hu_window", "window": list(meta["ct_window"])}
    return dict(MR_WINDOW)


class CrossModal(TaskBuilder):
    task = "cross_modal_synthesis"
    slice_policy = True

    def construct(self, record: Record) -> dict[str, Any] | Problem:
        codes = pair_codes(record.sub_task_type)
        if codes is None:
            return "task_unknown_pair", f"sub-task {record.sub_task_type!r} names no known contrast pair"
        src, dst = record.input_images[0], record.output_images[0]
        if (src.slice_index, src.slice_axis, src.width, src.height) != (dst.slice_index, dst.slice_axis,
                                                                         dst.width, dst.height):
            return "pair_slice_mismatch", (f"input slice {src.slice_index} {src.slice_axis} {src.width}x{src.height} "
                                           f"vs output {dst.slice_index} {dst.slice_axis} {dst.width}x{dst.height}")
        return {"pair": list(codes), "slice_index": src.slice_index, "slice_axis": src.slice_axis,
                "orientation": "canonical RAS, radiological display",
                "normalisation": {codes[0]: normalisation(codes[0], record.meta),
                                  codes[1]: normalisation(codes[1], record.meta)},
                "volumes": list(record.provenance[:2])}

    def fields(self, record: Record) -> dict[str, str]:
        src, dst = pair_codes(record.sub_task_type)
        return {"src": NAMES[src], "dst": NAMES[dst], "code": dst,
                "anatomy": str(record.meta.get("region") or "brain")}
