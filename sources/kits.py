"""KiTS (Kidney and Kidney Tumor Segmentation challenge) 2019, 2021 and 2023: contrast CT with kidney,
tumour and cyst labels.

Card
- Citation: Heller N et al. "The KiTS19 challenge data: 300 kidney tumor cases with clinical context, CT
  semantic segmentations, and surgical outcomes." arXiv:1904.00445, 2019; Heller N et al. "The state of
  the art in kidney and kidney tumor segmentation in contrast-enhanced CT imaging: Results of the KiTS19
  challenge." Medical Image Analysis 67:101821, 2021; KiTS21/KiTS23 challenge reports (kits-challenge.org).
- URL: https://github.com/neheller/kits19 , https://github.com/neheller/kits21 , https://github.com/neheller/kits23
  (the repositories hold the labels; the imaging is fetched by their download scripts).
- Licence: CC BY-NC-SA 4.0 (as stated by FLamby for KiTS19; KiTS21/23 [uncertain, check the repository]).
  Access: open.
- Modality: CT (arterial/late-arterial phase, abdomen), 512x512 in-plane, slice thickness 0.5-5 mm.
- Counts: KiTS19 300 cases (210 with labels, 90 test without); KiTS21 300 labelled; KiTS23 489 labelled.
- Overlaps: KiTS21 and KiTS23 re-annotate the KiTS19 cases (case_00000-00299 recur in all three), so use
  one release per build; slices that coincide meet in the exact-duplicate filter, not here.

Layouts handled (see docs/sources/kits.md)::

    kits19/data/case_00000/{imaging,segmentation}.nii.gz     (+ kits.json; case_00210.. imaging only)
    kits21/kits21/data/case_00000/{imaging,aggregated_MAJ_seg}.nii.gz   (+ segmentations/ per-rater files)
    kits23/dataset/case_00000/{imaging,segmentation}.nii.gz  (+ instances/ per-rater files)

Labels: 0 background, 1 kidney, 2 tumour, 3 cyst (KiTS19 has no 3). Targets follow the KiTS21/23
hierarchical evaluation regions: "kidney" = {1, 2, 3} (kidney and masses), "kidney tumor" = {2},
"kidney cyst" = {3}. KiTS19 stores volumes as (slices, rows, cols) with an affine whose first axis is
the z axis; the shared NIfTI loader reorients every volume to canonical RAS+, so slices are always axial
(radiological display order) and slice indices are those of the canonical volume.

Output: per axial slice, one interleaved prompt-segmentation record per target present: the CT slice
windowed with a fixed, documented HU window (option `ct_window`: "soft_tissue" [-160, 240] (default,
abdomen), "wide" [-1000, 1000], or a [low, high] pair) onto uint16 + "Please help me segment the
<target>." -> a short answer + the target's mask as 8-bit 0/255. Ids
`kits/<split>/<case>/<slice:03d>/<target with _>`. A slice with no label at all is one
`slice_without_annotation` rejection (`kits/<split>/<case>/<slice:03d>`); a target with fewer than
`min_target_pixels` (default 16) pixels in a slice is `target_too_small`. A case without a segmentation
file (KiTS19 test cases) is split "test" and one `annotation_missing` rejection; volumes whose grids differ
are `mask_size_mismatch`.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from manifests.records import IMAGE_TOKEN, Record, Rejection
from sources.base import DatasetCard, Source, SourceError, WorkUnit
from sources.io.files import scan
from sources.io.image import ImageDecodeError, image_from_array
from sources.io.nifti import axial_slice, load_nifti

CASE = re.compile(r"^case_\d{5}$")
CASE_FOLDERS = ("data", "dataset", "kits21/data", "")  # where the case_* folders sit, by release
IMAGING = ("imaging.nii.gz", "imaging.nii")
SEGMENTATION = ("segmentation.nii.gz", "aggregated_MAJ_seg.nii.gz", "segmentation.nii", "aggregated_MAJ_seg.nii")
TARGETS = {"kidney": (1, 2, 3), "kidney tumor": (2,), "kidney cyst": (3,)}
CT_WINDOWS = {"soft_tissue": (-160.0, 240.0), "wide": (-1000.0, 1000.0)}
RESPONSES = (
    "Here is the segmentation mask of the {target}.",
    "The {target} has been segmented; the mask is shown below.",
    "Sure, this is the {target} segmentation of the CT slice.",
)


def hu_to_uint16(values: np.ndarray, window: tuple[float, float]) -> np.ndarray:
    """Clip HU to [low, high] and map linearly onto 0..65535 (the same mapping for every volume)."""
    low, high = window
    values = np.nan_to_num(np.asarray(values, dtype=np.float32), nan=low)
    return np.round((np.clip(values, low, high) - low) / (high - low) * 65535.0).astype(np.uint16)


def _first(folder: Path, names: tuple[str, ...]) -> str | None:
    return next((name for name in names if (folder / name).is_file()), None)


class Kits(Source):
    card = DatasetCard(
        name="kits",
        title="KiTS19/21/23: kidney and kidney tumour segmentation in CT",
        modalities=("ct",),
        tasks=("prompt_segmentation",),
        licence="CC BY-NC-SA 4.0 (KiTS19); KiTS23: CC BY-NC-SA (the kits23 repository README)",
        access="open",
        url="https://kits-challenge.org",
        citation="Heller et al., The state of the art in kidney and kidney tumor segmentation in "
                 "contrast-enhanced CT imaging: results of the KiTS19 challenge, MedIA 2021",
        root_names=("kits23", "kits21", "kits19"),
        counts="KiTS19 210 labelled + 90 test cases; KiTS21 300; KiTS23 489 labelled cases",
    )
    items_per_unit = 1  # one CT volume per unit: volumes are large

    def _cases_folder(self) -> str:
        for folder in CASE_FOLDERS:
            path = self.root / folder
            if path.is_dir() and any(e.is_dir() and CASE.match(e.name) for e in scan(path)):
                return folder
        raise SourceError(f"{self.root}: no case_XXXXX folders in data/, dataset/, kits21/data/ or the root; "
                          "point the root at the kits19, kits21 or kits23 checkout")

    def _window(self) -> tuple[float, float]:
        window = self.options.get("ct_window", "soft_tissue")
        if isinstance(window, str):
            if window not in CT_WINDOWS:
                raise SourceError(f"kits: ct_window {window!r} must be one of {sorted(CT_WINDOWS)} or [low, high]")
            return CT_WINDOWS[window]
        low, high = (float(v) for v in window)
        if high <= low:
            raise SourceError(f"kits: ct_window {window!r} needs low < high")
        return low, high

    def work_units(self) -> list[WorkUnit]:
        folder = self._cases_folder()
        self._window()  # a bad option fails on the driver, not on every worker
        prefix = f"{folder}/" if folder else ""
        by_split: dict[str, list[dict]] = {"train": [], "test": []}
        for case in sorted(e.name for e in scan(self.root / folder) if e.is_dir() and CASE.match(e.name)):
            case_dir = self.root / prefix / case
            seg = _first(case_dir, SEGMENTATION)
            item = {"case": case, "folder": f"{prefix}{case}", "imaging": _first(case_dir, IMAGING), "seg": seg}
            by_split["train" if seg else "test"].append(item)
        units = []
        for split, items in by_split.items():
            if self.wants_split(split):
                units.extend(self.chunked_units(split, items))
        return units

    def iter_records(self, unit: WorkUnit) -> Iterator[Record | Rejection]:
        for item in unit.items:
            yield from self._case(unit.split, item)

    def _case(self, split: str, item: dict) -> Iterator[Record | Rejection]:
        case_id = f"{self.name}/{split}/{item['case']}"
        image_path = f"{item['folder']}/{item['imaging'] or IMAGING[0]}"
        if item["seg"] is None:
            yield self._reject(case_id, split, "annotation_missing", f"no segmentation in {item['folder']}",
                               [image_path])
            return
        seg_path = f"{item['folder']}/{item['seg']}"
        paths = [image_path, seg_path]
        try:
            volume = load_nifti(self.root / image_path, source_path=image_path)
            labels = load_nifti(self.root / seg_path, source_path=seg_path, dtype=None)
        except ImageDecodeError as err:
            yield self._reject(case_id, split, err.reason, err.detail, paths)
            return
        if volume.shape != labels.shape:
            yield self._reject(case_id, split, "mask_size_mismatch",
                               f"imaging {volume.shape} vs segmentation {labels.shape}", paths)
            return
        window = self._window()
        ct = hu_to_uint16(volume.data, window)
        label_map = np.rint(np.asarray(labels.data, dtype=np.float32)).astype(np.uint8)
        minimum = int(self.options.get("min_target_pixels", 16))
        for k in range(ct.shape[2]):
            slice_id = f"{case_id}/{k:03d}"
            slice_labels = np.ascontiguousarray(axial_slice(label_map, k))
            if not slice_labels.any():
                yield self._reject(slice_id, split, "slice_without_annotation", f"axial slice {k}", paths)
                continue
            pixels = np.ascontiguousarray(axial_slice(ct, k))
            for target, values in TARGETS.items():
                mask = np.isin(slice_labels, values)
                count = int(np.count_nonzero(mask))
                if count == 0:
                    continue  # this slice does not show the target: nothing to ask for
                record_id = f"{slice_id}/{target.replace(' ', '_')}"
                if count < minimum:
                    yield self._reject(record_id, split, "target_too_small",
                                       f"{count} {target} pixels < {minimum}", paths)
                    continue
                yield self._record(record_id, split, target, values, k, pixels, mask, paths, window, item)

    def _record(self, record_id: str, split: str, target: str, values: tuple[int, ...], k: int,
                pixels: np.ndarray, mask: np.ndarray, paths: list[str], window: tuple[float, float],
                item: dict) -> Record:
        image = image_from_array(pixels, source_path=paths[0], slice_index=k, slice_axis="axial")
        output = image_from_array(np.where(mask, 255, 0).astype(np.uint8), source_path=paths[1], slice_index=k,
                                  slice_axis="axial")
        return Record(
            id=record_id, source=self.name, split=split, modality="ct", task_family="interleaved",
            main_task_type="segmentation", sub_task_type="prompt_segmentation",
            message=[{"from": "human", "value": f"{IMAGE_TOKEN}\nPlease help me segment the {target}."},
                     {"from": "gpt", "value": self.pick(record_id, RESPONSES).format(target=target)}],
            input_images=[image], output_images=[output], provenance=list(paths),
            meta={"target": target, "label_values": list(values), "case": item["case"], "slice_index": k,
                  "ct_window": list(window),
                  "foreground_fraction": round(float(np.count_nonzero(mask)) / mask.size, 4)},
        )

    def _reject(self, record_id: str, split: str, reason: str, detail: str, paths: list[str]) -> Rejection:
        return self.reject(record_id, split, reason, detail, modality="ct", task_family="interleaved",
                           provenance=list(paths))
