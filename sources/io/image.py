"""Image files as adapters meet them: a path in, an `Image` or a binary mask out.

The codec itself (bytes and arrays to `Image` and back, lossless by default) is the record's, in
`manifests/images.py`; its names are re-exported here because every adapter uses them. A file that
is missing or cannot be decoded raises `ImageDecodeError` with a short reason, which adapters turn
into a rejection.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image as PILImage
from PIL import UnidentifiedImageError

from manifests.images import (ImageDecodeError, decode_bytes, downscale_to_fit, encode_png, image_from_array,
                              load_pixels, normalised_std, pil_to_array, pixel_hash, rescale_to_uint16, shard_bytes)
from manifests.records import Image
from manifests.spans import span
from sources.io.files import open_file

__all__ = ["ImageDecodeError", "decode_binary_mask", "decode_bytes", "decode_file", "downscale_to_fit", "encode_png",
           "image_from_array", "load_pixels", "normalised_std", "pil_to_array", "pixel_hash", "rescale_to_uint16",
           "shard_bytes"]


def decode_file(path: Path, *, source_path: str) -> Image:
    """Decode an image file; a missing or unreadable file raises `ImageDecodeError`."""
    try:
        with span("read"):
            data = path.read_bytes()
    except FileNotFoundError as err:
        raise ImageDecodeError("missing_file", source_path) from err
    except OSError as err:
        raise ImageDecodeError("unreadable_file", f"{source_path}: {err}") from err
    return decode_bytes(data, source_path=source_path)


def decode_binary_mask(path: Path, source_path: str, threshold: int = 127) -> np.ndarray:
    """A mask file (PNG, GIF, TIFF, BMP, even lossy JPEG) as uint8 0/255: grey above `threshold` is foreground."""
    try:
        with open_file(path) as handle, PILImage.open(handle) as img:
            values = np.asarray(img.convert("L"))
    except FileNotFoundError as err:
        raise ImageDecodeError("missing_file", source_path) from err
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as err:
        raise ImageDecodeError("image_undecodable", f"{source_path}: {err}") from err
    return np.where(values > threshold, 255, 0).astype(np.uint8)
