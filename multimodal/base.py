"""The protocol every encoder follows, and how a ``model=`` argument is resolved."""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from abc import ABC, abstractmethod
from dataclasses import dataclass, replace
from functools import lru_cache
from pathlib import Path
from typing import Any, ClassVar, Generic, Sequence, TypeVar
from urllib.parse import urlparse

from .backbones import BackboneError
from .errors import MoodtuneError
from .reading import ModalityReading, Status

log = logging.getLogger("moodtune")

EMBEDDED_NAMES = (None, "", "default", "embedded")


class InputError(MoodtuneError, ValueError):
    """The input cannot be read; the message says why in words a user understands."""


@dataclass(frozen=True)
class ModelSpec:
    """Where a model comes from: ``embedded`` (ships with moodtune), ``local`` folder or ``hub`` id."""

    kind: str
    ref: str = ""

    @classmethod
    def parse(cls, model: str | Path | None) -> "ModelSpec":
        if model in EMBEDDED_NAMES:
            return cls("embedded")
        path = Path(str(model)).expanduser()
        if path.exists():
            if not path.is_dir():
                raise ValueError(f"model={model!r} is a file; pass a folder with a transformers model")
            return cls("local", str(path.resolve()))
        return cls("hub", str(model))


Backend = TypeVar("Backend")


@lru_cache(maxsize=1)
def hub_reachable(timeout: float = 3.0) -> bool:
    """Whether the Hugging Face hub answers a TCP connection (checked once per process; False when offline mode
    is set)."""
    if os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes"):
        return False
    host = urlparse(os.environ.get("HF_ENDPOINT") or "https://huggingface.co").hostname or "huggingface.co"
    try:
        socket.create_connection((host, 443), timeout=timeout).close()
        return True
    except OSError:
        return False


def hub_cached(ref: str) -> bool:
    """Whether a hub model's config is in the local Hugging Face cache already."""
    try:
        from huggingface_hub import try_to_load_from_cache

        return isinstance(try_to_load_from_cache(ref, "config.json"), str)
    except Exception:  # noqa: BLE001 - an id the hub library rejects is simply not cached
        return False


