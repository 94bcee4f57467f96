"""Face detection: OpenCV Haar cascades (frontal, then profile both ways), the largest face wins.

An optional MediaPipe backend (``pip install moodtune[mediapipe]``) uses the Tasks FaceDetector with a
BlazeFace model file: the one you give (``model_path=`` or ``MOODTUNE_BLAZEFACE``), else one downloaded once
from Google's model storage into ``$MOODTUNE_HOME/models/`` where internet exists (MediaPipe ≥ 0.10.30 ships none).
"""

from __future__ import annotations

import inspect
import os
import shutil
import urllib.request
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Protocol
from urllib.parse import urlparse

import numpy as np

from .base import InputError
from .files import moodtune_home


@dataclass(frozen=True)
class FaceBox:
    """A detected face in the coordinates of the image the caller passed in."""

    x: int
    y: int
    w: int
    h: int
    score: float = 1.0
    detector: str = "haar-frontal"

    def as_tuple(self) -> tuple[int, int, int, int]:
        return (self.x, self.y, self.w, self.h)

    def scaled(self, factor: float) -> "FaceBox":
        """The same box in an image ``factor`` times the size (a detection copy back to the caller's image)."""
        x, y, w, h = (int(round(v * factor)) for v in self.as_tuple())
        return FaceBox(x, y, w, h, self.score, self.detector)


class FaceDetector(Protocol):
    name: str

    def detect(self, grey: np.ndarray, all_faces: bool = False) -> list[FaceBox]:
        """Faces in a grey image, largest first; ``all_faces`` asks for every face, not only the large ones a
        detector may stop at."""
        ...


@lru_cache(maxsize=None)
def _cascade(name: str):
    import cv2

    folder = getattr(getattr(cv2, "data", None), "haarcascades", None)
    cascade = cv2.CascadeClassifier(os.path.join(folder, name)) if folder else None
    if cascade is None or cascade.empty():
        raise RuntimeError(f"OpenCV {cv2.__version__} has no {name} (5.x dropped the Haar cascades); "
                           "reinstall it with: pip install --force-reinstall 'opencv-python-headless<5'")
    return cascade


LARGE_FACE_MARGIN = 1.3  # the coarse scan keeps the faces at least this many times its smallest window


class HaarFaceDetector:
    """Frontal cascade with histogram equalisation; profile cascade (and its mirror) as a fallback."""

    name = "haar"

    def __init__(self, min_face_fraction: float = 0.06, min_neighbors: int = 5,
                 large_face_fraction: float = 1 / 5) -> None:
        self.min_face_fraction = min_face_fraction
        self.min_neighbors = min_neighbors
        self.large_face_fraction = large_face_fraction

    def _scan(self, cascade_name: str, grey: np.ndarray, min_side: int) -> list:
        boxes, _, weights = _cascade(cascade_name).detectMultiScale3(
            grey, scaleFactor=1.1, minNeighbors=self.min_neighbors, minSize=(min_side, min_side),
            outputRejectLevels=True)
        return list(zip(np.asarray(boxes).reshape(-1, 4), np.asarray(weights).reshape(-1)))

    def large_window(self, shape: tuple[int, ...]) -> int:
        """The large-face scan's smallest window for an image of ``shape``."""
        return int(min(shape[:2]) * self.large_face_fraction)

    def large_scan_keeps(self, box_side: int, shape: tuple[int, ...]) -> bool:
        """Whether the large-face scan of an image of ``shape`` keeps a box this wide.

        A face just above the scan's smallest window gets a box grown by the windows it skips (by 15% at
        1-1.1x that window, 2% at 1.2-1.3x, none from 1.3x; 80 FER faces): those faces go to the full pass.
        """
        return box_side >= LARGE_FACE_MARGIN * self.large_window(shape)

    def _run(self, cascade_name: str, grey: np.ndarray, label: str, large_first: bool = False) -> list[FaceBox]:
        """All face sizes in one pass; with ``large_first``, a cheap scan of the coarse scales first (faces at
        least a fifth of the image side: a user near the camera) and the full pass only when it finds none.

        The smallest scales cost most: on 2 cores a textured 320×240 image costs about 25 ms from a fifth and
        40 ms for the full pass. A frame with a face near the camera never scans the small scales; a frame
        without a face pays for the coarse scan on top of the full pass (docs/benchmarks.md). The full pass is
        the same as without ``large_first``, so no face is lost (splitting the scales instead loses faces whose
        neighbouring detections straddle the split).
        """
        side = max(24, int(min(grey.shape) * self.min_face_fraction))
        large = self.large_window(grey.shape)
        found = []
        if large_first and large > side:
            found = [f for f in self._scan(cascade_name, grey, large) if self.large_scan_keeps(f[0][2], grey.shape)]
        found = found or self._scan(cascade_name, grey, side)
        return [FaceBox(int(x), int(y), int(w), int(h), float(s), label) for (x, y, w, h), s in found]

    def detect(self, grey: np.ndarray, all_faces: bool = False) -> list[FaceBox]:
        import cv2

        eq = cv2.equalizeHist(grey)
        # the large-face scan stops at the faces near the camera; a group needs the full pass
        faces = self._run("haarcascade_frontalface_default.xml", eq, "haar-frontal", large_first=not all_faces)
        if not faces:
            faces = self._run("haarcascade_profileface.xml", eq, "haar-profile")
            width = grey.shape[1]
            mirrored = self._run("haarcascade_profileface.xml", np.ascontiguousarray(eq[:, ::-1]), "haar-profile")
            faces += [FaceBox(width - f.x - f.w, f.y, f.w, f.h, f.score, f.detector) for f in mirrored]
        return sorted(faces, key=lambda f: -f.w * f.h)


