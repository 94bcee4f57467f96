"""Face encoder: detect the face, crop it, and read its expression with our FER2013-trained CNN.

preprocess (any image → RGB → grey, downscale, detect, square crop 48×48) → forward (CNN on ONNX Runtime, with
flip test-time augmentation) → postprocess (temperature-calibrated softmax, detection quality).
``FaceEncoder(model="trpakov/vit-face-expression")`` or a local folder uses a transformers
image-classification model instead, its labels mapped into EMOTIONS.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from .base import Encoder, InputError
from .face_detection import FaceBox, FaceDetector, check_detector, make_detector, rank_faces, square_crop
from .heads import softmax
from .image_io import downscale, to_rgb
from .labels import EMOTIONS, FER2013, LabelMap, label_map_for
from .reading import ModalityReading, Status, js_divergence
from .runtime import onnx_session

FACE_WEIGHTS = Path(__file__).resolve().parents[1] / "models" / "face" / "fer_cnn.safetensors"  # trained (recipe)
FACE_ONNX = FACE_WEIGHTS.with_suffix(".onnx")  # the same net for inference (models/face/export_onnx.py)
MIN_IMAGE_SIDE = 24
CROP_MAX_SIDE = 96  # a near-square image up to this size with no face detected is read as a face crop
DETECT_SIDE = 320  # face detection runs on a copy at most this large
FINE_DETECT_SIDE = 960  # and, in a larger photo, on one this large for small faces (detect_faces)
FACE_MODES = ("largest", "all")  # which faces a reading reads


def check_faces_mode(faces: str) -> None:
    """A mode that is not one of :data:`FACE_MODES` is a caller's mistake, not bad input: ValueError."""
    if faces not in FACE_MODES:
        raise ValueError(f"faces={faces!r}: choose one of {', '.join(FACE_MODES)}")


@dataclass
class FaceCrop:
    crop: np.ndarray         # grey uint8 (48, 48) for our CNN
    rgb_crop: np.ndarray     # RGB crop at the detector's resolution, for hub models
    box: FaceBox | None      # in the caller's image coordinates; None when detection was skipped
    quality: float
    notes: list[str]


def face_quality(box: FaceBox, image_shape: tuple[int, ...]) -> float:
    """Detection quality 0..1: small faces and less face-like boxes (:func:`rank_faces`) count less."""
    size_q = float(np.clip(min(box.w, box.h) / 96, 0.3, 1.0))
    return round(size_q * (0.5 + 0.5 * box.plausibility), 3)


def detect_faces(grey: np.ndarray, detector: FaceDetector, all_faces: bool) -> list[FaceBox]:
    """The face-like boxes of ``grey``, most plausible first (:func:`rank_faces`), in its coordinates.

    A webcam frame is scanned on a ≤ DETECT_SIDE copy. A larger photo is scanned again on a ≤ FINE_DETECT_SIDE
    copy when the first scan finds no face, and only there for every face: the detector's smallest window
    (25 px, 3.5% of the short side) is then 3.5% of a 4:3 photo's height, where the small copy stops at 10%;
    a face of 5% (36 px) then spans several windows. The fine scan skips the histogram stretch (it hides small
    faces) and also finds face-like texture, so its boxes need an eye found inside: a photo that large has the
    pixels for it (benchmarks/face_detection.py).
    """
    large = max(grey.shape) > 2 * DETECT_SIDE
    sides = [FINE_DETECT_SIDE] if all_faces and large else [DETECT_SIDE, FINE_DETECT_SIDE] if large else [DETECT_SIDE]
    faces: list[FaceBox] = []
    for side in sides:
        copy, scale = downscale(grey, side)
        fine = side == FINE_DETECT_SIDE
        boxes = [f.scaled(1 / scale) for f in detector.detect(copy, all_faces=all_faces, equalize=not fine)]
        faces = rank_faces(grey, boxes, eyes_required=fine)
        if faces:
            break
    return faces


