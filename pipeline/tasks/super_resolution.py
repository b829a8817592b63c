"""Super-resolution (4x): a degraded slice -> the original high-resolution slice (IXI, fastMRI).

The input is always made here from the output, by `degrade(hr, params)`, and `params` is written into
`meta.task_build.params`, so anyone can rebuild the input from the output image and the manifest row:

1. optional Gaussian blur (`blur_sigma`, HR pixels; separable kernel truncated at 3 sigma, reflected edges);
2. downsampling by `factor`: "bicubic" (Pillow, float32) to floor(size / factor), or "kspace" (MR: keep the
   central floor(size / factor) frequencies of the 2D FFT, i.e. truncated k-space, magnitude image);
3. optional Gaussian noise (`noise_std` x full scale) on the low-resolution image, from
   `numpy.random.default_rng(seed)`, where `seed` is derived from the recipe seed and the record id;
4. with `upsample` (default), bicubic back to the HR size; then rounded and clipped to the HR bit depth.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np
from PIL import Image as PILImage

from manifests.records import Record
from pipeline.tasks.base import Problem, TaskBuilder
from pipeline.tasks.templates import seed_for
from manifests.images import image_from_array, load_pixels

ANATOMY_WORDS = {"brain": "brain MRI slice", "knee": "knee MRI slice"}


def _gaussian_blur(values: np.ndarray, sigma: float) -> np.ndarray:
    radius = max(1, int(np.ceil(3 * sigma)))
    offsets = np.arange(-radius, radius + 1, dtype=np.float64)
    kernel = np.exp(-0.5 * (offsets / sigma) ** 2)
    kernel /= kernel.sum()
    out = values
    for axis in (0, 1):
        padded = np.pad(out, [(radius, radius) if a == axis else (0, 0) for a in (0, 1)], mode="reflect")
        out = np.apply_along_axis(lambda line: np.convolve(line, kernel, mode="valid"), axis, padded)
    return out.astype(np.float32)


def _resize(values: np.ndarray, width: int, height: int) -> np.ndarray:
    return np.asarray(PILImage.fromarray(values.astype(np.float32)).resize((width, height),
                                                                           PILImage.Resampling.BICUBIC))


def _kspace_truncate(values: np.ndarray, height: int, width: int) -> np.ndarray:
    spectrum = np.fft.fftshift(np.fft.fft2(values))
    top, left = (values.shape[0] - height) // 2, (values.shape[1] - width) // 2
    centre = spectrum[top : top + height, left : left + width]
    scale = (height * width) / (values.shape[0] * values.shape[1])  # keeps the mean intensity
    return (np.abs(np.fft.ifft2(np.fft.ifftshift(centre))) * scale).astype(np.float32)


def degrade(hr: np.ndarray, params: dict[str, Any]) -> np.ndarray:
    """The low-resolution input of a super-resolution pair (2D uint8/uint16 in, same dtype out)."""
    if hr.ndim != 2:
        raise ValueError(f"super-resolution degrades 2D slices, got shape {hr.shape}")
    full_scale = float(np.iinfo(hr.dtype).max)
    height, width = hr.shape
    factor = int(params["factor"])
    small_h, small_w = max(1, height // factor), max(1, width // factor)
    values = hr.astype(np.float32)
    if params.get("blur_sigma"):
        values = _gaussian_blur(values, float(params["blur_sigma"]))
    if params["method"] == "kspace":
        values = _kspace_truncate(values, small_h, small_w)
    else:
        values = _resize(values, small_w, small_h)
    if params.get("noise_std"):
        rng = np.random.default_rng(int(params["seed"]))
        values = values + rng.normal(0.0, float(params["noise_std"]) * full_scale, values.shape).astype(np.float32)
    if params.get("upsample", True):
        values = _resize(values, width, height)
    return np.clip(np.round(values), 0, full_scale).astype(hr.dtype)


class SuperResolution(TaskBuilder):
    task = "super_resolution"
    slice_policy = True

    def construct(self, record: Record) -> dict[str, Any] | Problem:
        target = record.output_images[0]
        pixels = load_pixels(target)
        if pixels.ndim != 2:
            return "task_unsupported_image", f"super-resolution needs a greyscale slice, got shape {pixels.shape}"
        params = {**dataclasses.asdict(self.settings.degradation),
                  "seed": seed_for(self.settings.seed, record.id, "degradation"),
                  "hr_size": [target.height, target.width], "bit_depth": target.bit_depth,
                  "slice_index": target.slice_index, "sample_name": record.meta.get("sample_name")}
        low = degrade(pixels, params)
        record.input_images = [image_from_array(low, source_path=target.source_path, bit_depth=target.bit_depth,
                                                slice_index=target.slice_index, slice_axis=target.slice_axis)]
        return params

    def fields(self, record: Record) -> dict[str, str]:
        what = ANATOMY_WORDS.get(str(record.meta.get("anatomy")), "MRI slice")
        return {"what": what, "factor": f"{self.settings.degradation.factor}x",
                "contrast": str(record.meta.get("contrast_name") or "MRI")}
