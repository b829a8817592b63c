"""DICOM in, display-ready pixels plus a few technical tags out; nothing else from the header leaves.

Pixels follow the display chain of PS3.4 N.2: modality LUT (rescale slope/intercept), then the first
VOI LUT or window, then MONOCHROME1 is inverted, then min-max onto uint16 (BitsStored > 8) or uint8.
Colour (RGB, YBR_*, PALETTE COLOR) becomes uint8 RGB. Only the first frame of a multi-frame file is
kept; the frame count goes into the tags. `Image.photometric` is the file's own interpretation (so a
manifest can count MONOCHROME1 sources); the pixels are always low = dark.

The header is read but never copied: only `TAG_ALLOW_LIST` comes back, as plain JSON values. Names,
dates, ids and UIDs (bar the transfer syntax) stay behind.
"""

from __future__ import annotations

import gzip
import io
import math
import re
import struct
import warnings
import zlib

import numpy as np
import pydicom
from pydicom.errors import BytesLengthException, InvalidDicomError
from pydicom.pixels import apply_color_lut, apply_modality_lut, apply_voi_lut, pixel_array

from manifests.records import Image
from sources.io.image import ImageDecodeError, image_from_array, rescale_to_uint16

#: The only header values that may leave this module, with the JSON type each becomes.
TAG_ALLOW_LIST: dict[str, type] = {
    "Modality": str,
    "PhotometricInterpretation": str,
    "SamplesPerPixel": int,
    "BitsStored": int,
    "BitsAllocated": int,
    "PixelRepresentation": int,
    "Rows": int,
    "Columns": int,
    "NumberOfFrames": int,
    "PixelSpacing": float,
    "ImagerPixelSpacing": float,
    "ViewPosition": str,
    "RescaleSlope": float,
    "RescaleIntercept": float,
    "WindowCenter": float,
    "WindowWidth": float,
    "VOILUTFunction": str,
    "PresentationLUTShape": str,
}
COLOUR = ("RGB", "YBR_FULL", "YBR_FULL_422", "YBR_ICT", "YBR_RCT", "YBR_PARTIAL_420", "PALETTE COLOR")
PIXEL_KEYWORDS = ("PixelData", "FloatPixelData", "DoubleFloatPixelData")
UNDEFINED_LENGTH = 0xFFFFFFFF
MAX_PIXELS = 400_000_000  # as Pillow's limit in sources.io.image: beyond it is a bomb or a mistake
# pydicom reports malformed input through many unrelated types; each of these means "this file is bad",
# which must become a rejection, never a failed work unit.
_PARSE_ERRORS = (
    InvalidDicomError, BytesLengthException, EOFError, OSError, ValueError, TypeError, KeyError, IndexError,
    AttributeError, NotImplementedError, RuntimeError, OverflowError, struct.error, zlib.error,
)
_UID = re.compile(r"[0-9.]{1,64}")


def decode_dicom(data: bytes, *, source_path: str) -> tuple[Image, dict]:
    """Decode a DICOM file's bytes (plain or gzip) to an `Image` and its allow-listed technical tags."""
    data = _gunzip(data, source_path)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # pydicom warns about every fixable oddity; the result is what counts
        ds = _read(data, source_path)
        if not any(keyword in ds for keyword in PIXEL_KEYWORDS):
            if _cut_short(ds, len(data)):
                raise ImageDecodeError("dicom_unreadable", f"{source_path}: truncated header")
            raise ImageDecodeError("dicom_no_pixels", source_path)
        tags = technical_tags(ds)
        syntax = pydicom.uid.UID(tags.get("TransferSyntaxUID", "")).name or "no transfer syntax"
        try:
            pixels, bits_stored = _decode_pixels(ds)
        except _PARSE_ERRORS as err:
            message = " ".join(str(err).split())[:300]
            raise ImageDecodeError(
                "dicom_undecodable", f"{source_path}: {syntax}: {type(err).__name__}: {message}"
            ) from err
    bit_depth = bits_stored if pixels.ndim == 2 else min(bits_stored, 8)
    # the file's own interpretation, from the sanitised tags (a junk value must not reach the manifest)
    photometric = tags.get("PhotometricInterpretation")
    image = image_from_array(pixels, source_path=source_path, bit_depth=bit_depth, photometric=photometric)
    return image, tags


def _decode_pixels(ds: pydicom.Dataset) -> tuple[np.ndarray, int]:
    photometric = str(ds.get("PhotometricInterpretation", "MONOCHROME2")).strip().upper()
    bits_stored = int(ds.get("BitsStored", 8) or 8)
    size = int(ds.get("Rows", 0) or 0) * int(ds.get("Columns", 0) or 0) * int(ds.get("SamplesPerPixel", 1) or 1)
    if size > MAX_PIXELS:
        raise ValueError(f"{size} samples per frame is beyond the {MAX_PIXELS} limit")
    frame = pixel_array(ds, index=0)  # decodes only the first frame
    if photometric in COLOUR:
        return _colour(frame, ds, photometric), bits_stored
    return _grey(frame, ds, photometric, bits_stored), bits_stored


def _gunzip(data: bytes, source_path: str) -> bytes:
    if data[:2] != b"\x1f\x8b":
        return data
    try:
        return gzip.decompress(data)
    except (OSError, EOFError, zlib.error) as err:
        raise ImageDecodeError("dicom_unreadable", f"{source_path}: broken gzip: {err}") from err


