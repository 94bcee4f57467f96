"""Face detection: OpenCV Haar cascades (frontal, then profile both ways); :func:`rank_faces` keeps the face-like
boxes and puts the most plausible first (the detector's confidence, eyes inside the box, size), not the largest.

An optional MediaPipe backend (``pip install moodtune[mediapipe]``) uses the Tasks FaceDetector with a
BlazeFace model file: the one you give (``model_path=`` or ``MOODTUNE_BLAZEFACE``), else one downloaded once
from Google's model storage into ``$MOODTUNE_HOME/models/`` where internet exists (MediaPipe ≥ 0.10.30 ships none).
"""

from __future__ import annotations

import inspect
import os
import shutil
import urllib.request
from dataclasses import dataclass, replace
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
    plausibility: float = 1.0  # how face-like, 0..1 (rank_faces); 1.0 until ranked


    def as_tuple(self) -> tuple[int, int, int, int]:
        return (self.x, self.y, self.w, self.h)

    def scaled(self, factor: float) -> "FaceBox":
        """The same box in an image ``factor`` times the size (a detection copy back to the caller's image)."""
        x, y, w, h = (int(round(v * factor)) for v in self.as_tuple())
        return replace(self, x=x, y=y, w=w, h=h)


class FaceDetector(Protocol):
    name: str

    def detect(self, grey: np.ndarray, all_faces: bool = False, equalize: bool = True) -> list[FaceBox]:
        """Faces in a grey image, largest first; ``all_faces`` asks for every face, not only the large ones a
        detector may stop at; ``equalize=False`` skips a detector's contrast stretch (a large photo's fine scan)."""
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

    def __init__(self, min_face_fraction: float = 0.035, min_neighbors: int = 5,
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

    def detect(self, grey: np.ndarray, all_faces: bool = False, equalize: bool = True) -> list[FaceBox]:
        """``equalize`` stretches a dim webcam frame's histogram first; in a large photo where a small face is a
        sliver of the histogram the stretch hides it (a 300-px face in a 4000×3000 grey photo: 0 of 4 found with
        it, 4 of 4 without)."""
        import cv2

        eq = cv2.equalizeHist(grey) if equalize else grey
        # the large-face scan stops at the faces near the camera; a group needs the full pass
        faces = self._run("haarcascade_frontalface_default.xml", eq, "haar-frontal", large_first=not all_faces)
        if not faces:
            faces = self._run("haarcascade_profileface.xml", eq, "haar-profile")
            width = grey.shape[1]
            mirrored = self._run("haarcascade_profileface.xml", np.ascontiguousarray(eq[:, ::-1]), "haar-profile")
            faces += [FaceBox(width - f.x - f.w, f.y, f.w, f.h, f.score, f.detector) for f in mirrored]
        return sorted(faces, key=lambda f: -f.w * f.h)


HAAR_SCORE_MIDPOINT = 2.0  # a Haar level weight of 2 reads as an even chance (FER faces: median 5.6, 5th pct 1.9)
NO_EYES_FACTOR = 0.5  # a box with no eye found in its upper half is half as plausible (blur and glasses hide eyes)
MIN_PLAUSIBILITY = 0.35  # below this a box is dropped as not a face (benchmarks/face_detection.py chose it)


EYE_CHECK_WIDTH = 96  # the box is resized to this width for the eye check: eyes ~24 px, just above the 20-px window


def eyes_found(grey: np.ndarray, box: FaceBox) -> int:
    """How many eyes OpenCV's eye cascade finds in the upper half of the box.

    The box is resized to :data:`EYE_CHECK_WIDTH` first: the cascade then scans a few scales of a 96×60 patch
    (under 1 ms) instead of every scale of a 200-px face (20-30 ms on 2 cores).
    """
    import cv2

    x0, y0 = max(box.x, 0), max(box.y, 0)
    roi = grey[y0:y0 + box.h * 5 // 8, x0:x0 + box.w]  # eyes sit in the upper half; a little slack for tilt
    if min(roi.shape) < 4:
        return 0
    height = max(1, round(roi.shape[0] * EYE_CHECK_WIDTH / roi.shape[1]))
    patch = cv2.equalizeHist(cv2.resize(roi, (EYE_CHECK_WIDTH, height), interpolation=cv2.INTER_AREA))
    eyes = _cascade("haarcascade_eye.xml").detectMultiScale(patch, 1.15, 3, minSize=(12, 12), maxSize=(48, 48))
    return len(eyes)


def plausibility(grey: np.ndarray, box: FaceBox, eyes_required: bool = False) -> float:
    """How face-like a detection is, 0..1. Haar: its level weight through a logistic, times 0.8 for a profile,
    halved when no eye is found inside (0 with ``eyes_required``); other detectors: their own score."""
    if not box.detector.startswith("haar"):
        return float(box.score)
    confidence = 1 / (1 + float(np.exp(-(box.score - HAAR_SCORE_MIDPOINT))))
    eyes = 1.0 if eyes_found(grey, box) else 0.0 if eyes_required else NO_EYES_FACTOR
    return confidence * eyes * (0.8 if box.detector == "haar-profile" else 1.0)


def rank_faces(grey: np.ndarray, faces: list[FaceBox], min_plausibility: float = MIN_PLAUSIBILITY,
               eyes_required: bool = False) -> list[FaceBox]:
    """The face-like boxes of ``faces`` (boxes in ``grey``'s coordinates), most plausible first: plausibility ×
    side, so a smiling person beats a larger face-like pattern behind her (scikit-image's astronaut photo)."""
    scored = [replace(f, plausibility=round(plausibility(grey, f, eyes_required), 3)) for f in faces]
    kept = [f for f in scored if f.plausibility >= min_plausibility]
    return sorted(kept, key=lambda f: -f.plausibility * f.w)


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

    def detect(self, grey: np.ndarray, all_faces: bool = False, equalize: bool = True) -> list[FaceBox]:
        # always every face; BlazeFace takes the image as it is
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
