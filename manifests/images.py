"""The image codec of a record: bytes and arrays in, `Image` (pixels or passthrough bytes + facts) out, and back.

Lossless by default: 16-bit data stays 16-bit and is written as 16-bit PNG; a JPEG that needs no
change passes into the shard byte for byte. Anything that cannot be decoded raises `ImageDecodeError`
with a short reason, which adapters turn into a rejection.

Each image is decoded no further than its use needs (`DECODER` names the scheme; it is part of every
recipe's processing digest):
- A passthrough JPEG (L or RGB) is never fully decoded to become a sample. Its size and mode come from
  the header; its intensity spread from a reduced, DCT-scaled decode (`Image.draft`) whose long side is
  at least `CHECK_SIDE`; its `pixel_hash` from the coded image itself (`jpeg_hash`: every segment but
  metadata, then the scans), which names the decoded pixels exactly, whatever the metadata. The reduced
  decode still entropy-decodes the whole scan, so a truncated file fails as it did under a full decode.
- Checks and models that look at a reduced image take `reduced_view` (a draft decode at least as large as
  they ask, for a passthrough JPEG).
- Pixels that are written are always a full decode: `load_pixels` (resize, tasks) never drafts.
"""

from __future__ import annotations

import hashlib
import io
from dataclasses import dataclass

import numpy as np
from PIL import Image as PILImage
from PIL import UnidentifiedImageError

from manifests.records import Image
from manifests.spans import span

# The loaders' own limit is 20M pixels; anything far beyond is a bomb or a mistake, refuse to decode it.
PILImage.MAX_IMAGE_PIXELS = 400_000_000

#: How image facts are decoded (module docstring). A change here changes the recipe's processing digest, so
#: staged rows, alignment scores and near-duplicate hashes decoded another way are never mixed with these.
DECODER = "jpeg:header+stream-hash+draft-256;models:draft>=input"
CHECK_SIDE = 256  # the long side the intensity spread and the pHash look at (normalised_std's grid)
PASSTHROUGH_MODES = ("L", "RGB")
_METADATA_MARKERS = frozenset([*range(0xE0, 0xF0), 0xFE])  # APP0-APP15 (JFIF, EXIF, ICC, XMP) and COM


class ImageDecodeError(ValueError):
    """An input image could not be decoded; `reason` is a short machine-readable tag."""

    def __init__(self, reason: str, detail: str = ""):
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason
        self.detail = detail


def pixel_hash(pixels: np.ndarray) -> str:
    digest = hashlib.blake2b(digest_size=16)
    digest.update(f"{pixels.shape}|{pixels.dtype.str}".encode())
    digest.update(np.ascontiguousarray(pixels).data)
    return digest.hexdigest()


def jpeg_hash(data: bytes) -> str:
    """The identity of a JPEG's decoded pixels without decoding them: a hash of every segment but APPn and COM
    (tables, frame header), then the scans up to the end marker. Two files that differ only in metadata
    (EXIF, ICC, comments) or in bytes after the end hash alike; a changed coefficient or table does not."""
    digest = hashlib.sha256(b"jpeg|")  # twice blake2b's speed where the CPU has SHA instructions; 128 bits kept
    view, position, size = memoryview(data), 2, len(data)  # past SOI
    while position + 4 <= size and data[position] == 0xFF:
        marker = data[position + 1]
        if marker == 0xFF:  # fill byte before a marker
            position += 1
            continue
        end = position + 2 + int.from_bytes(data[position + 2:position + 4], "big")
        if marker == 0xDA:  # start of scan: entropy-coded data up to EOI (0xFF is byte-stuffed inside it)
            eoi = data.find(b"\xff\xd9", end)
            digest.update(view[position:size if eoi < 0 else eoi + 2])
            return digest.hexdigest()[:32]
        if marker not in _METADATA_MARKERS:
            digest.update(view[position:end])
        position = end
    digest.update(view[position:])  # not a well-formed JPEG: the rest, as it is
    return digest.hexdigest()[:32]


@dataclass(frozen=True)
class Probe:
    """What an image file's header says, without decoding its pixels."""

    format: str  # Pillow's format name: JPEG, PNG, TIFF, BMP, GIF, ...
    mode: str
    width: int
    height: int

    @property
    def passthrough(self) -> bool:
        """A JPEG whose bytes can go into a shard as they are (the loaders read L and RGB JPEGs)."""
        return self.format == "JPEG" and self.mode in PASSTHROUGH_MODES