def prepare_faces(image: Any, detector: FaceDetector | None, detect_face: bool = True,
                  all_faces: bool = False) -> list[FaceCrop] | ModalityReading:
    """The face crops of an image, clearest first (only that one unless ``all_faces``), or a failed reading
    that says why there are none."""
    import cv2

    rgb = to_rgb(image)
    h, w = rgb.shape[:2]
    if not detect_face or detector is None:
        grey = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
        crop = cv2.resize(grey, (48, 48), interpolation=cv2.INTER_AREA if min(h, w) > 48 else cv2.INTER_LINEAR)
        return [FaceCrop(crop, rgb, None, 1.0, [])]
    if min(h, w) < MIN_IMAGE_SIDE:
        return ModalityReading.failed("face", Status.NO_FACE,
                                      f"the image is too small ({w}×{h} pixels) to find a face in")
    small, scale = downscale(rgb)
    grey = cv2.cvtColor(small, cv2.COLOR_RGB2GRAY)
    # Detect on smaller copies (4× fewer pixels for a webcam frame), crop from the sharper image.
    if cv2.meanStdDev(grey)[1].item() < 2.0:  # (numpy's std of a 640×480 frame costs 2 ms)
        return ModalityReading.failed("face", Status.NO_FACE, "the image is blank (one flat colour): no face found")
    faces = detect_faces(grey, detector, all_faces)
    if not faces and max(h, w) <= CROP_MAX_SIDE and 0.75 <= w / h <= 1.33:
        # A small square image with no face found in it is most likely a face crop already (FER2013 is 48×48,
        # too small for the detector's windows): read it whole, and say so.
        crop = cv2.resize(grey, (48, 48), interpolation=cv2.INTER_AREA if min(h, w) > 48 else cv2.INTER_LINEAR)
        return [FaceCrop(crop, rgb, None, 0.7, [f"no face detected in this small {w}×{h} image: read whole, as a face crop"])]
    if not faces:
        return ModalityReading.failed("face", Status.NO_FACE,
                                      "no face found: face the camera in good light, or crop the photo to the face")
    notes = [f"{len(faces)} faces found; reading the clearest"] if len(faces) > 1 and not all_faces else []
    if scale < 1:
        notes.append(f"image downscaled from {w}×{h} for detection")
    crops = []
    for box in faces if all_faces else faces[:1]:
        x0, y0 = max(box.x, 0), max(box.y, 0)
        full_box = box.scaled(1 / scale)
        crops.append(FaceCrop(square_crop(grey, box), small[y0:y0 + box.h, x0:x0 + box.w], full_box,
                              face_quality(box, grey.shape), notes))
    return crops


def prepare_face(image: Any, detector: FaceDetector | None, detect_face: bool = True) -> FaceCrop | ModalityReading:
    """The clearest face's crop, or a failed reading that says why there is none."""
    crops = prepare_faces(image, detector, detect_face)
    return crops if isinstance(crops, ModalityReading) else crops[0]


@dataclass(frozen=True)
class FaceResult:
    """One face of a frame: its box (x, y, w, h) in the input image and its reading."""

    box: tuple[int, int, int, int] | None
    reading: ModalityReading

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: the box as a list (or None) and the reading's :meth:`ModalityReading.to_dict`."""
        return {"box": list(self.box) if self.box else None, "reading": self.reading.to_dict()}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "FaceResult":
        """The face :meth:`to_dict` gave."""
        box = d.get("box")
        x, y, w, h = (int(v) for v in box) if box else (0, 0, 0, 0)
        return cls((x, y, w, h) if box else None, ModalityReading.from_dict(d["reading"]))


