"""SynthRAD2023: paired MRI/CT (task 1) and CBCT/CT (task 2) of brain and pelvis for synthetic-CT generation.

Card
- Citation: Thummerer A, van der Bijl E, Galapon A Jr, et al. "SynthRAD2023 Grand Challenge dataset:
  Generating synthetic CT for radiotherapy." Medical Physics 50(7):4664-4674, 2023. doi:10.1002/mp.16529
- URL: https://synthrad2023.grand-challenge.org ; data on Zenodo (record 7260705 [uncertain id]).
- Licence: CC BY-NC 4.0 [uncertain: as stated on Zenodo, not re-checked]. Access: open download after
  challenge registration (registration class here).
- Modality: CT targets; MRI (task 1, sequences differ per centre, un-normalised) or CBCT (task 2) inputs,
  registered to the CT grid. Three centres (A, B, C).
- Counts: training 180 patients per task and region (brain, pelvis): 720 volume pairs.
- Overlaps: none known; SynthRAD2025 is a later, separate release.

Layout (Zenodo zips unpacked in place)::

    SynthRAD2023/                                    (the folder the user unpacked into; any name)
      Task1/brain/1BA001/{mr,ct,mask}.nii.gz          Task1/pelvis/1PA001/...
      Task2/brain/2BA001/{cbct,ct,mask}.nii.gz        Task2/pelvis/2PA001/...
      Task*/<region>/overview/  (xlsx/png previews: ignored)

Patient id = `<task 1|2><region B|P><centre A|B|C><3 digits>`. Preprocessing by the organisers: CT
resampled to 1x1x1 mm (brain) or 1x1x2.5 mm (pelvis), MR/CBCT registered to it (same grid), a dilated
body mask, CT background -1000 HU, MR background 0. Validation/test releases lack `ct.nii.gz`.

Output: one interleaved record per axial slice (canonical RAS through the affine, radiological display
order, see sources/io/nifti.py): input slice + instruction -> short answer + CT slice; both 16-bit.
CT (and CBCT, which the organisers keep in HU-like units [uncertain how well calibrated]) is windowed
onto uint16 with a documented HU window, option `ct_window`: "wide" [-1000, 1000] (default: keeps
air, soft tissue and most bone), "soft_tissue" [-160, 240], "bone" [-1000, 3000], or a [low, high] pair.
MR is windowed per volume (0.5-99.5th percentile of non-zero voxels). Slices where the body mask covers
less than `min_mask_fraction` (default 0.05) of the slice are `outside_mask` rejections. Ids:
`synthrad2023/<split>/<patient>/<mr|cbct>-ct/<slice:03d>`. A case without the CT or input volume is
`missing_volume`; grids that differ are `pair_grid_mismatch`. Split: "validate"/"test" when an ancestor
folder says so, else "train" (the training release is the only one with CT).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from manifests.records import IMAGE_TOKEN, Record, Rejection
from sources.base import DatasetCard, Source, SourceError, WorkUnit
from sources.io.files import scan, source_path
from sources.io.image import ImageDecodeError, image_from_array
from sources.io.nifti import axial_slice, load_nifti, mr_to_uint16

TASKS = {"Task1": ("mr", "mri", "MRI"), "Task2": ("cbct", "ct", "CBCT")}  # folder -> (file, modality, words)
REGIONS = ("brain", "pelvis")
PATIENT = re.compile(r"^(?P<task>[12])(?P<region>[BP])(?P<centre>[A-Z])\d{3}$")
NIFTI = (".nii.gz", ".nii")
CT_WINDOWS = {"wide": (-1000.0, 1000.0), "soft_tissue": (-160.0, 240.0), "bone": (-1000.0, 3000.0)}
INSTRUCTIONS = (
    "Generate the corresponding CT image from this {src} slice of the {region}.",
    "Synthesize a CT scan of the same {region} slice from the given {src} image.",
    "Translate this {src} image of the {region} into a synthetic CT image.",
)
RESPONSES = (
    "Here is the synthesized CT image of the same slice.",
    "The synthetic CT of this slice has been generated.",
    "Done. Presented here is the corresponding CT slice.",
)


def hu_to_uint16(values: np.ndarray, window: tuple[float, float]) -> np.ndarray:
    """Clip HU to [low, high] and map linearly onto 0..65535 (the same mapping for every volume)."""
    low, high = window
    values = np.nan_to_num(np.asarray(values, dtype=np.float32), nan=low)
    return np.round((np.clip(values, low, high) - low) / (high - low) * 65535.0).astype(np.uint16)


def _find(folder: Path, stem: str) -> str | None:
    return next((f"{stem}{s}" for s in NIFTI if (folder / f"{stem}{s}").is_file()), None)


def _split_of(download: str) -> str:
    lowered = download.lower()
    for word, split in (("validation", "validate"), ("test", "test")):
        if word in lowered:
            return split
    return "train"


class Synthrad2023(Source):
    card = DatasetCard(
        name="synthrad2023",
        title="SynthRAD2023: MRI->CT and CBCT->CT synthesis, brain and pelvis",
        modalities=("ct", "mri"),
        tasks=("mr_to_ct", "cbct_to_ct"),
        licence="CC BY-NC 4.0 [uncertain]",
        access="registration",
        url="https://synthrad2023.grand-challenge.org",
        citation="Thummerer et al., SynthRAD2023 Grand Challenge dataset, Medical Physics 2023",
        root_names=("SynthRAD2023", "synthRAD2023", "synthrad2023"),
        counts="training: 2 tasks x 2 regions x 180 patients",
    )

    @classmethod
    def find_root(cls, sources_root: Path) -> Path | None:
        found = super().find_root(sources_root)
        if found is None and any((source_path(sources_root) / task / region).is_dir()
                                 for task in TASKS for region in REGIONS):
            return source_path(sources_root)  # Task1/ and Task2/ unpacked straight into the sources root
        return found

    def _window(self) -> tuple[float, float]:
        window = self.options.get("ct_window", "wide")
        if isinstance(window, str):
            if window not in CT_WINDOWS:
                raise SourceError(f"synthrad2023: ct_window {window!r} must be one of {sorted(CT_WINDOWS)} "
                                  "or [low, high]")
            return CT_WINDOWS[window]
        low, high = (float(v) for v in window)
        if high <= low:
            raise SourceError(f"synthrad2023: ct_window {window!r} needs low < high")
        return low, high

    def work_units(self) -> list[WorkUnit]:
        self._window()  # a bad recipe fails on the driver
        if not any((self.root / task).is_dir() for task in TASKS):
            raise SourceError(f"{self.root}: no Task1/ or Task2/ folder; point the root at the unpacked SynthRAD2023")
        units = []
        for task in TASKS:
            for region in REGIONS:
                folder = self.root / task / region
                if not folder.is_dir():
                    continue
                split = _split_of(self.root.name)
                if not self.wants_split(split):
                    continue
                for entry in sorted(scan(folder), key=lambda e: e.name):
                    if entry.is_dir() and PATIENT.match(entry.name):
                        units.append(WorkUnit(self.name, f"{self.name}/{split}/{entry.name}", split,
                                              ({"task": task, "region": region, "patient": entry.name},)))
        return units

    def iter_records(self, unit: WorkUnit) -> Iterator[Record | Rejection]:
        item, split = unit.items[0], unit.split
        src, modality, words = TASKS[item["task"]]
        rel = f"{item['task']}/{item['region']}/{item['patient']}"
        pair_id = f"{self.name}/{split}/{item['patient']}/{src}-ct"
        folder = self.root / rel
        files = {name: _find(folder, name) for name in (src, "ct", "mask")}
        paths = [f"{rel}/{files[name]}" for name in (src, "ct") if files[name]]
        missing = [name for name in (src, "ct", "mask") if files[name] is None]
        if missing:
            yield self._reject(pair_id, split, "missing_volume", f"no {'/'.join(missing)} in {rel}", paths)
            return
        mask_path = f"{rel}/{files['mask']}"
        try:
            source, target = (load_nifti(folder / files[name], source_path=f"{rel}/{files[name]}")
                              for name in (src, "ct"))
            mask = load_nifti(folder / files["mask"], source_path=mask_path)
        except ImageDecodeError as err:
            yield self._reject(pair_id, split, err.reason, err.detail, paths)
            return
        if any(v.shape != target.shape or not np.allclose(v.affine, target.affine, atol=1e-3) for v in (source, mask)):
            yield self._reject(pair_id, split, "pair_grid_mismatch",
                               f"{src} {source.shape}, ct {target.shape}, mask {mask.shape}, or their affines differ",
                               paths)
            return
        window = self._window()
        # Scale whole volumes once, so all slices of a volume share one intensity mapping.
        source_pixels = mr_to_uint16(source.data) if src == "mr" else hu_to_uint16(source.data, window)
        target_pixels = hu_to_uint16(target.data, window)
        body = mask.data > 0.5
        threshold = float(self.options.get("min_mask_fraction", 0.05))
        stride = max(1, int(self.options.get("slice_stride", 1)))
        centre = PATIENT.match(item["patient"])["centre"]
        for k in range(0, target.shape[2], stride):
            record_id = f"{pair_id}/{k:03d}"
            fraction = float(np.count_nonzero(body[:, :, k])) / body[:, :, k].size
            if fraction < threshold:
                yield self._reject(record_id, split, "outside_mask", f"mask covers {fraction:.3f} < {threshold}",
                                   paths)
                continue
            images = [image_from_array(np.ascontiguousarray(axial_slice(volume, k)), source_path=path, bit_depth=16,
                                       slice_index=k, slice_axis="axial")
                      for volume, path in zip((source_pixels, target_pixels), paths)]
            instruction = self.pick(record_id, INSTRUCTIONS, "instruction").format(src=words, region=item["region"])
            yield Record(
                id=record_id,
                source=self.name,
                split=split,
                modality="ct",
                task_family="interleaved",
                main_task_type="cross_modal_synthesis",
                sub_task_type=f"{src}_to_ct",
                message=[{"from": "human", "value": f"{IMAGE_TOKEN}\n{instruction}"},
                         {"from": "gpt", "value": self.pick(record_id, RESPONSES, "response")}],
                input_images=images[:1],
                output_images=images[1:],
                provenance=[*paths, mask_path],
                meta={"patient": item["patient"], "task": int(item["task"][-1]), "region": item["region"],
                      "centre": centre, "input_modality": modality, "ct_window": list(window),
                      "mask_fraction": round(fraction, 4),
                      "orientation": "".join(str(c) for c in target.original_axcodes)},
            )

    def _reject(self, record_id, split, reason, detail, paths) -> Rejection:
        return self.reject(record_id, split, reason, detail, modality="ct", task_family="interleaved",
                           provenance=list(paths))