def probe_bytes(data: bytes, *, source_path: str = "") -> Probe:
    """Format, mode and size from the header alone (Pillow opens lazily; nothing is decoded): enough to know
    whether the bytes can pass into a shard as they are, and to judge the size rules."""
    try:
        with PILImage.open(io.BytesIO(data)) as img:
            return Probe(img.format or "", img.mode, *img.size)
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as err:
        raise ImageDecodeError("image_undecodable", f"{source_path}: {err}") from err
    except PILImage.DecompressionBombError as err:
        raise ImageDecodeError("image_too_large", f"{source_path}: {err}") from err


def draft_request(width: int, height: int, long_side: int) -> tuple[int, int]:
    """The size to ask `Image.draft` for so the reduced image keeps its long side >= `long_side` (draft keeps
    both sides >= the request)."""
    scale = min(1.0, long_side / max(1, width, height))
    return max(1, int(np.ceil(width * scale))), max(1, int(np.ceil(height * scale)))


def normalised_std(pixels: np.ndarray) -> float:
    """Standard deviation of intensities on a [0, 1] scale (a cheap blankness measure)."""
    step = max(1, max(pixels.shape[:2]) // 256)  # a 256-ish grid is plenty for a spread estimate
    sample = pixels[::step, ::step].astype(np.float32)
    full_scale = 65535.0 if pixels.dtype == np.uint16 else 255.0
    return float(sample.std() / full_scale)


def image_from_array(
    pixels: np.ndarray,
    *,
    source_path: str,
    bit_depth: int | None = None,
    photometric: str | None = None,
    slice_index: int | None = None,
    slice_axis: str | None = None,
    encoded: bytes | None = None,
    file_format: str = "png",
) -> Image:
    """Wrap decoded pixels (uint8 or uint16, HxW or HxWx3) as an `Image` with its facts."""
    if pixels.dtype not in (np.uint8, np.uint16):
        raise ImageDecodeError("unsupported_dtype", str(pixels.dtype))
    if pixels.ndim not in (2, 3) or (pixels.ndim == 3 and pixels.shape[2] != 3):
        raise ImageDecodeError("unsupported_shape", str(pixels.shape))
    height, width = pixels.shape[:2]
    with span("image_facts"):
        digest, spread = pixel_hash(pixels), normalised_std(pixels)
    return Image(
        width=int(width),
        height=int(height),
        bit_depth=bit_depth or (16 if pixels.dtype == np.uint16 else 8),
        channels=1 if pixels.ndim == 2 else 3,
        pixel_hash=digest,
        pixel_std=spread,
        format=file_format,
        pixels=None if encoded is not None else pixels,
        encoded=encoded,
        source_path=source_path,
        photometric=photometric,
        slice_index=slice_index,
        slice_axis=slice_axis,
    )


def pil_to_array(img: PILImage.Image) -> np.ndarray:
    """Pixels of a PIL image as uint8/uint16 L or RGB; alpha is composited onto white (as the loaders do)."""
    if img.mode in ("I;16", "I;16B", "I;16L", "I;16N"):
        return np.asarray(img).astype(np.uint16)
    if img.mode in ("I", "F"):
        values = np.asarray(img)
        if values.min() >= 0 and values.max() <= 65535 and np.all(np.mod(values, 1) == 0):
            return values.astype(np.uint16)
        return rescale_to_uint16(values)
    if img.mode in ("1", "L"):
        return np.asarray(img.convert("L"))
    if img.mode in ("RGBA", "LA", "PA") or (img.mode == "P" and "transparency" in img.info):
        rgba = img.convert("RGBA")
        background = PILImage.new("RGBA", rgba.size, (255, 255, 255, 255))
        return np.asarray(PILImage.alpha_composite(background, rgba).convert("RGB"))
    return np.asarray(img.convert("RGB"))


def rescale_to_uint16(values: np.ndarray) -> np.ndarray:
    """Min-max scale any numeric array onto the full uint16 range (constant arrays become 0)."""
    values = np.asarray(values, dtype=np.float64)
    low, high = float(np.nanmin(values)), float(np.nanmax(values))
    if not np.isfinite(low) or not np.isfinite(high) or high <= low:
        return np.zeros(values.shape, dtype=np.uint16)
    scaled = (np.nan_to_num(values, nan=low) - low) / (high - low)
    return np.round(scaled * 65535.0).astype(np.uint16)


def decode_bytes(data: bytes, *, source_path: str) -> Image:
    """Decode an encoded 2D image. A plain L/RGB JPEG keeps its original bytes for the shard and is decoded
    only at reduced size, for its facts (module docstring); anything else is decoded in full."""
    if not data:
        raise ImageDecodeError("empty_file", source_path)
    try:
        with span("decode"), PILImage.open(io.BytesIO(data)) as img:
            probe = Probe(img.format or "", img.mode, *img.size)
            if probe.passthrough:
                img.draft(img.mode, draft_request(probe.width, probe.height, CHECK_SIDE))
                img.load()  # entropy-decodes the whole scan: a truncated file fails here, as in a full decode
                reduced = pil_to_array(img)
            else:
                img.load()  # forces a full decode: truncated files fail here, not later
                pixels = pil_to_array(img)
                reduced = None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as err:
        raise ImageDecodeError("image_undecodable", f"{source_path}: {err}") from err
    except PILImage.DecompressionBombError as err:
        raise ImageDecodeError("image_too_large", f"{source_path}: {err}") from err
    if reduced is None:
        return image_from_array(pixels, source_path=source_path)
    with span("image_facts"):
        digest, spread = jpeg_hash(data), normalised_std(reduced)
    return Image(width=probe.width, height=probe.height, bit_depth=8, channels=1 if probe.mode == "L" else 3,
                 pixel_hash=digest, pixel_std=spread, format="jpg", encoded=data, source_path=source_path)


def load_pixels(image: Image) -> np.ndarray:
    """The decoded pixels of an image, decoding the passthrough bytes in full if that is all it holds."""
    if image.pixels is not None:
        return image.pixels
    with span("decode"), PILImage.open(io.BytesIO(image.encoded)) as img:
        return pil_to_array(img)


def reduced_view(image: Image, min_width: int, min_height: int | None = None) -> PILImage.Image:
    """The image for a check or a model that looks at it at `min_width` x `min_height` px or less (it resizes
    after): a passthrough JPEG is draft-decoded to the smallest DCT scale that keeps both sides at least that
    large; decoded pixels are returned as they are. Never for pixels that are written."""
    if image.pixels is not None:
        return PILImage.fromarray(image.pixels)
    with span("decode"):
        img = PILImage.open(io.BytesIO(image.encoded))
        img.draft(img.mode, (max(1, min_width), max(1, min_height or min_width)))
        img.load()
    return img


def encode_png(pixels: np.ndarray, compress_level: int = 6) -> bytes:
    """Lossless PNG; uint16 greyscale stays 16-bit."""
    with span("encode"):
        return _encode_png(pixels, compress_level)


def _encode_png(pixels: np.ndarray, compress_level: int) -> bytes:
    if pixels.dtype == np.uint16 and pixels.ndim == 2:
        img = PILImage.fromarray(pixels)  # mode I;16
    elif pixels.dtype == np.uint16:
        # PNG can hold 16-bit RGB but Pillow cannot write it; keep the 8 most significant bits.
        img = PILImage.fromarray((pixels >> 8).astype(np.uint8), mode="RGB")
    else:
        img = PILImage.fromarray(pixels)
    buffer = io.BytesIO()
    img.save(buffer, format="PNG", compress_level=compress_level)
    return buffer.getvalue()


def shard_bytes(image: Image, compress_level: int = 6) -> bytes:
    """The bytes an image is stored with in a shard."""
    if image.encoded is not None:
        return image.encoded
    return encode_png(image.pixels, compress_level)


def downscale_to_fit(image: Image, max_side: int, max_pixels: int) -> Image:
    """A copy of `image` resized (area-preserving Lanczos) so both limits hold; facts recomputed."""
    pixels = load_pixels(image)
    with span("resize"):
        resized = _lanczos(pixels, max_side, max_pixels)
    return image_from_array(
        resized,
        source_path=image.source_path,
        bit_depth=image.bit_depth,
        photometric=image.photometric,
        slice_index=image.slice_index,
        slice_axis=image.slice_axis,
    )


def _lanczos(pixels: np.ndarray, max_side: int, max_pixels: int) -> np.ndarray:
    height, width = pixels.shape[:2]
    scale = min(max_side / max(height, width), (max_pixels / (height * width)) ** 0.5, 1.0)
    new_size = (max(1, int(width * scale)), max(1, int(height * scale)))
    if pixels.dtype == np.uint16 and pixels.ndim == 2:
        # Pillow resamples 16-bit data only in float mode; round back onto uint16 afterwards.
        as_float = PILImage.fromarray(pixels.astype(np.float32))
        resized_float = np.asarray(as_float.resize(new_size, PILImage.Resampling.LANCZOS))
        resized = np.clip(np.round(resized_float), 0, 65535).astype(np.uint16)
    else:
        resized = np.asarray(PILImage.fromarray(pixels).resize(new_size, PILImage.Resampling.LANCZOS))
    return resized
