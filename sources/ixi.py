"""IXI: brain MRI of ~600 healthy adults (T1, T2, PD, MRA, DTI) from three London hospitals.

Card
- Citation: IXI dataset, Information eXtraction from Images project (EPSRC GR/S21533/02), Imperial College
  London / Brain Development; https://brain-development.org/ixi-dataset/ (no journal paper to cite).
- URL: https://brain-development.org/ixi-dataset/
- Licence: CC BY-SA 3.0. Access: open download.
- Modality: MRI. Sites: Guys (Philips 1.5T), HH (Hammersmith, Philips 3T), IOP (GE 1.5T).
- Counts: ~580 subjects with T1, T2 and PD (each tarball holds one volume per subject; not every
  subject has every contrast).
- Overlaps: none known; often re-used (e.g. re-registered copies in synthesis benchmarks): identical
  slices from such copies meet in the exact-duplicate filter, not here.

Layout: the tarballs are flat (no per-subject folders); users unpack them into one folder or into one
folder per tarball. Both are read (files directly under the root and one level below)::

    IXI/ IXI002-Guys-0828-T1.nii.gz  IXI002-Guys-0828-T2.nii.gz  IXI002-Guys-0828-PD.nii.gz ...
    IXI/IXI-T1/IXI002-Guys-0828-T1.nii.gz ...   IXI.xls (demographics: not read)

Name = `IXI<3-digit id>-<site>-<4 digits>-<contrast>.nii.gz`; the volume id is the name without the
contrast. MRA and DTI are not read. Quirk: T1 was acquired sagittally (~256x256x150) and T2/PD axially
(~256x256x130) [M: grid sizes from one secondary description], so raw T1 and T2 grids differ: a T1<->T2
pair is then a per-subject `pair_grid_mismatch` rejection (pairing by subject id alone would need
registration, which this adapter does not do). T2 and PD come from one dual-echo acquisition and
share a grid [M], so T2<->PD pairs flow. Option `pairs` (default [["T1", "T2"], ["T2", "PD"]]).
Option `resample_t1: true` (default false) pairs T1 anyway: the raw T1 volume is resampled onto its
partner's grid through the two affines (world mm; trilinear, 0 outside the T1 field of view; no
registration: IXI's contrasts of one session share the scanner frame [M]), then windowed like any volume;
`meta.resampled` records it. Out-of-view slices fall to `empty_slice`.

Output, per pair and axial slice (canonical RAS through the affine, radiological display order, see
sources/io/nifti.py): an interleaved cross-contrast synthesis record, both slices 16-bit, each volume
windowed once (0.5-99.5th percentile of non-zero voxels). IXI is not skull-stripped and its background
is noise, not zero: a slice is `empty_slice` when less than `min_foreground_fraction` (0.05) of either
slice is above `foreground_level` (0.1) of the window. `meta` names the volume id, subject, site and both
contrasts, and each image carries its slice index, which is what a later super-resolution builder needs.

Option `super_resolution` (default []: none; e.g. ["T1", "T2"]): also one 4x super-resolution record per
listed contrast and non-empty axial slice, id `ixi/unsplit/<volume>/sr-<contrast>/<slice:03d>`, sample
name as the paper's (`IXI073-Guys-0755-T2_0`: volume id, contrast, slice index). The output is the slice;
the input is fastMRI's deterministic bicubic 4x down-up (sources/fastmri.degrade) until the task builder
(pipeline/tasks/super_resolution) remakes it with the recipe's seeded degradation.
Split "unsplit" (IXI has no official split). A subject lacking a contrast is `missing_volume` per pair.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from manifests.records import IMAGE_TOKEN, Record, Rejection
from sources.base import DatasetCard, Source, SourceError, WorkUnit
from sources.fastmri import degrade
from sources.io.files import scan
from sources.io.image import ImageDecodeError, image_from_array
from sources.io.nifti import NiftiVolume, axial_slice, load_nifti, mr_to_uint16

NAME = re.compile(r"^(?P<volume>(?P<subject>IXI\d{3})-(?P<site>[A-Za-z]+)-\d{4})-(?P<contrast>T1|T2|PD)\.nii(?:\.gz)?$")
CONTRASTS = {"T1": "T1-weighted", "T2": "T2-weighted", "PD": "proton density-weighted"}
INSTRUCTIONS = (
    "Using the provided {src} MRI scan, produce a {dst} image.",
    "Generate the corresponding {dst} image from this {src} brain MRI slice.",
    "Synthesize a {dst} MRI of the same slice from the given {src} scan.",
)
RESPONSES = (
    "Here is the synthesized {dst} image of the same slice.",
    "The {dst} version of this MRI slice has been generated.",
)


def resample_onto(moving: NiftiVolume, fixed: NiftiVolume) -> np.ndarray:
    """`moving`'s data on `fixed`'s voxel grid (float32): trilinear through both affines, 0 outside its view.

    Worked one axial plane at a time, so memory stays at a few planes of the target grid.
    """
    transform = np.linalg.inv(moving.affine) @ fixed.affine  # fixed voxel -> world -> moving voxel
    data = np.asarray(moving.data, dtype=np.float32)
    limits = np.array(data.shape, dtype=np.float64)[:, None] - 1
    ii, jj = np.meshgrid(np.arange(fixed.shape[0]), np.arange(fixed.shape[1]), indexing="ij")
    out = np.zeros(fixed.shape, np.float32)
    for k in range(fixed.shape[2]):
        points = np.stack([ii.ravel(), jj.ravel(), np.full(ii.size, k), np.ones(ii.size)]).astype(np.float64)
        coords = (transform @ points)[:3]
        inside = np.all((coords >= -1e-6) & (coords <= limits + 1e-6), axis=0)
        coords = np.clip(coords, 0, limits)
        base = np.minimum(np.floor(coords), np.maximum(limits - 1, 0)).astype(np.int64)  # last cell interpolates up
        frac = coords - base
        values = np.zeros(ii.size, np.float64)
        for corner in itertools.product((0, 1), repeat=3):
            step = np.array(corner)[:, None]
            index = np.minimum(base + step, limits.astype(np.int64))
            weight = np.prod(np.where(step == 1, frac, 1 - frac), axis=0)
            values += weight * data[index[0], index[1], index[2]]
        out[:, :, k] = np.where(inside, values, 0).reshape(ii.shape)
    return out


class Ixi(Source):
    card = DatasetCard(
        name="ixi",
        title="IXI: brain MRI of healthy adults (T1, T2, PD)",
        modalities=("mri",),
        tasks=("cross_modal_synthesis",),
        licence="CC BY-SA 3.0",
        access="open",
        url="https://brain-development.org/ixi-dataset/",
        citation="IXI dataset, Imperial College London, https://brain-development.org/ixi-dataset/",
        root_names=("IXI", "ixi"),
        counts="~580 subjects with T1, T2 and PD volumes",
    )

    def _pairs(self) -> list[tuple[str, str]]:
        default = [["T1", "T2"], ["T2", "PD"]]
        pairs = [tuple(str(n).upper() for n in pair) for pair in self.options.get("pairs", default)]
        for pair in pairs:
            if len(pair) != 2 or pair[0] == pair[1] or any(n not in CONTRASTS for n in pair):
                raise SourceError(f"ixi: pair {pair!r} must name two different contrasts of {sorted(CONTRASTS)}")
        return pairs

    def _sr_contrasts(self) -> list[str]:
        contrasts = [str(name).upper() for name in self.options.get("super_resolution", [])]
        unknown = sorted(set(contrasts) - set(CONTRASTS))
        if unknown:
            raise SourceError(f"ixi: super_resolution names {unknown}; known: {sorted(CONTRASTS)}")
        return contrasts

    def work_units(self) -> list[WorkUnit]:
        self._pairs()
        self._sr_contrasts()
        volumes: dict[str, dict[str, str]] = {}
        for folder in [self.root, *(e.path for e in sorted(scan(self.root), key=lambda e: e.name) if e.is_dir())]:
            for entry in sorted(scan(folder), key=lambda e: e.name):
                match = NAME.match(entry.name)
                if match and entry.is_file():
                    files = volumes.setdefault(match["volume"], {})
                    files.setdefault(match["contrast"], self.relative(entry.path))
        if not volumes:
            raise SourceError(f"{self.root}: no IXI<id>-<site>-<nnnn>-<T1|T2|PD>.nii.gz files; "
                              "unpack the tarballs there")
        if not self.wants_split("unsplit"):
            return []
        return [WorkUnit(self.name, f"{self.name}/unsplit/{volume}", "unsplit", ((volume, files),))
                for volume, files in sorted(volumes.items())]

    def iter_records(self, unit: WorkUnit) -> Iterator[Record | Rejection]:
        (volume_id, files), split = unit.items[0], unit.split
        loaded: dict[str, NiftiVolume | ImageDecodeError] = {}
        for src, dst in self._pairs():
            pair_id = f"{self.name}/{split}/{volume_id}/{src}-{dst}"
            paths = [files[name] for name in (src, dst) if name in files]
            missing = [name for name in (src, dst) if name not in files]
            if missing:
                yield self._reject(pair_id, split, "missing_volume", f"no {'/'.join(missing)} for {volume_id}", paths)
                continue
            for name in (src, dst):
                if name not in loaded:
                    loaded[name] = self._load(files[name])
            source, target = loaded[src], loaded[dst]
            failed = next((v for v in (source, target) if isinstance(v, ImageDecodeError)), None)
            if failed is not None:
                yield self._reject(pair_id, split, failed.reason, failed.detail, paths)
            elif self._resamples(src, dst, source, target):
                moving, fixed = (src, dst) if src == "T1" else (dst, src)
                key = f"T1@{fixed}"
                if key not in loaded:
                    loaded[key] = self._load(files["T1"], onto=loaded[fixed])
                resampled = loaded[key]
                if isinstance(resampled, ImageDecodeError):
                    yield self._reject(pair_id, split, resampled.reason, resampled.detail, paths)
                    continue
                pair = (resampled, target) if src == "T1" else (source, resampled)
                yield from self._slices(volume_id, split, pair_id, (src, dst), pair, paths,
                                        {"moving": moving, "onto": fixed, "method": "trilinear", "fill": 0})
            elif source.shape != target.shape or not np.allclose(source.affine, target.affine, atol=1e-3):
                yield self._reject(pair_id, split, "pair_grid_mismatch",
                                   f"{src} {source.shape} vs {dst} {target.shape}, or their affines differ", paths)
            else:
                yield from self._slices(volume_id, split, pair_id, (src, dst), (source, target), paths)
        for contrast in self._sr_contrasts():
            sr_id = f"{self.name}/{split}/{volume_id}/sr-{contrast}"
            if contrast not in files:
                yield self._reject(sr_id, split, "missing_volume", f"no {contrast} for {volume_id}", [])
                continue
            if contrast not in loaded:
                loaded[contrast] = self._load(files[contrast])
            volume = loaded[contrast]
            if isinstance(volume, ImageDecodeError):
                yield self._reject(sr_id, split, volume.reason, volume.detail, [files[contrast]])
            else:
                yield from self._sr_slices(volume_id, split, sr_id, contrast, volume, files[contrast])

    def _resamples(self, src: str, dst: str, source, target) -> bool:
        """Whether this pair is T1 on another grid, to be resampled (option `resample_t1`)."""
        return (bool(self.options.get("resample_t1", False)) and "T1" in (src, dst) and src != dst
                and (source.shape != target.shape or not np.allclose(source.affine, target.affine, atol=1e-3)))

    def _load(self, relative: str, onto: NiftiVolume | None = None) -> NiftiVolume | ImageDecodeError:
        try:
            volume = load_nifti(self.root / relative, source_path=relative)
        except ImageDecodeError as err:
            return err
        if onto is not None:  # resample the raw intensities, then window on the new grid
            volume = NiftiVolume(resample_onto(volume, onto), onto.affine, onto.zooms, volume.original_axcodes)
        return NiftiVolume(mr_to_uint16(volume.data), volume.affine, volume.zooms, volume.original_axcodes)

    def _slices(self, volume_id, split, pair_id, names, volumes, paths,
                resampled: dict | None = None) -> Iterator[Record | Rejection]:
        (src, dst), (source, target) = names, volumes
        match = NAME.match(Path(paths[0]).name)
        threshold = float(self.options.get("min_foreground_fraction", 0.05))
        level = float(self.options.get("foreground_level", 0.1)) * 65535
        stride = max(1, int(self.options.get("slice_stride", 1)))
        for k in range(0, source.shape[2], stride):
            record_id = f"{pair_id}/{k:03d}"
            images = [np.ascontiguousarray(axial_slice(volume.data, k)) for volume in (source, target)]
            fractions = [float(np.count_nonzero(image > level)) / image.size for image in images]
            if min(fractions) < threshold:
                yield self._reject(record_id, split, "empty_slice",
                                   f"foreground {src}={fractions[0]:.3f} {dst}={fractions[1]:.3f} < {threshold}", paths)
                continue
            src_text, dst_text = CONTRASTS[src], CONTRASTS[dst]
            yield Record(
                id=record_id,
                source=self.name,
                split=split,
                modality="mri",
                task_family="interleaved",
                main_task_type="cross_modal_synthesis",
                sub_task_type=f"mri_{src.lower()}_to_{dst.lower()}",
                message=[{"from": "human", "value": f"{IMAGE_TOKEN}\n"
                          + self.pick(record_id, INSTRUCTIONS, "instruction").format(src=src_text, dst=dst_text)},
                         {"from": "gpt", "value": self.pick(record_id, RESPONSES, "response").format(dst=dst_text)}],
                input_images=[image_from_array(images[0], source_path=paths[0], bit_depth=16, slice_index=k,
                                               slice_axis="axial")],
                output_images=[image_from_array(images[1], source_path=paths[1], bit_depth=16, slice_index=k,
                                                slice_axis="axial")],
                provenance=list(paths),
                meta={"volume_id": volume_id, "subject": match["subject"], "site": match["site"],
                      "source_contrast": src, "target_contrast": dst,
                      "orientation": "".join(str(c) for c in source.original_axcodes),
                      **({"resampled": resampled} if resampled else {})},
            )

    def _sr_slices(self, volume_id, split, sr_id, contrast, volume, path) -> Iterator[Record | Rejection]:
        match = NAME.match(Path(path).name)
        threshold = float(self.options.get("min_foreground_fraction", 0.05))
        level = float(self.options.get("foreground_level", 0.1)) * 65535
        stride = max(1, int(self.options.get("slice_stride", 1)))
        for k in range(0, volume.shape[2], stride):
            record_id = f"{sr_id}/{k:03d}"
            target = np.ascontiguousarray(axial_slice(volume.data, k))
            fraction = float(np.count_nonzero(target > level)) / target.size
            if fraction < threshold:
                yield self._reject(record_id, split, "empty_slice", f"foreground {fraction:.3f} < {threshold}", [path])
                continue
            what = f"{CONTRASTS[contrast]} brain MRI slice"
            yield Record(
                id=record_id, source=self.name, split=split, modality="mri", task_family="interleaved",
                main_task_type="super_resolution", sub_task_type="super_resolution_4x",
                message=[{"from": "human", "value": f"{IMAGE_TOKEN}\nIncrease the resolution of this {what} by 4x."},
                         {"from": "gpt", "value": "Here is the 4x super-resolved MRI image."}],
                input_images=[image_from_array(degrade(target), source_path=path, bit_depth=16, slice_index=k,
                                               slice_axis="axial")],
                output_images=[image_from_array(target, source_path=path, bit_depth=16, slice_index=k,
                                                slice_axis="axial")],
                provenance=[path],
                meta={"volume_id": volume_id, "subject": match["subject"], "site": match["site"],
                      "contrast": contrast, "contrast_name": CONTRASTS[contrast], "anatomy": "brain",
                      "sample_name": f"{volume_id}-{contrast}_{k}",
                      "orientation": "".join(str(c) for c in volume.original_axcodes)},
            )

    def _reject(self, record_id: str, split: str, reason: str, detail: str, paths: list[str]) -> Rejection:
        return self.reject(record_id, split, reason, detail, modality="mri", task_family="interleaved",
                           provenance=list(paths))
