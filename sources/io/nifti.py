"""Shared NIfTI decoding: a `.nii` / `.nii.gz` file in, a 3D volume in canonical orientation out.

Never trust the stored voxel order: BraTS is stored LPS, IXI partly PIR, SynthRAD varies. Every
volume is reoriented through its affine to the closest canonical RAS+ orientation
(`nibabel.as_closest_canonical`), so for every source

    axis 0: patient left  -> right      axis 1: posterior -> anterior      axis 2: inferior -> superior

and `volume.data[:, :, k]` is always an axial slice. Anything that cannot be read as a 3D NIfTI volume
raises `ImageDecodeError` (`missing_file`, `nifti_unreadable`, `nifti_unsupported_shape`).
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass
from pathlib import Path

import nibabel as nib
import numpy as np
from nibabel.filebasedimages import ImageFileError
from nibabel.orientations import OrientationError
from nibabel.spatialimages import HeaderDataError, ImageDataError

from sources.io.files import local_file, source_path as source_file
from sources.io.image import ImageDecodeError

# What nibabel and numpy raise on a damaged file: bad headers, short reads, broken gzip streams,
# memory maps longer than the file, degenerate or singular affines (LinAlgError is a ValueError).
_READ_ERRORS = (ImageFileError, HeaderDataError, ImageDataError, OrientationError, OSError, EOFError, ValueError,
                zlib.error)
# A header claiming more voxels than this is damaged (or not a scan we slice): refuse before reading.
MAX_VOXELS = 2**29

_NIFTI_CLASSES = (nib.Nifti1Image, nib.Nifti2Image, nib.Nifti1Pair, nib.Nifti2Pair)


@dataclass(frozen=True)
class NiftiVolume:
    """A 3D volume in canonical RAS+ voxel order, with the geometry needed to compare volumes."""

    data: np.ndarray  # float32 by default; the stored dtype when loaded with dtype=None
    affine: np.ndarray  # 4x4 voxel -> world (mm) of `data`, i.e. the canonical affine
    zooms: tuple[float, float, float]  # voxel size in mm along the canonical axes
    original_axcodes: tuple[str | None, ...]  # orientation as stored, e.g. ("L", "P", "S")

    @property
    def shape(self) -> tuple[int, ...]:
        return self.data.shape


def load_nifti(path: Path, *, source_path: str = "", dtype: str | None = "float32") -> NiftiVolume:
    """Load a 3D NIfTI volume, reoriented to canonical RAS+.

    `dtype="float32"` applies the header's scaling and returns float32; `dtype=None` keeps the
    stored dtype (use it for label maps). A trailing singleton axis (x, y, z, 1) is dropped; a real
    4D series is refused rather than silently reduced to its first volume.
    """
    path = source_file(path)
    where = source_path or str(path)
    if not path.is_file():
        raise ImageDecodeError("missing_file", where)
    with local_file(path) as name:  # nibabel opens names: one download into a scratch file on object storage
        data, affine, zooms, original_axcodes = _read_volume(Path(name), where, dtype)
    return NiftiVolume(data=data, affine=affine, zooms=zooms, original_axcodes=original_axcodes)


def _read_volume(path: Path, where: str, dtype: str | None) -> tuple[np.ndarray, np.ndarray, tuple, tuple]:
    try:
        img = _open_nifti(path, where)
        shape = tuple(int(n) for n in img.shape)
        while len(shape) > 3 and shape[-1] == 1:
            shape = shape[:-1]
        if len(shape) != 3:
            raise ImageDecodeError("nifti_unsupported_shape", f"{where}: shape {tuple(img.shape)}, expected 3D")
        if int(np.prod(shape, dtype=np.int64)) > MAX_VOXELS:
            raise ImageDecodeError("nifti_unsupported_shape", f"{where}: shape {shape} is implausibly large")
        if len(img.shape) > 3:
            img = img.slicer[(slice(None),) * 3 + (0,) * (len(img.shape) - 3)]
        original_axcodes = tuple(nib.aff2axcodes(img.affine))
        canonical = nib.as_closest_canonical(img)
        if dtype is None:
            data = np.array(canonical.dataobj)
        else:
            data = canonical.get_fdata(dtype=np.dtype(dtype))
        zooms = tuple(float(z) for z in canonical.header.get_zooms()[:3])
        affine = np.asarray(canonical.affine, dtype=np.float64)
    except ImageDecodeError:
        raise  # already tagged above (it is a ValueError, so it must pass before the next clause)
    except _READ_ERRORS as err:
        raise ImageDecodeError("nifti_unreadable", f"{where}: {type(err).__name__}: {err}") from err
    return data, affine, zooms, original_axcodes


def _open_nifti(path: Path, where: str) -> nib.Nifti1Pair:
    """Open a file only as NIfTI-1/2 (sniffing the header), never as another format nibabel knows:
    `nibabel.load` would try PAR/REC, MINC (needs h5py), CIFTI... and raise their own errors."""
    sniff = None
    for klass in _NIFTI_CLASSES:
        is_nifti, sniff = klass.path_maybe_image(str(path), sniff)
        if is_nifti:
            return klass.from_filename(str(path), mmap=False)  # no memmap: truncation fails here, not later
    raise ImageDecodeError("nifti_unreadable", f"{where}: not a NIfTI-1/NIfTI-2 file")


def axial_slice(volume: np.ndarray, k: int, convention: str = "radiological") -> np.ndarray:
    """Axial slice `k` of a canonical (RAS+) volume, as a 2D image in display order.

    Rows run anterior (top) -> posterior; columns follow the radiological convention of clinical
    viewers: the patient's right on the image's left. `convention="neurological"` puts the patient's
    left on the image's left instead. In array terms, with S = volume[:, :, k] indexed [x, y]:
    neurological = rot90(S) (S transposed, then rows reversed); radiological = that, columns reversed.
    The result is a view; copy it before writing into it.
    """
    if volume.ndim != 3:
        raise ValueError(f"expected a 3D volume, got shape {volume.shape}")
    image = np.rot90(volume[:, :, k])  # [x, y] -> [row = anterior..posterior, col = left..right]
    if convention == "radiological":
        return image[:, ::-1]
    if convention == "neurological":
        return image
    raise ValueError(f"convention must be 'radiological' or 'neurological', not {convention!r}")


def mr_to_uint16(values: np.ndarray, low_pct: float = 0.5, high_pct: float = 99.5) -> np.ndarray:
    """Percentile-window MR intensities onto uint16; zero stays 0 (background).

    The window [p_low, p_high] is taken over the non-zero voxels of `values`: pass the whole
    VOLUME, then slice, so that all slices of one volume share one window and stay comparable.
    Non-zero voxels map monotonically onto 1..65535 (clipped at the window), so a foreground voxel
    never becomes background and foreground fractions survive scaling. NaN counts as background.
    """
    values = np.nan_to_num(np.asarray(values, dtype=np.float32), nan=0.0, posinf=0.0, neginf=0.0)
    foreground = values != 0
    out = np.zeros(values.shape, dtype=np.uint16)
    if not foreground.any():
        return out
    low, high = np.percentile(values[foreground], [low_pct, high_pct])
    if high <= low:  # a constant foreground: show it at full intensity
        out[foreground] = 65535
        return out
    scaled = (np.clip(values[foreground], low, high) - low) / (high - low)
    out[foreground] = 1 + np.round(scaled * 65534.0).astype(np.uint16)
    return out