def group_reading(results: list[FaceResult], message: str = "") -> ModalityReading:
    """The group's mood as one face reading: the faces' distributions averaged with weights box area ×
    confidence; ``extras["faces"]`` lists each face and ``extras["spread"]`` how far they are from the group
    (the weighted mean Jensen–Shannon divergence, base 2: 0 when all faces read the same, 1 at most)."""
    probs = np.stack([r.reading.vector for r in results])
    area = np.array([(r.box[2] * r.box[3]) if r.box else 1.0 for r in results], dtype=np.float64)
    weights = area * np.array([r.reading.confidence for r in results])
    weights = weights / weights.sum() if weights.sum() > 0 else np.full(len(results), 1 / len(results))
    group = weights @ probs
    spread = float(sum(w * js_divergence(p, group) for w, p in zip(weights, probs)))
    first = results[0].reading
    faces = [{"box": list(r.box) if r.box else None, "top_emotion": r.reading.top_emotion,
              "probabilities": r.reading.probabilities, "confidence": r.reading.confidence,
              "quality": r.reading.quality, "plausibility": r.reading.extras.get("plausibility"),
              "weight": round(float(w), 4)} for r, w in zip(results, weights)]
    tops = [r.reading.top_emotion for r in results]
    counts = ", ".join(f"{tops.count(e)} {e}" for e in dict.fromkeys(tops))
    note = f"{len(results)} face{'s' if len(results) > 1 else ''} ({counts}); the group's mood, spread {spread:.2f}"
    return ModalityReading.from_probs("face", group, coverage=first.coverage_mask,
                                      quality=float(weights @ [r.reading.quality for r in results]),
                                      message="; ".join(m for m in (note, message) if m), model=first.model,
                                      extras={"faces": faces, "spread": round(spread, 4)})


class FaceBackend:
    name: str
    label_map: LabelMap

    def probabilities(self, crops: list[FaceCrop]) -> np.ndarray:
        raise NotImplementedError


class FerCnnBackend(FaceBackend):
    """Our CNN (``models/face/fer_cnn.onnx``, exported from the trained ``fer_cnn.safetensors``) on ONNX Runtime,
    flip test-time augmentation, temperature scaling.

    ONNX Runtime runs one face and its mirror in about half the time PyTorch takes on 2 CPU cores (same logits
    to 1e-5; docs/benchmarks.md). Its threads do not spin between calls, so the voice and text encoders that
    run next in the same process get the cores.
    """

    label_map = FER2013

    def __init__(self, weights: Path = FACE_ONNX) -> None:
        if not weights.exists():
            raise FileNotFoundError(f"the face model {weights} is missing; reinstall moodtune, or export it from "
                                    "the trained weights: python -m models.face.export_onnx")
        self.session = onnx_session(weights)
        self._input = self.session.get_inputs()[0].name
        meta = self.session.get_modelmeta().custom_metadata_map
        self.temperature = float(meta.get("temperature", 1.0))
        # the weights' hash in the name: a correction learned for these weights is dropped when they change
        self.name = (f"moodtune-face-cnn (FER2013, val acc {meta.get('best_val_acc', '?')}, "
                     f"{meta.get('source_sha256', '?')[:8]})")

    def logits(self, grey48: np.ndarray) -> np.ndarray:
        """Logits (N, 7) for grey uint8 crops (N, 48, 48), averaged with their mirror images."""
        x = np.ascontiguousarray(grey48, dtype=np.float32)[:, None] / np.float32(255)
        both = self.session.run(None, {self._input: np.concatenate([x, x[..., ::-1]])})[0]  # one pass for both
        return (both[:len(x)] + both[len(x):]) / 2

    def probabilities(self, crops: list[FaceCrop]) -> np.ndarray:
        return softmax(self.logits(np.stack([c.crop for c in crops])), self.temperature)


class HubFaceBackend(FaceBackend):
    """Any transformers image-classification model (hub id or local folder)."""

    def __init__(self, ref: str) -> None:
        from transformers import AutoImageProcessor, AutoModelForImageClassification

        self.processor = AutoImageProcessor.from_pretrained(ref)
        self.model = AutoModelForImageClassification.from_pretrained(ref).eval()
        id2label = self.model.config.id2label
        self.labels = [str(id2label[i]) for i in range(len(id2label))]
        self.label_map = label_map_for(self.labels, name=ref)
        self.name = ref

    def probabilities(self, crops: list[FaceCrop]) -> np.ndarray:
        import torch

        with torch.inference_mode():
            inputs = self.processor(images=[c.rgb_crop for c in crops], return_tensors="pt")
            p = softmax(self.model(**inputs).logits.numpy())
        return self.label_map.to_emotions(p)


