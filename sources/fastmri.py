"""fastMRI: raw k-space and reference reconstructions of knee and brain MRI (NYU Langone).

Card
- Citation: Zbontar J, Knoll F, Sriram A, et al. "fastMRI: An Open Dataset and Benchmarks for Accelerated
  MRI." arXiv:1811.08839, 2018. Knoll F, et al. Radiology: AI 2(1), 2020.
- URL: https://fastmri.med.nyu.edu (code: github.com/facebookresearch/fastMRI).
- Licence: NYU fastMRI data sharing agreement (research use). Access: registration (DUA).
- Modality: MRI; knee (coronal PD with/without fat suppression) and brain (axial T1, T1 post, T2, FLAIR).
- Counts: knee ~1,500 volumes, brain ~6,970 volumes (all splits).
- Overlaps: fastMRI+ adds bounding boxes to the same volumes; the prostate release is separate.

Layout (tarballs unpacked under one folder; folder names as the tarballs give them)::

    fastMRI/
      singlecoil_train/file1000001.h5        (knee_singlecoil_train.tar.gz)
      multicoil_val/file1000000.h5
      brain_multicoil_train/file_brain_AXT2_200_2000019.h5
      multicoil_test/...   brain_multicoil_challenge/...   (no reconstruction: rejected)

HDF5 content: `kspace`, `reconstruction_rss` (multi-coil target) or `reconstruction_esc` (single-coil
target, float32 (slices, 320, 320)), `ismrmrd_header` (XML, not read), attrs `acquisition`, `max`,
`norm`, `patient_id`. Test/challenge files hold only undersampled k-space and a `mask`.

There is no text in fastMRI, so nothing is captioned: each reconstruction slice becomes one interleaved
4x super-resolution record. Target: the reference slice (reconstruction_rss, else reconstruction_esc),
windowed per volume onto uint16 (0.5-99.5th percentile of non-zero voxels). Input: a documented,
deterministic degradation of the target (no randomness, so no seed is needed): bicubic downsampling by 4
(Pillow, float), then bicubic upsampling back to the target size, so both images share a size and
the input passes the 128 px rule. Slices whose target has less than `min_foreground_fraction` (0.05)
of pixels above 10% of the window are `empty_slice`; files without a reconstruction are
`reconstruction_missing`; unreadable files `hdf5_unreadable`. Needs h5py.
Ids `fastmri/<split>/<file stem>/<slice:03d>`; split from the folder name (train, val, test/challenge).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import h5py
import numpy as np
from PIL import Image as PILImage

from manifests.records import IMAGE_TOKEN, Record, Rejection
from sources.base import DatasetCard, Source, SourceError, WorkUnit
from sources.io.files import name_or_reader, scan
from sources.io.image import image_from_array
from sources.io.nifti import mr_to_uint16

FACTOR = 4
TARGETS = ("reconstruction_rss", "reconstruction_esc")
SPLIT_WORDS = (("challenge", "test"), ("test", "test"), ("val", "validate"), ("train", "train"))
INSTRUCTIONS = (
    "Increase the resolution of this {what} by a factor of 4.",
    "Generate a 4x super-resolved version of this low-resolution {what}.",
    "Reconstruct the high-resolution image of this {what}.",
)
RESPONSES = (
    "Here is the 4x super-resolved MRI image.",
    "The high-resolution version of this MRI slice has been generated.",
)


def split_of(folder: str) -> str:
    lowered = folder.lower()
    return next((split for word, split in SPLIT_WORDS if word in lowered), "unsplit")


def anatomy_of(path: str, acquisition: str | None) -> str | None:
    lowered = path.lower()
    if "brain" in lowered or (acquisition or "").startswith("AX"):
        return "brain"
    if "knee" in lowered or (acquisition or "").startswith("CORPD"):
        return "knee"
    return None


def degrade(pixels: np.ndarray, factor: int = FACTOR) -> np.ndarray:
    """Bicubic down by `factor`, then bicubic up to the original size (uint16 in, uint16 out)."""
    height, width = pixels.shape
    image = PILImage.fromarray(pixels.astype(np.float32))
    small = image.resize((max(1, width // factor), max(1, height // factor)), PILImage.Resampling.BICUBIC)
    back = np.asarray(small.resize((width, height), PILImage.Resampling.BICUBIC))
    return np.clip(np.round(back), 0, 65535).astype(np.uint16)


class Fastmri(Source):
    card = DatasetCard(
        name="fastmri",
        title="fastMRI knee and brain (reference reconstructions as 4x super-resolution pairs)",
        modalities=("mri",),
        tasks=("super_resolution_4x",),
        licence="NYU fastMRI data sharing agreement",
        access="registration",
        url="https://fastmri.med.nyu.edu",
        citation="Zbontar et al., fastMRI: An Open Dataset and Benchmarks for Accelerated MRI, arXiv:1811.08839",
        root_names=("fastMRI", "fastmri"),
        counts="knee ~1,500 and brain ~6,970 volumes",
    )

    def work_units(self) -> list[WorkUnit]:
        files = []
        for folder in [self.root, *(e.path for e in sorted(scan(self.root), key=lambda e: e.name) if e.is_dir())]:
            files.extend(e.path for e in sorted(scan(folder), key=lambda e: e.name)
                         if e.is_file() and e.name.endswith(".h5"))
        if not files:
            raise SourceError(f"{self.root}: no .h5 files here or one folder below; unpack the fastMRI tarballs")
        units = []
        for path in files:
            split = split_of(path.parent.name if path.parent != self.root else "")
            if self.wants_split(split):
                units.append(WorkUnit(self.name, f"{self.name}/{split}/{path.stem}", split, (self.relative(path),)))
        return units

    def iter_records(self, unit: WorkUnit) -> Iterator[Record | Rejection]:
        relative, split = unit.items[0], unit.split
        file_id = f"{self.name}/{split}/{Path(relative).stem}"
        try:
            with name_or_reader(self.root / relative) as file, h5py.File(file, "r") as handle:
                target_name = next((name for name in TARGETS if name in handle), None)
                volume = np.asarray(handle[target_name], dtype=np.float32) if target_name else None
                attrs = {key: handle.attrs[key] for key in ("acquisition", "patient_id") if key in handle.attrs}
        except (OSError, KeyError, ValueError) as err:
            yield self._reject(file_id, split, "hdf5_unreadable", f"{relative}: {err}", relative)
            return
        if volume is None:
            yield self._reject(file_id, split, "reconstruction_missing", f"{relative}: no {' or '.join(TARGETS)}",
                               relative)
            return
        if volume.ndim != 3:
            yield self._reject(file_id, split, "hdf5_unreadable", f"{relative}: {target_name} shape {volume.shape}",
                               relative)
            return
        acquisition = str(attrs["acquisition"]) if "acquisition" in attrs else None
        anatomy = anatomy_of(relative, acquisition)
        scaled = mr_to_uint16(volume)  # one window per volume
        threshold = float(self.options.get("min_foreground_fraction", 0.05))
        what = f"{anatomy} MRI slice" if anatomy else "MRI slice"
        for k in range(volume.shape[0]):
            record_id = f"{file_id}/{k:03d}"
            target = np.ascontiguousarray(scaled[k])
            fraction = float(np.count_nonzero(target > 0.1 * 65535)) / target.size
            if fraction < threshold:
                yield self._reject(record_id, split, "empty_slice", f"foreground {fraction:.3f} < {threshold}",
                                   relative)
                continue
            yield Record(
                id=record_id,
                source=self.name,
                split=split,
                modality="mri",
                task_family="interleaved",
                main_task_type="super_resolution",
                sub_task_type="super_resolution_4x",
                message=[{"from": "human", "value": f"{IMAGE_TOKEN}\n"
                          + self.pick(record_id, INSTRUCTIONS, "instruction").format(what=what)},
                         {"from": "gpt", "value": self.pick(record_id, RESPONSES, "response")}],
                input_images=[image_from_array(degrade(target), source_path=relative, bit_depth=16, slice_index=k)],
                output_images=[image_from_array(target, source_path=relative, bit_depth=16, slice_index=k)],
                provenance=[relative],
                meta={"target": target_name, "acquisition": acquisition, "anatomy": anatomy,
                      "patient_id": str(attrs["patient_id"]) if "patient_id" in attrs else None,
                      "degradation": {"method": "bicubic_down_up", "factor": FACTOR},
                      "sample_name": f"{Path(relative).stem}_{k}"},
            )

    def _reject(self, record_id: str, split: str, reason: str, detail: str, relative: str) -> Rejection:
        return self.reject(record_id, split, reason, detail, modality="mri", task_family="interleaved",
                           provenance=[relative])
