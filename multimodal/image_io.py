"""Turn whatever image a user gives (path, bytes, PIL image, numpy array) into an RGB uint8 array."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import numpy as np

from .base import InputError

MAX_SIDE = 1280  # larger images are downscaled before face detection
MAX_FILE_BYTES = 50 * 1024 * 1024
MAX_PIXELS = 40_000_000  # a 40-megapixel photo decodes to 120 MB; bigger ones are refused from their header


def check_pixels(width: int, height: int) -> None:
    """Refuse an image larger than :data:`MAX_PIXELS` before any pixel is decoded or converted."""
    if width * height > MAX_PIXELS:
        raise InputError(f"the image is {width:,}×{height:,} pixels, more than the {MAX_PIXELS / 1e6:.0f} megapixels "
                         "moodtune reads; send a smaller photo (a face needs only a few hundred pixels)")


def _header_size(data: bytes) -> tuple[int, int]:
    """(width, height) from the file's header, without decoding the pixels."""
    import warnings

    from PIL import Image, UnidentifiedImageError

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data)) as im:  # reads the header only
                return im.size
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise InputError(f"the image is larger than the {MAX_PIXELS / 1e6:.0f} megapixels moodtune reads") from exc
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as exc:
        raise InputError("the image file is corrupt or not an image format moodtune can read "
                         "(JPEG, PNG, BMP, WebP, TIFF)") from exc


def _decode(data: bytes) -> np.ndarray:
    import cv2

    if not data:
        raise InputError("the image is empty (0 bytes)")
    check_pixels(*_header_size(data))
    arr = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
    if arr is None:
        raise InputError("the image file is corrupt or not an image format moodtune can read (JPEG, PNG, BMP, WebP, TIFF)")
    if arr.ndim == 3 and arr.shape[2] == 4:
        return cv2.cvtColor(arr, cv2.COLOR_BGRA2RGBA)
    if arr.ndim == 3:
        return cv2.cvtColor(arr, cv2.COLOR_BGR2RGB)
    return arr


def to_rgb(image: Any) -> np.ndarray:
    """RGB uint8 (H, W, 3). Accepts a file path, encoded bytes, a PIL image, or a numpy array that is
    grey (H, W), (H, W, 1), RGB (H, W, 3) or RGBA (H, W, 4), uint8 or float (0..1 or 0..255)."""
    if isinstance(image, (str, Path)):
        path = Path(image)
        if not path.is_file():
            raise InputError(f"no image file at {path}")
        if path.stat().st_size > MAX_FILE_BYTES:
            raise InputError(f"the image file is larger than {MAX_FILE_BYTES // 2**20} MB")
        image = path.read_bytes()
    if isinstance(image, (bytes, bytearray, memoryview)):
        image = _decode(bytes(image))
    elif hasattr(image, "convert") and hasattr(image, "size"):  # PIL.Image
        check_pixels(*image.size)
        image = np.asarray(image.convert("RGB"))
    if not isinstance(image, np.ndarray):
        raise InputError(f"an image must be a file path, bytes, a PIL image or a numpy array, not {type(image).__name__}")
    arr = image
    if arr.ndim >= 2:
        check_pixels(arr.shape[1], arr.shape[0])  # before any conversion copies it
    if arr.ndim == 3 and arr.shape[2] == 1:
        arr = arr[:, :, 0]
    if arr.ndim not in (2, 3) or (arr.ndim == 3 and arr.shape[2] not in (3, 4)) or min(arr.shape[:2]) == 0:
        raise InputError(f"an image array must be (H, W), (H, W, 3) or (H, W, 4); got shape {arr.shape}")
    if arr.dtype != np.uint8:
        if not np.issubdtype(arr.dtype, np.number) or np.issubdtype(arr.dtype, np.complexfloating):
            raise InputError(f"image pixels must be numbers, not {arr.dtype}")
        if arr.dtype == np.uint16:  # 16-bit PNG/TIFF: 0..65535
            arr = (arr // 257).astype(np.uint8)
        else:
            if not np.isfinite(arr).all():  # before the cast: a float64 beyond float32's range would warn there
                raise InputError("the image contains NaN or infinite pixel values")
            arr = np.clip(arr, 0, 256).astype(np.float32)  # the result is 0..255 whatever the scale below
            scale = 255.0 if arr.size and arr.max() <= 1.0 else 1.0
            arr = np.clip(arr * scale, 0, 255).round().astype(np.uint8)
    if arr.ndim == 2:
        arr = np.repeat(arr[:, :, None], 3, axis=2)
    elif arr.shape[2] == 4:
        alpha = arr[:, :, 3:4].astype(np.float32) / 255
        arr = (arr[:, :, :3] * alpha + 255 * (1 - alpha)).astype(np.uint8)  # composite on white
    return np.ascontiguousarray(arr)


def downscale(rgb: np.ndarray, max_side: int = MAX_SIDE) -> tuple[np.ndarray, float]:
    """Shrink so the longer side is at most ``max_side``; returns (image, scale applied)."""
    import cv2

    h, w = rgb.shape[:2]
    scale = min(1.0, max_side / max(h, w))
    if scale < 1.0:
        rgb = cv2.resize(rgb, (max(1, round(w * scale)), max(1, round(h * scale))), interpolation=cv2.INTER_AREA)
    return rgb, scale