def _read(data: bytes, source_path: str) -> pydicom.Dataset:
    # Old files lack the 128-byte preamble and "DICM"; read those forced, then check it was DICOM at all
    # (a forced read of arbitrary bytes "succeeds" with one junk element).
    force = data[128:132] != b"DICM"
    try:
        ds = pydicom.dcmread(io.BytesIO(data), force=force)
    except _PARSE_ERRORS as err:
        # A header that reads up to the pixels means broken pixels; otherwise the file is unreadable.
        try:
            header = pydicom.dcmread(io.BytesIO(data), force=force, stop_before_pixels=True)
        except _PARSE_ERRORS:
            raise ImageDecodeError("dicom_unreadable", f"{source_path}: {err}") from err
        if not _looks_like_dicom(header):
            raise ImageDecodeError("dicom_unreadable", f"{source_path}: not a DICOM file") from err
        raise ImageDecodeError("dicom_undecodable", f"{source_path}: pixel data: {err}") from err
    if force and not _looks_like_dicom(ds):
        raise ImageDecodeError("dicom_unreadable", f"{source_path}: not a DICOM file")
    if "TransferSyntaxUID" not in ds.file_meta:
        # pixel_array needs a transfer syntax; without one the data set is raw VR/endian as read
        implicit, little = ds.original_encoding
        ds.file_meta.TransferSyntaxUID = (
            pydicom.uid.ImplicitVRLittleEndian if implicit
            else pydicom.uid.ExplicitVRLittleEndian if little else pydicom.uid.ExplicitVRBigEndian
        )
    return ds


def _cut_short(ds: pydicom.Dataset, size: int) -> bool:
    """pydicom stops quietly at the end of the bytes; a last value shorter than its length means a cut file."""
    tags = list(ds.keys())
    if not tags:
        return True
    last = ds.get_item(tags[-1])
    tell, length = getattr(last, "value_tell", None), getattr(last, "length", UNDEFINED_LENGTH)
    return tell is not None and length != UNDEFINED_LENGTH and tell + length > size


def _looks_like_dicom(ds: pydicom.Dataset) -> bool:
    """A data set starts with group 0008 (identification) in practice; junk parses to a random tag."""
    tags = list(ds.keys())
    return bool(tags) and (tags[0].group == 0x0008 or any(keyword in ds for keyword in PIXEL_KEYWORDS))


def _grey(frame: np.ndarray, ds: pydicom.Dataset, photometric: str, bits_stored: int) -> np.ndarray:
    if frame.ndim != 2:
        raise ValueError(f"expected one grey frame, got shape {frame.shape}")
    values = apply_modality_lut(frame, ds)
    try:
        values = apply_voi_lut(values, ds, index=0)
    except _PARSE_ERRORS:
        pass  # a broken window is optional metadata; min-max below still gives a usable image
    scaled = rescale_to_uint16(values)
    if photometric == "MONOCHROME1":
        scaled = 65535 - scaled
    if bits_stored > 8:
        return scaled
    return np.round(scaled / 257.0).astype(np.uint8)  # 65535 / 257 = 255 exactly


def _colour(frame: np.ndarray, ds: pydicom.Dataset, photometric: str) -> np.ndarray:
    if photometric == "PALETTE COLOR":
        frame = apply_color_lut(frame, ds)
    if frame.ndim != 3 or frame.shape[2] != 3:
        raise ValueError(f"expected an RGB frame, got shape {frame.shape}")
    if frame.dtype == np.uint8:
        return frame
    # pixel_array has already turned YBR into RGB; only the sample width is left to reduce
    full_scale = 65535 if photometric == "PALETTE COLOR" else 2 ** int(ds.get("BitsStored", 16)) - 1
    return np.clip(np.round(frame.astype(np.float64) * (255.0 / full_scale)), 0, 255).astype(np.uint8)


def technical_tags(ds: pydicom.Dataset) -> dict:
    """The allow-listed tags as JSON values: str, int, float or lists of them; unreadable ones are left out."""
    tags: dict = {}
    for keyword, kind in TAG_ALLOW_LIST.items():
        try:
            value = ds.get(keyword)
            converted = _plain(value, kind)
        except _PARSE_ERRORS:
            continue
        if converted is not None:
            tags[keyword] = converted
    syntax = str(ds.file_meta.get("TransferSyntaxUID", "")).strip()
    if _UID.fullmatch(syntax):  # a UID is digits and dots; anything else in that slot is not copied
        tags["TransferSyntaxUID"] = syntax
    return tags


def _plain(value, kind: type):
    if value is None or value == "":
        return None
    if isinstance(value, (list, tuple, pydicom.multival.MultiValue)):
        items = [_plain(item, kind) for item in value]
        items = [item for item in items if item is not None]
        return items or None
    if kind is str:
        text = str(value).strip()
        # code strings only (CS: <= 16 chars of A-Z, 0-9, space, _); anything else is not a code
        return text if len(text) <= 16 and all(c.isascii() and (c.isalnum() or c in " _") for c in text) else None
    number = kind(float(value)) if kind is int else float(value)
    return number if math.isfinite(number) else None
