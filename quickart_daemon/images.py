"""Reading and writing frames: the one place every PNG goes through.

Frames inside QuickArt are always RGBA uint8 arrays of shape (height, width, 4), in
RGB channel order. Reading checks the header size before decoding (a 30000x30000
header is refused without allocating it), decodes fully (a truncated file is an
error, not a half-grey frame) and converts every PNG mode to RGBA. Writing is atomic:
a temporary name in the same folder, then a rename.
"""

from __future__ import annotations

import os
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

from .errors import ImageError, OutputError

#: Largest frame we decode by default: 8K UHD with room to spare (about 100 megapixels).
DEFAULT_MAX_PIXELS = 100_000_000

# Our own limit (max_pixels, checked from the header before decoding) replaces Pillow's global one.
Image.MAX_IMAGE_PIXELS = None


def check_pixels(path, size: tuple[int, int], max_pixels: int) -> None:
    """Refuse a frame whose header says more than `max_pixels`, before anything is decoded."""
    width, height = size
    if width * height > max_pixels:
        raise ImageError(f"{path}: {width}x{height} is larger than the {max_pixels:,}-pixel limit "
                         "(a corrupt header or a decompression bomb); re-export the frame")


def read_png(path: str | os.PathLike, max_pixels: int = DEFAULT_MAX_PIXELS) -> np.ndarray:
    """Decode a PNG (or any image Pillow reads) into an RGBA uint8 array."""
    path = Path(path)
    try:
        size = path.stat().st_size
    except OSError as exc:
        raise ImageError(f"{path}: cannot read: {exc.strerror}") from None
    if size == 0:
        raise ImageError(f"{path}: empty file (zero bytes); was the copy interrupted?")
    try:
        with Image.open(path) as img:
            check_pixels(path, img.size, max_pixels)
            img.load()
            return _to_rgba(img)
    except ImageError:
        raise
    except (OSError, SyntaxError, ValueError) as exc:
        raise ImageError(f"{path}: not a readable image (corrupt or truncated): {exc}") from None


def _to_rgba(img: Image.Image) -> np.ndarray:
    if img.mode == "F":
        # 32-bit float grey (a float TIFF, whatever its name says): 0..1 is the usual range, else 0..255
        arr = np.nan_to_num(np.asarray(img, dtype=np.float32))
        scale = 255.0 if arr.max(initial=0.0) <= 1.0 else 1.0
        grey = np.clip(arr * scale + 0.5, 0, 255).astype(np.uint8)
        return np.dstack([grey, grey, grey, np.full_like(grey, 255)])
    if img.mode in ("I;16", "I;16B", "I;16L", "I"):
        # 16-bit greyscale: keep the top 8 bits
        arr = np.asarray(img, dtype=np.uint32)
        peak = 65535 if img.mode != "I" or arr.max() > 255 else 255
        grey = (arr * 255 // peak).astype(np.uint8)
        return np.dstack([grey, grey, grey, np.full_like(grey, 255)])
    if img.mode != "RGBA":
        img = img.convert("RGBA")
    return np.array(img, dtype=np.uint8)


def image_size(path: str | os.PathLike) -> tuple[int, int]:
    """(width, height) from the header alone."""
    try:
        if os.stat(path).st_size == 0:
            raise ImageError(f"{path}: empty file (zero bytes); was the copy interrupted?")
        with Image.open(path) as img:
            return img.size
    except (OSError, SyntaxError, ValueError) as exc:
        raise ImageError(f"{path}: not a readable image: {exc}") from None


def write_png(path: str | os.PathLike, rgba: np.ndarray, compression: int = 3) -> None:
    """Write an RGBA (or RGB, or grey) uint8 array atomically as PNG."""
    path = Path(path)
    arr = np.ascontiguousarray(rgba)
    if arr.dtype != np.uint8:
        raise ValueError(f"frames are uint8, got {arr.dtype}")
    if arr.ndim == 3 and arr.shape[2] == 4:
        bgr = cv2.cvtColor(arr, cv2.COLOR_RGBA2BGRA)
    elif arr.ndim == 3 and arr.shape[2] == 3:
        bgr = cv2.cvtColor(arr, cv2.COLOR_RGB2BGR)
    else:
        bgr = arr
    ok, data = cv2.imencode(".png", bgr, [cv2.IMWRITE_PNG_COMPRESSION, compression])
    if not ok:
        raise OutputError(f"{path}: PNG encoding failed")
    write_bytes_atomic(path, data.tobytes())


def write_bytes_atomic(path: str | os.PathLike, data: bytes) -> None:
    """Write to a hidden temporary name beside the target, fsync, then rename over it."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise OutputError(f"{path}: cannot write: {exc.strerror or exc}") from None


def to_rgba(arr: np.ndarray) -> np.ndarray:
    """Grey (H,W), RGB (H,W,3) or RGBA (H,W,4) uint8 to RGBA."""
    if arr.ndim == 2:
        return np.dstack([arr, arr, arr, np.full_like(arr, 255)])
    if arr.shape[2] == 3:
        return np.dstack([arr, np.full(arr.shape[:2], 255, np.uint8)])
    return arr


def composite_over(bottom: np.ndarray, top: np.ndarray) -> np.ndarray:
    """Porter-Duff 'over' for straight-alpha RGBA uint8 frames of the same size."""
    b = bottom.astype(np.float32) / 255.0
    t = top.astype(np.float32) / 255.0
    ta, ba = t[..., 3:4], b[..., 3:4]
    out_a = ta + ba * (1.0 - ta)
    rgb = (t[..., :3] * ta + b[..., :3] * ba * (1.0 - ta)) / np.maximum(out_a, 1e-6)
    out = np.concatenate([rgb, out_a], axis=2)
    return np.clip(out * 255.0 + 0.5, 0, 255).astype(np.uint8)