BLAZEFACE_URL = ("https://storage.googleapis.com/mediapipe-models/face_detector/blaze_face_short_range/float16/"
                 "latest/blaze_face_short_range.tflite")


def blazeface_model(model_path: str | os.PathLike | None = None, url: str = BLAZEFACE_URL,
                    cache_dir: Path | None = None, timeout: float = 20.0) -> Path:
    """The BlazeFace model file: the given one, ``MOODTUNE_BLAZEFACE``, a download cached in moodtune's folder
    (``$MOODTUNE_HOME/models``), or a new download (only when the MediaPipe detector is asked for)."""
    cache_dir = cache_dir or moodtune_home() / "models"
    given = model_path or os.environ.get("MOODTUNE_BLAZEFACE")
    if given:
        if not os.path.isfile(given):
            raise InputError(f"no BlazeFace model file at {given}")
        return Path(given)
    target = cache_dir / Path(urlparse(url).path).name
    if target.is_file() and target.stat().st_size > 0:
        return target
    cache_dir.mkdir(parents=True, exist_ok=True)
    partial = target.with_suffix(".part")
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response, open(partial, "wb") as out:
            shutil.copyfileobj(response, out)
        if partial.stat().st_size == 0:
            raise OSError("empty download")
        partial.replace(target)  # atomic: a broken download never looks like a model
    except OSError as exc:
        partial.unlink(missing_ok=True)
        raise InputError(f"the MediaPipe backend needs a BlazeFace model file and it could not be downloaded from "
                         f"{url} ({exc}); download blaze_face_short_range.tflite where you have internet and pass "
                         "model_path= or set MOODTUNE_BLAZEFACE") from exc
    return target


class MediaPipeFaceDetector:
    """MediaPipe Tasks FaceDetector (BlazeFace short range); the model file as :func:`blazeface_model` finds it."""

    name = "mediapipe"

    def __init__(self, model_path: str | None = None, min_score: float = 0.5) -> None:
        try:
            import mediapipe as mp
            from mediapipe.tasks.python import BaseOptions, vision
        except ImportError as exc:
            raise InputError("the MediaPipe backend needs: pip install 'moodtune[mediapipe]'") from exc
        model_path = str(blazeface_model(model_path))
        self._mp = mp
        self._detector = vision.FaceDetector.create_from_options(vision.FaceDetectorOptions(
            base_options=BaseOptions(model_asset_path=model_path), min_detection_confidence=min_score))

    def detect(self, grey: np.ndarray, all_faces: bool = False) -> list[FaceBox]:  # always every face
        rgb = np.ascontiguousarray(np.repeat(grey[:, :, None], 3, axis=2))
        result = self._detector.detect(self._mp.Image(image_format=self._mp.ImageFormat.SRGB, data=rgb))
        boxes = [FaceBox(d.bounding_box.origin_x, d.bounding_box.origin_y, d.bounding_box.width,
                         d.bounding_box.height, float(d.categories[0].score), "mediapipe") for d in result.detections]
        return sorted(boxes, key=lambda f: -f.w * f.h)


DETECTORS = {"haar": HaarFaceDetector, "mediapipe": MediaPipeFaceDetector}


def check_detector(name: str, **kw) -> None:
    """Raise ValueError for an unknown detector and TypeError for options it does not take (cheap: builds nothing)."""
    if name not in DETECTORS:
        raise ValueError(f"unknown face detector {name!r}; choose one of {', '.join(DETECTORS)}")
    try:
        inspect.signature(DETECTORS[name]).bind(**kw)
    except TypeError as exc:
        raise TypeError(f"face detector {name!r}: {exc}") from None


def make_detector(name: str = "haar", **kw) -> FaceDetector:
    check_detector(name, **kw)
    return DETECTORS[name](**kw)


def square_crop(grey: np.ndarray, box: FaceBox, margin: float = 0.12, size: int = 48) -> np.ndarray:
    """A square crop around the box, enlarged by ``margin`` on each side, padded at the borders, resized."""
    import cv2

    cx, cy = box.x + box.w / 2, box.y + box.h / 2
    half = max(box.w, box.h) * (0.5 + margin)
    x0, y0, x1, y1 = int(round(cx - half)), int(round(cy - half)), int(round(cx + half)), int(round(cy + half))
    pad = max(0, -x0, -y0, x1 - grey.shape[1], y1 - grey.shape[0])
    if pad:
        grey = cv2.copyMakeBorder(grey, pad, pad, pad, pad, cv2.BORDER_REPLICATE)
        x0, y0, x1, y1 = x0 + pad, y0 + pad, x1 + pad, y1 + pad
    crop = grey[y0:y1, x0:x1]
    interp = cv2.INTER_AREA if crop.shape[0] > size else cv2.INTER_LINEAR
    return cv2.resize(crop, (size, size), interpolation=interp)
