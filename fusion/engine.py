"""The engine that runs everything: inputs → encoders → readings → fusion → mood → tracks."""

from __future__ import annotations

import threading
from dataclasses import replace
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Callable, Mapping, TypeVar

import numpy as np

from multimodal import FaceEncoder, TextEncoder, VoiceEncoder
from multimodal.face import check_faces_mode
from multimodal.reading import ModalityReading, Status
from multimodal.runtime import set_math_threads
from recommend import Catalog, Session, Track, load_catalog, recommend_tracks

from .late import LateFusion
from .mood import MoodReading
from .profile import Profile

T = TypeVar("T")


class MoodEngine:
    """One facade for the whole job.

    >>> engine = MoodEngine()
    >>> mood = engine.analyze(text="I finally passed my exam!")
    >>> tracks = engine.recommend(mood, n=10, strategy="uplift")

    ``face``/``voice``/``text`` take a model reference (None: the embedded default; a Hugging Face id or a
    local folder) or a ready encoder. Models load lazily, once, thread-safely. ``catalog`` is a
    :class:`recommend.Catalog`, a CSV path or an imported catalog's name (default: the embedded catalog). ``fusion`` is a
    :class:`fusion.LateFusion` (e.g. one you fitted) or the name of a method ("linear", "poe").

    ``workers``: run the models on a fixed pool of that many threads instead of the caller's thread. A server
    that calls from many threads (Gradio's worker pool has 40) should set it: torch and CTranslate2 keep
    buffers per calling thread, and without a fixed pool the process's memory grows with every new thread.
    ``threads``: the math threads each model call may use (ONNX Runtime, CTranslate2, torch; process-wide, set
    before the models load). Under other load on the same cores, 1 per pool thread is much faster than 2.
    ``warmup()`` loads every model up front; ``close()`` (or ``with``) stops the pool.
    """

    def __init__(self, *, face: Any = None, voice: Any = None, text: Any = None,
                 catalog: Catalog | str | Path | None = None, fusion: LateFusion | str = "linear",
                 priors: Mapping[str, float] | None = None, transcribe: bool = True,
                 workers: int | None = None, threads: int | None = None) -> None:
        if threads is not None:  # before any model loads: ONNX Runtime and CTranslate2 fix theirs at load
            set_math_threads(threads)
        self.face = face if isinstance(face, FaceEncoder) else FaceEncoder(face)
        self.voice = voice if isinstance(voice, VoiceEncoder) else VoiceEncoder(voice, transcribe=transcribe)
        self.text = text if isinstance(text, TextEncoder) else TextEncoder(text)
        if isinstance(fusion, LateFusion) and priors is not None:
            raise ValueError("pass priors to your LateFusion, or pass fusion as a method name with priors=; "
                             "both together would ignore one of them")
        self.fusion = fusion if isinstance(fusion, LateFusion) else LateFusion(method=fusion, priors=priors)
        self._catalog_ref = catalog
        self._catalog: Catalog | None = catalog if isinstance(catalog, Catalog) else None
        self._lock = threading.Lock()
        self.workers = workers
        self._pool: ThreadPoolExecutor | None = None

    def _submit(self, fn: Callable[..., T], *args: Any, **kw: Any) -> T:
        """Run ``fn`` on the engine's worker threads (or here, without ``workers``)."""
        if not self.workers:
            return fn(*args, **kw)
        if self._pool is None:
            with self._lock:
                if self._pool is None:
                    self._pool = ThreadPoolExecutor(self.workers, thread_name_prefix="moodtune-model")
        return self._pool.submit(fn, *args, **kw).result()

    def warmup(self) -> dict[str, float]:
        """Load every model and run one input through each (a health check can then tell a ready process);
        returns the seconds each signal took."""
        import time

        rate = 16_000
        t = np.arange(3 * rate) / rate
        # a voiced 150 Hz tone with harmonics and a 4 Hz syllable rhythm: speech detection passes it to the model
        voiced = sum(np.sin(2 * np.pi * 150 * k * t) / k for k in range(1, 6)) * (0.55 + 0.45 * np.sin(2 * np.pi * 4 * t))
        face = np.zeros((48, 48), np.uint8)
        face[12:20, 10:18] = face[12:20, 30:38] = 200  # two "eyes": not blank, so the face model runs
        inputs: dict[str, tuple[FaceEncoder | VoiceEncoder | TextEncoder, Any]] = {
            "face": (self.face, face), "voice": (self.voice, (rate, (0.3 * voiced).astype(np.float32))),
            "text": (self.text, "warming up")}
        seconds = {}
        for name, (encoder, x) in inputs.items():
            start = time.perf_counter()
            self._submit(encoder.predict, x)
            seconds[name] = time.perf_counter() - start
        return seconds

    def close(self) -> None:
        """Stop the worker threads (with ``workers``); the engine can still be used afterwards, on new threads."""
        with self._lock:
            pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=True)

    def __enter__(self) -> "MoodEngine":
        return self

    def __exit__(self, *_: Any) -> None:
        self.close()

    @property
    def catalog(self) -> Catalog:
        if self._catalog is None:
            with self._lock:
                if self._catalog is None:
                    ref = self._catalog_ref
                    assert not isinstance(ref, Catalog)  # a Catalog given to __init__ is _catalog already
                    self._catalog = load_catalog(ref)
        return self._catalog

    def read(self, image: Any = None, audio: Any = None, text: Any = None, *,
             detect_face: bool = True, faces: str = "largest") -> dict[str, ModalityReading]:
        """Each signal's reading (missing signals get status ``missing``)."""
        check_faces_mode(faces)  # before the voice and text work, not after it
        return self._submit(self._read, image, audio, text, detect_face=detect_face, faces=faces)

    def _read(self, image: Any, audio: Any, text: Any, *, detect_face: bool,
              faces: str) -> dict[str, ModalityReading]:
        voice = self.voice.predict(audio)
        transcript = voice.extras.get("transcript", "")
        problem = voice.extras.get("transcript_problem", "")
        heard = transcript if voice.ok and transcript.strip() and not problem else None
        # typed and spoken words in one batch of the same text model; the transcript is a separate signal in fusion
        typed, said = self.text.predict_batch([text, heard]) if heard else (self.text.predict(text), None)
        readings = {"face": self.face.predict(image, detect_face=detect_face, faces=faces), "voice": voice,
                    "text": typed}
        if said is not None:
            note = voice.extras.get("transcript_note", "")
            readings["speech_text"] = replace(said, modality="speech_text",
                                              message="; ".join(m for m in (said.message, note) if m))
        elif problem and transcript.strip():  # heard, but Whisper's own guards reject it: shown, given no weight
            readings["speech_text"] = ModalityReading.failed(
                "speech_text", Status.UNRELIABLE, f"the words heard (“{transcript}”) were not used: {problem}")
        elif audio is not None:
            readings["speech_text"] = ModalityReading.failed(
                "speech_text", Status.MISSING, "no words were recognised in the audio")
        return readings

    def analyze(self, image: Any = None, audio: Any = None, text: Any = None, *,
                detect_face: bool = True, faces: str = "largest", profile: Profile | None = None) -> MoodReading:
        """Read every given signal and fuse them into one mood. Never raises on bad input.

        ``faces="all"`` reads every face in the image and lets the group's mood (the faces' distributions
        weighted by box area × confidence) stand for the face signal; ``mood.faces`` lists each face.
        ``profile``: a user's :class:`Profile`; its calibration (learned from :meth:`correct`) adjusts the readings,
        less the corrections made for an older model of a signal (``mood.extras["calibration_note"]`` says so).
        """
        readings = self.read(image, audio, text, detect_face=detect_face, faces=faces)
        if profile is None:
            return self.fusion.fuse(readings)
        # corrections made for an older model of a signal read here teach nothing about this one
        calibration, dropped = profile.calibration.for_models({m: r.model for m, r in readings.items() if r.ok})
        mood = self.fusion.fuse(readings, calibration=calibration)
        return replace(mood, extras={**mood.extras, "calibration_note": dropped}) if dropped else mood

    def correct(self, mood: MoodReading, emotion: str, profile: Profile | None = None) -> Profile:
        """The user says ``mood`` was really ``emotion``: their profile with the correction learned (a new
        profile; nothing is stored unless it is saved). :class:`CalibrationError` for an unknown emotion or a
        mood that used no signal."""
        profile = profile or Profile()
        return replace(profile, calibration=profile.calibration.corrected(mood.readings, mood.weights, emotion))

    def recommend(self, mood: MoodReading, n: int = 10, strategy: str = "match",
                  catalog: Catalog | None = None, session: Session | None = None, **kw: Any) -> list[Track]:
        """Tracks whose audio features fit the mood (``match``) or lead it somewhere better (``uplift``)."""
        return recommend_tracks(mood.valence, mood.arousal, catalog or self.catalog, n=n, strategy=strategy,
                                session=session, **kw)


_default_engine: MoodEngine | None = None
_default_lock = threading.Lock()


def default_engine() -> MoodEngine:
    """A process-wide engine on the embedded defaults, created on first use."""
    global _default_engine
    with _default_lock:
        if _default_engine is None:
            _default_engine = MoodEngine()
    return _default_engine


def analyze(image: Any = None, audio: Any = None, text: Any = None, **kw: Any) -> MoodReading:
    """``MoodEngine().analyze`` on a shared default engine."""
    return default_engine().analyze(image=image, audio=audio, text=text, **kw)


def recommend(mood: MoodReading, n: int = 10, strategy: str = "match", **kw: Any) -> list[Track]:
    """``MoodEngine().recommend`` on a shared default engine."""
    return default_engine().recommend(mood, n=n, strategy=strategy, **kw)
