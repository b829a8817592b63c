"""BraTS (Brain Tumor Segmentation challenge) 2018-2021 and 2023+: co-registered multi-contrast brain MRI.

Card
- Citation: Menze BH et al. "The Multimodal Brain Tumor Image Segmentation Benchmark (BRATS)."
  IEEE TMI 34(10), 2015. Baid U et al. "The RSNA-ASNR-MICCAI BraTS 2021 Benchmark on Brain Tumor
  Segmentation and Radiogenomic Classification." arXiv:2107.02314, 2021. BraTS 2023 task papers:
  Kazerooni et al. (pediatrics, arXiv:2305.17033), LaBella et al. (meningioma, arXiv:2305.07642),
  Moawad et al. (metastases, arXiv:2306.00838), Adewole et al. (SSA, arXiv:2305.19369) [arXiv ids
  from memory: check]; the 2023 glioma task reuses the 2021 cohort (cite Baid 2021).
- URL: https://www.synapse.org/brats (one Synapse project per year; BraTS 2021 also on Kaggle).
- Licence: challenge data terms accepted at registration; BraTS 2021+ stated as CC BY-NC [uncertain:
  not verified per year, check the Synapse page of the year you downloaded]. Access: Synapse registration.
- Modality: MRI, four contrasts per case (T1, T1-Gd, T2, T2-FLAIR), skull-stripped, co-registered
  to SRI24, 1 mm isotropic, 240x240x155; tumour labels in the training data only.
- Counts: 2021 training 1,251 cases; UniMed-5M uses BraTS 2023 T2<->FLAIR, 52K slice pairs.
- Overlaps: BraTS 2023 GLI training is the 2021 training cohort renamed (1,251 cases) and most
  2018-2020 cases recur in 2021 [uncertain whether voxel-identical]; identical slices from two
  downloads meet in the exact-duplicate filter, not here.

Layouts handled (any of them, side by side)::

    RSNA_ASNR_MICCAI_BraTS2021_TrainingData_16July2021/BraTS2021_00000/BraTS2021_00000_{flair,t1,t1ce,t2,seg}.nii.gz
    MICCAI_BraTS_2018_Data_Training/{HGG,LGG}/Brats18_2013_2_1/Brats18_2013_2_1_{flair,t1,t1ce,t2,seg}.nii.gz
    MICCAI_BraTS2020_TrainingData/BraTS20_Training_001/BraTS20_Training_001_{...}.nii   (.nii also read)
    ASNR-MICCAI-BraTS2023-GLI-Challenge-TrainingData/BraTS-GLI-00000-000/BraTS-GLI-00000-000-{t1n,...,seg}.nii.gz

Root: `find_root(sources_root)` returns `sources_root` itself when it is a BraTS download (case folders
directly inside) or holds one or more BraTS downloads (folders whose name contains
"brats", possibly one level deeper: `BraTS/<download>/`). The adapter then covers every download found,
so a user who unpacks 2021 and 2023 next to each other gets both. Split from the download name
(`...Training...` train, `...Validation...` validate), else from the case name, else "unsplit".

Canonical output: contrast names in the 2023 convention (flair->t2f, t1->t1n, t1ce->t1c, t2->t2w),
labels in the 2023 convention (old 4 = enhancing tumour -> 3). Slices are axial, in radiological display
order (sources/io/nifti.py), each volume windowed once (0.5-99.5th percentile of its non-zero voxels).
Record ids `brats/<split>/<case>/<src>-<dst>/<slice:03d>`; the slice index is in the canonical (RAS)
volume. A case found in two downloads is kept from the first (by name) and rejected in the others.

Prompt segmentation (option `segmentation: [wt, tc, et]`, default none): per axial slice of a case with a
seg file, one interleaved record per tumour region present, in the 2023 label convention: whole tumor
(wt) {1, 2, 3}, tumor core (tc) {1, 3}, enhancing tumor (et) {3}. The input is the slice of
`segmentation_contrast` (default t2f; windowed like the pairs), the output the region's mask on the same
axial slice, 8-bit 0/255. Ids `brats/<split>/<case>/seg-<contrast>/<slice:03d>/<region>`. A slice whose
brain covers less than `min_foreground_fraction` is `empty_slice`, one without tumour label
`slice_without_annotation` (one row per slice), a region under `min_target_pixels` (default 16)
`target_too_small`; a case without seg file is `annotation_missing`, an unreadable one its decoder's reason.
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
from sources.io.nifti import NiftiVolume, axial_slice, load_nifti, mr_to_uint16

OLD_TO_NEW = {"flair": "t2f", "t1": "t1n", "t1ce": "t1c", "t2": "t2w", "seg": "seg"}
CONTRASTS = {  # 2023 name -> how the texts call it
    "t1n": "T1-weighted",
    "t1c": "contrast-enhanced T1-weighted",
    "t2w": "T2-weighted",
    "t2f": "T2-FLAIR",
}
NAMINGS = (("2021", "_", OLD_TO_NEW), ("2023", "-", {name: name for name in (*CONTRASTS, "seg")}))
NIFTI_SUFFIXES = (".nii.gz", ".nii")
GRADE_FOLDERS = ("HGG", "LGG")  # BraTS 2018/2019 split training cases by glioma grade
BRATS_FOLDER = re.compile(r"brats", re.IGNORECASE)
OLD_ENHANCING, NEW_ENHANCING = 4, 3
REGIONS = {  # option code -> (target name in the texts, 2023 label values)
    "wt": ("whole tumor", (1, 2, 3)),
    "tc": ("tumor core", (1, 3)),
    "et": ("enhancing tumor", (3,)),
}
SEG_RESPONSES = (
    "Here is the segmentation mask of the {target}.",
    "The {target} has been segmented; the mask is shown below.",
    "Sure, this is the {target} segmentation of the MRI slice.",
)

INSTRUCTIONS = (
    "Using the provided {src} MRI scan, produce a {dst} image.",
    "Generate the corresponding {dst} image from this {src} MRI slice.",
    "Synthesize a {dst} MRI of the same slice from the given {src} scan.",
    "Translate this {src} brain MRI into the {dst} contrast.",
)
RESPONSES = (
    "Done. Presented here is the synthesized {dst} ({code}) MRI.",
    "Here is the synthesized {dst} ({code}) image of the same slice.",
    "The {dst} ({code}) version of this MRI slice has been generated.",
)


def case_files(folder: Path) -> tuple[str, dict[str, str]] | None:
    """(naming, {2023 name: file name}) when `folder` is a BraTS case folder, else None."""
    try:
        names = {entry.name for entry in scan(folder) if entry.is_file()}
    except OSError:
        return None
    for naming, sep, table in NAMINGS:
        found = {}
        for stored, canonical in table.items():
            for suffix in NIFTI_SUFFIXES:
                if f"{folder.name}{sep}{stored}{suffix}" in names:
                    found[canonical] = f"{folder.name}{sep}{stored}{suffix}"
                    break
        if found:
            return naming, found
    return None


def _subfolders(folder: Path) -> list[Path]:
    try:
        return [entry.path for entry in sorted(scan(folder), key=lambda e: e.name) if entry.is_dir()]
    except OSError:
        return []


def iter_cases(download: Path) -> Iterator[tuple[Path, str | None]]:
    """(case folder, grade) for every case folder of a download, including 2018's HGG/LGG level."""
    for child in _subfolders(download):
        if child.name in GRADE_FOLDERS:
            yield from ((case, child.name) for case in _subfolders(child) if case_files(case))
        elif case_files(child):
            yield child, None


