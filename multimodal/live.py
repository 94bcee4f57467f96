"""Live mode: a webcam and/or microphone read in a loop, with readings smoothed over time."""

from __future__ import annotations

import queue
import threading
import time
from dataclasses import dataclass, field
from typing import Callable, Iterator

import numpy as np

from .labels import EMOTIONS
from .reading import ModalityReading


@dataclass
class EmaSmoother:
    """Exponential moving average of probabilities over frames; frames without a reading decay it."""

    alpha: float = 0.35
    probs: np.ndarray | None = None
    last_ok: ModalityReading | None = field(default=None, repr=False)

    def update(self, reading: ModalityReading) -> dict[str, float] | None:
        if reading.ok:
            self.last_ok = reading
            v = reading.vector
            self.probs = v if self.probs is None else (1 - self.alpha) * self.probs + self.alpha * v
        return None if self.probs is None else dict(zip(EMOTIONS, self.probs.tolist()))

    def label(self) -> str:
        if self.probs is None:
            return "…"
        i = int(np.argmax(self.probs))
        return f"{EMOTIONS[i]} {self.probs[i]:.0%}"


def open_camera(index: int = 0):
    """An OpenCV capture device; raises RuntimeError with advice when it cannot be opened."""
    import cv2

    cap = cv2.VideoCapture(index)
    if not cap.isOpened():
        raise RuntimeError(f"camera {index} could not be opened (is a webcam connected and allowed?)")
    return cap


def _has_display() -> bool:
    import cv2

    try:
        cv2.namedWindow("moodtune")
        return True
    except cv2.error:
        return False  # opencv-python-headless has no windows: print the label instead


def draw(frame_bgr: np.ndarray, reading: ModalityReading, label: str) -> np.ndarray:
    import cv2

    out = frame_bgr.copy()
    box = reading.extras.get("box")
    if box:
        x, y, w, h = box
        cv2.rectangle(out, (x, y), (x + w, y + h), (80, 220, 80), 2)
        cv2.putText(out, label, (x, max(20, y - 8)), cv2.FONT_HERSHEY_SIMPLEX, 0.7, (80, 220, 80), 2)
    return out


def camera_loop(face_encoder, capture, *, smoother: EmaSmoother | None = None, max_frames: int | None = None,
                every_s: float = 0.0, show: bool | None = None,
                emit: Callable[[str], None] = print) -> Iterator[tuple[ModalityReading, str]]:
    """Read frames, classify, smooth; draw a window when there is a display, else emit a rolling label.

    ``capture`` is anything with ``read() -> (ok, frame_bgr)`` and ``release()`` (cv2.VideoCapture or a fake).
    Yields (reading, smoothed label) per frame. Frames are never written anywhere.
    """
    import cv2

    smoother = smoother or EmaSmoother()
    show = _has_display() if show is None else show
    frames = 0
    try:
        while max_frames is None or frames < max_frames:
            ok, frame = capture.read()
            if not ok or frame is None:
                emit("camera: no more frames")
                break
            frames += 1
            reading = face_encoder.predict(cv2.cvtColor(frame, cv2.COLOR_BGR2RGB))
            smoother.update(reading)
            label = smoother.label() if reading.ok else f"{smoother.label()} ({reading.status})"
            if show:
                cv2.imshow("moodtune", draw(frame, reading, label))
                if cv2.waitKey(1) & 0xFF in (ord("q"), 27):
                    break
            else:
                emit(f"face: {label}")
            yield reading, label
            if every_s:
                time.sleep(every_s)
    finally:
        capture.release()
        if show:
            cv2.destroyAllWindows()


def open_microphone(sample_rate: int = 16_000, block_s: float = 0.5):
    """A sounddevice input stream and its queue of blocks; clear advice when PortAudio or a device is missing."""
    try:
        import sounddevice as sd
    except OSError as exc:  # the PortAudio library is missing
        raise RuntimeError("the microphone needs the PortAudio library: sudo apt-get install libportaudio2 "
                           f"(or your system's equivalent) ({exc})") from exc
    except ImportError as exc:
        raise RuntimeError("the microphone needs sounddevice: pip install 'moodtune[mic]' "
                           "(and the PortAudio library, e.g. apt-get install libportaudio2)") from exc
    blocks: queue.Queue[np.ndarray] = queue.Queue(maxsize=200)

    def callback(indata, frames, time_info, status):  # noqa: ARG001 - sounddevice's signature
        try:
            blocks.put_nowait(indata[:, 0].copy())
        except queue.Full:
            pass

    try:
        stream = sd.InputStream(samplerate=sample_rate, channels=1, dtype="float32",
                                blocksize=int(sample_rate * block_s), callback=callback)
    except Exception as exc:  # noqa: BLE001 - PortAudioError and friends
        raise RuntimeError(f"no usable microphone ({exc}); check that one is connected and allowed") from exc
    return stream, blocks


def microphone_loop(voice_encoder, stream, blocks: "queue.Queue[np.ndarray]", *, sample_rate: int = 16_000,
                    window_s: float = 4.0, hop_s: float = 2.0, max_windows: int | None = None,
                    stop: threading.Event | None = None,
                    emit: Callable[[str], None] = print) -> Iterator[ModalityReading]:
    """Rolling windows of microphone audio → voice readings (audio stays in memory only)."""
    buf = np.zeros(0, np.float32)
    windows = 0
    stream.start()
    try:
        while (max_windows is None or windows < max_windows) and not (stop and stop.is_set()):
            try:
                buf = np.concatenate([buf, blocks.get(timeout=5.0)])
            except queue.Empty:
                emit("microphone: no audio is arriving")
                break
            if len(buf) >= window_s * sample_rate:
                reading = voice_encoder.predict((sample_rate, buf[-int(window_s * sample_rate):]))
                windows += 1
                said = reading.extras.get("transcript", "")
                emit(f"voice: {reading.top_emotion or reading.status}" + (f' — "{said}"' if said else "")
                     + ("" if reading.ok else f" ({reading.message})"))
                yield reading
                buf = buf[int(hop_s * sample_rate):]
    finally:
        stream.stop()
        stream.close()

