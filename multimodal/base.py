"""The protocol every encoder follows, and how a ``model=`` argument is resolved."""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from abc import ABC, abstractmethod
from dataclasses import dataclass
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

    Subclasses implement ``_load_embedded``, ``_load_transformers`` (for a hub id or local folder) and
    ``_predict_many``. Models load lazily, once, under a lock, so one encoder can serve many threads.
    """

    modality: ClassVar[str]

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
        per_item = (time.perf_counter() - t0) * 1000 / max(len(xs), 1)
        for r in readings:
            assert r is not None
            r.latency_ms = round(per_item, 2)
            if self._load_note and self._load_note not in r.message:
                r.message = f"{r.message} ({self._load_note})" if r.message else self._load_note
        return readings  # type: ignore[return-value]

    @abstractmethod
    def _predict_many(self, xs: list[Any], **kwargs: Any) -> list[ModalityReading]:
        """Read non-None inputs; wrap per-item input problems into readings (use :func:`guard`)."""


def guard(modality: str, fn, x: Any) -> Any:
    """Run ``fn(x)``; turn an :class:`InputError` into an ``invalid`` reading."""
    try:
        return fn(x)
    except InputError as exc:
        return ModalityReading.failed(modality, Status.INVALID, str(exc))