def find_downloads(folder: Path, depth: int = 2) -> list[Path]:
    """BraTS downloads at or below `folder`: it, or its BraTS-named subfolders (`depth` levels)."""
    if next(iter_cases(folder), None) is not None:
        return [folder]
    if depth == 0:
        return []
    found = []
    for child in _subfolders(folder):
        if BRATS_FOLDER.search(child.name):
            found.extend(find_downloads(child, depth - 1))
    return found


def split_of(download: str, case: str) -> str:
    for name in (download.lower(), case.lower()):
        for word, split in (("validation", "validate"), ("train", "train"), ("testing", "test")):
            if word in name:
                return split
    return "unsplit"


class Brats(Source):
    card = DatasetCard(
        name="brats",
        title="BraTS 2018-2021 and 2023+ (multi-contrast brain tumour MRI)",
        modalities=("mri",),
        tasks=("cross_modal_synthesis", "prompt_segmentation"),
        licence="challenge data terms; CC BY-NC for 2021+ [uncertain]",
        access="registration",
        url="https://www.synapse.org/brats",
        citation="Menze et al., IEEE TMI 2015; Baid et al., arXiv:2107.02314 (2021); BraTS 2023 challenge papers",
        root_names=(
            "RSNA_ASNR_MICCAI_BraTS2021_TrainingData_16July2021",
            "BraTS2021_TrainingData",
            "ASNR-MICCAI-BraTS2023-GLI-Challenge-TrainingData",
            "ASNR-MICCAI-BraTS2023-GLI-Challenge-ValidationData",
            "MICCAI_BraTS_2018_Data_Training",
            "MICCAI_BraTS2020_TrainingData",
        ),
        counts="2021 training: 1,251 cases x 155 axial slices",
    )

    @classmethod
    def find_root(cls, sources_root: Path) -> Path | None:
        return source_path(sources_root) if find_downloads(source_path(sources_root)) else None

    def _pairs(self) -> list[tuple[str, str]]:
        pairs = []
        for pair in self.options.get("pairs", [["t2w", "t2f"]]):
            names = tuple(OLD_TO_NEW.get(str(name).lower(), str(name).lower()) for name in pair)
            if len(names) != 2 or any(name not in CONTRASTS for name in names):
                raise SourceError(f"brats: pair {pair!r} must name two of {sorted(CONTRASTS)} (or flair/t1/t1ce/t2)")
            pairs.append(names)
        return pairs

    def _regions(self) -> tuple[list[str], str]:
        regions = [str(code).lower() for code in self.options.get("segmentation") or []]
        contrast = OLD_TO_NEW.get(str(self.options.get("segmentation_contrast", "t2f")).lower(),
                                  str(self.options.get("segmentation_contrast", "t2f")).lower())
        if any(code not in REGIONS for code in regions) or contrast not in CONTRASTS:
            raise SourceError(f"brats: segmentation {regions!r} must list codes of {sorted(REGIONS)} and "
                              f"segmentation_contrast {contrast!r} one of {sorted(CONTRASTS)}")
        return regions, contrast

    def work_units(self) -> list[WorkUnit]:
        self._pairs()  # a bad recipe fails on the driver, before any task runs
        self._regions()
        units, seen = [], {}
        for download in find_downloads(self.root):
            for case_dir, grade in iter_cases(download):
                split = split_of(download.name, case_dir.name)
                if not self.wants_split(split):
                    continue
                naming, files = case_files(case_dir)
                folder = self.relative(case_dir)
                item = {"case": case_dir.name, "folder": folder, "naming": naming, "files": files,
                        "download": download.name, "grade": grade}
                key = (split, case_dir.name)
                unit_id = f"brats/{split}/{case_dir.name}"
                if key in seen:  # the same case in two downloads (e.g. renamed copies): keep the first
                    item["duplicate_of"] = seen[key]
                    unit_id += f"@{download.name}"
                seen.setdefault(key, folder)
                units.append(WorkUnit(self.name, unit_id, split, (item,)))
        return units

    def iter_records(self, unit: WorkUnit) -> Iterator[Record | Rejection]:
        item, split = unit.items[0], unit.split
        case_id, files = f"brats/{split}/{item['case']}", item["files"]
        if "duplicate_of" in item:
            yield self._reject(f"{case_id}@{item['download']}", split, "duplicate_case",
                               f"also in {item['duplicate_of']}; kept there", [item["folder"]])
            return
        volumes: dict[str, NiftiVolume | ImageDecodeError] = {}  # each volume loaded once per case
        labels = self._labels(item)
        for src, dst in self._pairs():
            pair_id = f"{case_id}/{src}-{dst}"
            paths = [f"{item['folder']}/{files[name]}" for name in (src, dst) if name in files]
            missing = [name for name in (src, dst) if name not in files]
            if missing:
                yield self._reject(pair_id, split, "missing_volume",
                                   f"no {'/'.join(missing)} file in {item['folder']}", paths)
                continue
            for name in (src, dst):
                if name not in volumes:
                    volumes[name] = self._load(item, name)
            source, target = volumes[src], volumes[dst]
            failed = next((v for v in (source, target) if isinstance(v, ImageDecodeError)), None)
            if failed is not None:
                yield self._reject(pair_id, split, failed.reason, failed.detail, paths)
            elif source.shape != target.shape or not np.allclose(source.affine, target.affine, atol=1e-3):
                yield self._reject(pair_id, split, "pair_grid_mismatch",
                                   f"{src} {source.shape} vs {dst} {target.shape}, or their affines differ", paths)
            else:
                yield from self._slices(item, split, pair_id, (src, dst), (source, target), paths, labels)
        regions, contrast = self._regions()
        if regions:
            yield from self._segmentation(item, split, case_id, regions, contrast, volumes, labels)

    def _segmentation(self, item, split, case_id, regions, contrast, volumes, labels) -> Iterator[Record | Rejection]:
        files, stem = item["files"], f"{case_id}/seg-{contrast}"
        seg_path = f"{item['folder']}/{files['seg']}" if "seg" in files else None
        image_path = f"{item['folder']}/{files[contrast]}" if contrast in files else None
        paths = [path for path in (image_path, seg_path) if path]
        if seg_path is None or image_path is None:
            missing = "seg" if seg_path is None else contrast
            reason = "annotation_missing" if seg_path is None else "missing_volume"
            yield self._reject(stem, split, reason, f"no {missing} file in {item['folder']}", paths)
            return
        if labels is None:
            yield self._reject(stem, split, "annotation_undecodable", f"{seg_path} could not be read", paths)
            return
        if contrast not in volumes:
            volumes[contrast] = self._load(item, contrast)
        volume = volumes[contrast]
        if isinstance(volume, ImageDecodeError):
            yield self._reject(stem, split, volume.reason, volume.detail, paths)
            return
        if labels.shape != volume.shape:
            yield self._reject(stem, split, "mask_size_mismatch", f"{contrast} {volume.shape} vs seg {labels.shape}",
                               paths)
            return
        stride = max(1, int(self.options.get("slice_stride", 1)))
        threshold = float(self.options.get("min_foreground_fraction", 0.05))
        minimum = int(self.options.get("min_target_pixels", 16))
        for k in range(0, volume.shape[2], stride):
            slice_id = f"{stem}/{k:03d}"
            pixels = np.ascontiguousarray(axial_slice(volume.data, k))
            fraction = float(np.count_nonzero(pixels)) / pixels.size
            if fraction < threshold:
                yield self._reject(slice_id, split, "empty_slice",
                                   f"foreground {contrast}={fraction:.3f} < {threshold}", paths)
                continue
            slice_labels = axial_slice(labels, k)
            if not slice_labels.any():
                yield self._reject(slice_id, split, "slice_without_annotation", f"axial slice {k}", paths)
                continue
            for code in regions:
                target, values = REGIONS[code]
                mask = np.isin(slice_labels, values)
                count = int(np.count_nonzero(mask))
                if count == 0:
                    continue  # this slice does not show the region: nothing to ask for
                record_id = f"{slice_id}/{code}"
                if count < minimum:
                    yield self._reject(record_id, split, "target_too_small", f"{count} {target} pixels < {minimum}",
                                       paths)
                    continue
                yield Record(
                    id=record_id, source=self.name, split=split, modality="mri", task_family="interleaved",
                    main_task_type="segmentation", sub_task_type="prompt_segmentation",
                    message=[{"from": "human", "value": f"{IMAGE_TOKEN}\nPlease help me segment the {target}."},
                             {"from": "gpt", "value": self.pick(record_id, SEG_RESPONSES).format(target=target)}],
                    input_images=[image_from_array(pixels, source_path=image_path, bit_depth=16, slice_index=k,
                                                   slice_axis="axial")],
                    output_images=[image_from_array(np.where(mask, 255, 0).astype(np.uint8), source_path=seg_path,
                                                    slice_index=k, slice_axis="axial")],
                    provenance=list(paths),
                    meta={"case": item["case"], "naming": item["naming"], "download": item["download"],
                          "grade": item["grade"], "target": target, "region": code, "label_values": list(values),
                          "contrast": contrast, "slice_index": k,
                          "foreground_fraction": round(count / mask.size, 6)},
                )

    def _reject(self, record_id: str, split: str, reason: str, detail: str, provenance: list[str]) -> Rejection:
        return self.reject(record_id, split, reason, detail, modality="mri", task_family="interleaved",
                           provenance=provenance)

    def _load(self, item: dict, name: str) -> NiftiVolume | ImageDecodeError:
        relative = f"{item['folder']}/{item['files'][name]}"
        try:
            volume = load_nifti(self.root / relative, source_path=relative)
        except ImageDecodeError as err:
            return err
        # Window once per volume, so that all slices of a volume share one intensity scale.
        return NiftiVolume(mr_to_uint16(volume.data), volume.affine, volume.zooms, volume.original_axcodes)

    def _labels(self, item: dict) -> np.ndarray | None:
        """The tumour label map in the 2023 convention, or None (no seg file, or unreadable)."""
        if "seg" not in item["files"]:
            return None
        relative = f"{item['folder']}/{item['files']['seg']}"
        try:
            seg = np.rint(load_nifti(self.root / relative, source_path=relative).data).astype(np.uint8)
        except ImageDecodeError:
            return None  # labels are metadata here; a bad seg file must not cost the case its images
        if item["naming"] == "2021":
            seg[seg == OLD_ENHANCING] = NEW_ENHANCING
        return seg

    def _slices(self, item, split, pair_id, names, volumes, paths, labels) -> Iterator[Record | Rejection]:
        (src, dst), (source, target) = names, volumes
        stride = max(1, int(self.options.get("slice_stride", 1)))
        threshold = float(self.options.get("min_foreground_fraction", 0.05))
        has_labels = labels is not None and labels.shape == source.shape
        for k in range(0, source.shape[2], stride):  # slices off the stride are not items of this recipe
            record_id = f"{pair_id}/{k:03d}"
            images = [axial_slice(volume.data, k) for volume in (source, target)]
            fractions = [float(np.count_nonzero(image)) / image.size for image in images]
            if min(fractions) < threshold:
                yield self._reject(record_id, split, "empty_slice",
                                   f"foreground {src}={fractions[0]:.3f} {dst}={fractions[1]:.3f} < {threshold}", paths)
                continue
            src_text, dst_text = CONTRASTS[src], CONTRASTS[dst]
            instruction = self.pick(record_id, INSTRUCTIONS, "instruction").format(src=src_text, dst=dst_text)
            response = self.pick(record_id, RESPONSES, "response").format(dst=dst_text, code=dst)
            slice_images = [image_from_array(np.ascontiguousarray(image), source_path=path, bit_depth=16,
                                             slice_index=k, slice_axis="axial") for image, path in zip(images, paths)]
            yield Record(
                id=record_id,
                source=self.name,
                split=split,
                modality="mri",
                task_family="interleaved",
                main_task_type="cross_modal_synthesis",
                sub_task_type=f"mri_{src}_to_{dst}",
                message=[{"from": "human", "value": f"{IMAGE_TOKEN}\n{instruction}"},
                         {"from": "gpt", "value": response}],
                input_images=slice_images[:1],
                output_images=slice_images[1:],
                provenance=list(paths),
                meta={"case": item["case"], "naming": item["naming"], "download": item["download"],
                      "grade": item["grade"], "orientation": "".join(str(c) for c in source.original_axcodes),
                      "tumour_labels": sorted(int(v) for v in np.unique(labels[:, :, k]) if v) if has_labels else None},
            )