class FaceEncoder(Encoder[FaceBackend]):
    """Facial expression from a photo or webcam frame.

    ``predict(image)`` reads the clearest face (:func:`rank_faces`); ``predict(image, detect_face=False)`` reads the
    whole image as a face crop (e.g. FER2013's 48×48 images). The reading's ``extras["box"]`` is the
    face box (x, y, w, h) in the input image, for drawing.
    """

    modality = "face"
    options = ("detect_face", "faces")

    def __init__(self, model: str | Path | None = None, *, detector: str = "haar", **detector_kw: Any) -> None:
        super().__init__(model)
        check_detector(detector, **detector_kw)  # a typo fails here, not as an error reading on every frame
        self._detector_spec = (detector, detector_kw)
        self._detector: FaceDetector | None = None

    @property
    def detector(self) -> FaceDetector:
        if self._detector is None:
            self._detector = make_detector(self._detector_spec[0], **self._detector_spec[1])
        return self._detector

    def _load_embedded(self) -> FaceBackend:
        return FerCnnBackend()

    def _load_transformers(self, ref: str) -> FaceBackend:
        return HubFaceBackend(ref)

    def predict_all(self, image: Any) -> list[FaceResult]:
        """Every face in the image, clearest first, each with its box and reading (empty when none is found)."""
        reading = self.predict(image, faces="all")
        if not reading.ok:
            return []
        return [FaceResult(tuple(f["box"]) if f["box"] else None,
                           ModalityReading.from_probs(self.modality, np.array([f["probabilities"][e] for e in EMOTIONS]),
                                                      coverage=reading.coverage_mask, quality=f["quality"],
                                                      model=reading.model,
                                                      extras={"box": f["box"], "plausibility": f["plausibility"]},
                                                      latency_ms=reading.latency_ms))
                for f in reading.extras["faces"]]

    def predict_batch(self, xs: Sequence[Any], **kwargs: Any) -> list[ModalityReading]:
        """Read many images; ``faces="all"`` reads every face of each image as a group (``extras["faces"]``)."""
        check_faces_mode(kwargs.get("faces", "largest"))
        return super().predict_batch(xs, **kwargs)

    def preprocess(self, x: Any, /, detect_face: bool = True, faces: str = "largest",
                   **_: Any) -> list[FaceCrop] | ModalityReading:
        """The image's face crops (clearest first; every face with ``faces="all"``)."""
        try:
            detector = self.detector if detect_face else None
        except InputError as exc:  # a detector this installation lacks (MediaPipe without its extra)
            return ModalityReading.failed(self.modality, Status.UNSUPPORTED, str(exc))
        return prepare_faces(x, detector, detect_face, faces == "all")

    def _forward(self, images: list[list[FaceCrop]], /, **_: Any) -> list[np.ndarray]:
        """Every crop of every image in one batch; per image, its crops' probabilities."""
        probs = self.backend.probabilities([c for crops in images for c in crops])
        ends = np.cumsum([len(crops) for crops in images])
        return np.split(probs, ends[:-1])

    def postprocess(self, crops: list[FaceCrop], probs: np.ndarray, /, faces: str = "largest",
                    **_: Any) -> ModalityReading:
        results = [FaceResult(c.box.as_tuple() if c.box else None, self._reading(c, p, self.backend))
                   for c, p in zip(crops, probs)]
        return group_reading(results, "; ".join(crops[0].notes)) if faces == "all" else results[0].reading

    def _reading(self, crop: FaceCrop, probs: np.ndarray, backend: FaceBackend) -> ModalityReading:
        extras: dict[str, Any] = {}
        if crop.box is not None:
            extras = {"box": crop.box.as_tuple(), "detector": crop.box.detector,
                      "detector_score": round(crop.box.score, 3), "plausibility": crop.box.plausibility}
        return ModalityReading.from_probs(self.modality, probs, coverage=backend.label_map.coverage,
                                          quality=crop.quality, message="; ".join(crop.notes), model=backend.name,
                                          extras=extras)