class Encoder(ABC, Generic[Backend]):
    """Base class: ``predict(x) -> ModalityReading`` and ``predict_batch(xs)``; never raises on bad input.

    Subclasses implement ``_load_embedded``, ``_load_transformers`` (for a hub id or local folder) and the three
    stages the base class runs: ``preprocess`` (per input) → ``_forward`` (one batch) → ``postprocess`` (per input);
    keyword arguments of ``predict`` reach every stage. Models load lazily, once, under a lock, so one encoder can
    serve many threads.
    """

    modality: ClassVar[str]
    #: the keyword options ``predict``/``predict_batch`` take (passed to every stage); any other raises TypeError
    options: ClassVar[tuple[str, ...]] = ()

    def __init__(self, model: str | Path | None = None) -> None:
        self.spec = ModelSpec.parse(model)
        self._backend: Backend | None = None
        self._load_note = ""
        self._lock = threading.Lock()

    # -- loading -------------------------------------------------------------------------------
    @property
    def backend(self) -> Backend:
        if self._backend is None:
            with self._lock:
                if self._backend is None:
                    self._backend = self._load()
        return self._backend

    def load(self) -> "Encoder[Backend]":
        """Load the model now (otherwise it loads on first use)."""
        _ = self.backend
        return self

    def _load(self) -> Backend:
        if self.spec.kind == "embedded":
            return self._load_embedded()
        try:
            if self.spec.kind == "hub" and not hub_cached(self.spec.ref) and not hub_reachable():
                # without this, transformers retries for about 50 s before it gives up
                raise OSError("the Hugging Face hub cannot be reached and the model is not in the local cache")
            return self._load_transformers(self.spec.ref)
        except Exception as exc:  # no network, unknown id, incompatible labels...
            if self.spec.kind == "local":
                raise
            self._load_note = (f"could not load {self.spec.ref!r} from the Hugging Face hub "
                               f"({type(exc).__name__}: {str(exc).splitlines()[0][:160]}); using the embedded default")
            log.warning("%s encoder: %s", self.modality, self._load_note)
            return self._load_embedded()

    @abstractmethod
    def _load_embedded(self) -> Backend: ...

    @abstractmethod
    def _load_transformers(self, ref: str) -> Backend: ...

    # -- prediction ----------------------------------------------------------------------------
    def predict(self, x: Any, **kwargs: Any) -> ModalityReading:
        """Read one input. Bad input gives a reading with a status and a message, never an exception."""
        return self.predict_batch([x], **kwargs)[0]

    def predict_batch(self, xs: Sequence[Any], **kwargs: Any) -> list[ModalityReading]:
        """Read many inputs; each gets its own reading (a bad one does not spoil the others)."""
        unknown = sorted(set(kwargs) - set(self.options))
        if unknown:  # a caller's mistake, not bad input: raise
            raise TypeError(f"{type(self).__name__}.predict got unknown option(s) {', '.join(unknown)}; it takes "
                            f"{', '.join(self.options) or 'none'}")
        t0 = time.perf_counter()
        readings: list[ModalityReading | None] = [None] * len(xs)
        todo = []
        for i, x in enumerate(xs):
            if x is None:
                readings[i] = ModalityReading.failed(self.modality, Status.MISSING, f"no {self.modality} given")
            else:
                todo.append(i)
        if todo:
            try:
                outs = self._predict_many([xs[i] for i in todo], **kwargs)
            except (BackboneError, FileNotFoundError) as exc:
                outs = [ModalityReading.failed(self.modality, Status.UNSUPPORTED, str(exc))] * len(todo)
            except Exception as exc:  # noqa: BLE001 - a failing model must not take the request down
                if len(todo) > 1:  # read each item alone, so that one bad input fails alone
                    outs = [self.predict_batch([xs[i]], **kwargs)[0] for i in todo]
                else:
                    log.error("%s encoder failed: %s", self.modality, type(exc).__name__)
                    outs = [ModalityReading.failed(self.modality, Status.ERROR,
                                                   f"the {self.modality} model failed ({type(exc).__name__}: {exc})")]
            for i, reading in zip(todo, outs):
                readings[i] = reading
        per_item = round((time.perf_counter() - t0) * 1000 / max(len(xs), 1), 2)
        return [self._finished(r, per_item) for r in readings if r is not None]

    def _finished(self, r: ModalityReading, latency_ms: float) -> ModalityReading:
        """The reading with its latency, and the note about a model that could not load, if any."""
        message = r.message
        if self._load_note and self._load_note not in message:
            message = f"{message} ({self._load_note})" if message else self._load_note
        return replace(r, latency_ms=latency_ms, message=message)

    def _predict_many(self, xs: list[Any], **kwargs: Any) -> list[ModalityReading]:
        """The fixed stages for non-None inputs: :meth:`preprocess` each (an input it cannot read becomes its own
        failed reading), :meth:`_forward` the rest in one batch, :meth:`postprocess` each into a reading."""
        prepared = [guard(self.modality, lambda x: self.preprocess(x, **kwargs), x) for x in xs]
        good = [p for p in prepared if not isinstance(p, ModalityReading)]
        outputs = iter(self._forward(good, **kwargs) if good else ())
        return [replace(p, modality=self.modality) if isinstance(p, ModalityReading)
                else self.postprocess(p, next(outputs), **kwargs) for p in prepared]

    @abstractmethod
    def preprocess(self, x: Any, /, **kwargs: Any) -> Any:
        """One input → what the model reads, or a failed :class:`ModalityReading` that says why it cannot (raising
        :class:`InputError` does the same)."""

    @abstractmethod
    def _forward(self, items: list[Any], /, **kwargs: Any) -> Sequence[Any]:
        """Run the model once over the preprocessed items; one output per item, in order."""

    @abstractmethod
    def postprocess(self, item: Any, output: Any, /, **kwargs: Any) -> ModalityReading:
        """One item and its model output → its reading."""


def guard(modality: str, fn, x: Any) -> Any:
    """Run ``fn(x)``; turn an :class:`InputError` into an ``invalid`` reading."""
    try:
        return fn(x)
    except InputError as exc:
        return ModalityReading.failed(modality, Status.INVALID, str(exc))
