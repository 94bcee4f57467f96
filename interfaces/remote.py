"""A running moodtune service, used like a local engine: the demo's ``--backend http://host:port``.

:class:`RemoteEngine` has the part of :class:`fusion.MoodEngine`'s API the demo uses (``analyze``, ``read``,
``recommend``, ``correct``, ``catalogs``) and calls the HTTP API for each, so one demo can sit in front of many
replicas. The session and the calibration travel with each call, as they do for any client.
"""

from __future__ import annotations

import json
import os
from typing import Any

import httpx
import numpy as np

from fusion import Calibration, MoodReading, Profile
from multimodal.errors import MoodtuneError
from recommend import Session, Track


class BackendError(MoodtuneError, RuntimeError):
    """The service did not answer, or answered with an error."""


def _as_upload(x: Any, kind: str) -> bytes | None:
    """Bytes to upload: bytes as they are, a path read, an image array encoded as PNG, audio as WAV."""
    if x is None or isinstance(x, bytes):
        return x
    if isinstance(x, (str, os.PathLike)):
        with open(x, "rb") as f:
            return f.read()
    if kind == "image" and isinstance(x, np.ndarray):
        import cv2

        ok, png = cv2.imencode(".png", x[..., ::-1] if x.ndim == 3 and x.shape[2] == 3 else x)
        if ok:
            return png.tobytes()
    if kind == "audio" and isinstance(x, tuple) and len(x) == 2:
        import io

        import soundfile as sf

        buf = io.BytesIO()
        sf.write(buf, np.asarray(x[1], dtype=np.float32), int(x[0]), format="WAV")
        return buf.getvalue()
    raise BackendError(f"cannot send a {type(x).__name__} as the {kind}; give bytes or a file path")


class RemoteEngine:
    """The engine of a moodtune service at ``url`` (``MOODTUNE_API_KEY`` is sent when set)."""

    def __init__(self, url: str, timeout: float = 120.0, api_key: str | None = None) -> None:
        self.url = url.rstrip("/")
        key = api_key or os.environ.get("MOODTUNE_API_KEY")
        self._client = httpx.Client(base_url=self.url, timeout=timeout,
                                    headers={"Authorization": f"Bearer {key}"} if key else {})

    def _post(self, path: str, **kw: Any) -> dict[str, Any]:
        try:
            r = self._client.post(path, **kw)
        except httpx.HTTPError as exc:
            raise BackendError(f"the moodtune service at {self.url} did not answer ({type(exc).__name__})") from exc
        if r.status_code != 200:
            try:
                detail = r.json().get("detail", r.text)
            except ValueError:
                detail = r.text
            raise BackendError(f"the moodtune service answered {r.status_code}: {str(detail)[:300]}")
        return r.json()

    def ready(self) -> bool:
        try:
            return self._client.get("/healthz").status_code == 200
        except httpx.HTTPError:
            return False

    def catalogs(self) -> list[str]:
        try:
            return list(self._client.get("/v1/catalogs").json()["catalogs"])
        except (httpx.HTTPError, ValueError, KeyError) as exc:
            raise BackendError(f"the moodtune service at {self.url} did not list its catalogs") from exc

    def analyze(self, image: Any = None, audio: Any = None, text: Any = None, *, faces: str = "largest",
                profile: Profile | None = None, **_: Any) -> MoodReading:
        files = {k: (k, data, "application/octet-stream")
                 for k, data in (("image", _as_upload(image, "image")), ("audio", _as_upload(audio, "audio")))
                 if data is not None}
        form = {"text": text or "", "n": "0", "faces": faces}
        if profile is not None and profile.calibration:
            form["calibration"] = json.dumps(profile.calibration.to_dict())
        return MoodReading.from_dict(self._post("/v1/analyze", data=form, files=files or None)["mood"])

    def read(self, image: Any = None, audio: Any = None, text: Any = None, **kw: Any) -> dict[str, Any]:
        return self.analyze(image, audio, text, **kw).readings

    def recommend(self, mood: MoodReading, n: int = 10, strategy: str = "match", catalog: Any = None,
                  session: Session | None = None, allow_explicit: bool = False, **_: Any) -> list[Track]:
        body = {"mood": mood.to_dict(), "n": n, "strategy": strategy, "catalog": catalog if isinstance(catalog, str)
                else None, "session": session.to_dict() if session else None, "explicit": allow_explicit}
        return [Track.from_dict(t) for t in self._post("/v1/recommend", json=body)["tracks"]]

    def correct(self, mood: MoodReading, emotion: str, profile: Profile | None = None) -> Profile:
        profile = profile or Profile()
        body = {"mood": mood.to_dict(), "emotion": emotion, "calibration": profile.calibration.to_dict()}
        calibration = Calibration.from_dict(self._post("/v1/correct", json=body)["calibration"])
        return Profile(profile.session, calibration)

    def warmup(self) -> dict[str, float]:
        return {}

    def close(self) -> None:
        self._client.close()

    def __enter__(self) -> "RemoteEngine":
        return self

    def __exit__(self, *_: Any) -> None:
        self.close()
