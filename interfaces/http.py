"""moodtune's HTTP API (FastAPI): ``moodtune serve``, or ``uvicorn --factory interfaces.http:create_app``.

Requests are stateless: the session (likes, skips) and the user's calibration (corrections) travel in each request
and response, so any worker or replica can answer any call. A bad image or audio is that signal's status inside a 200 mood; 422 is for a malformed request,
413 for a body over the limit, 503 (with ``Retry-After``) when this process's queue is full. Off loopback, set
``MOODTUNE_API_KEY`` and send ``Authorization: Bearer <key>``. TLS belongs to a reverse proxy in front.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hmac
import json
import os
import socket
import threading
from types import SimpleNamespace
from typing import Any, Literal

from fastapi import Depends, FastAPI, HTTPException, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from starlette.datastructures import UploadFile  # what request.form() gives (FastAPI's is a subclass)

MAX_BODY_BYTES = 30 * 1024 * 1024  # a 25 MB upload plus the form around it
# Requests waiting for the models in this process beyond those running: a mixed request takes 0.1-1 s of the 2
# model threads, so a full queue waits about 15 s; beyond it, 503 with Retry-After.
MAX_QUEUE = 32
MAX_TRACKS = 50


class SessionData(BaseModel):
    offsets: dict[str, float] = Field(default_factory=dict)
    liked: list[str] = Field(default_factory=list)
    skipped: list[str] = Field(default_factory=list)


class TrackData(BaseModel):
    id: str
    name: str
    artist: str
    genre: str = ""
    features: dict[str, float]
    score: float = 0.0
    explanation: str = ""
    spotify_url: str | None = None


class AnalyzeJSON(BaseModel):
    image_b64: str | None = None
    audio_b64: str | None = None
    text: str | None = None
    n: int = Field(10, ge=0, le=MAX_TRACKS)
    strategy: Literal["match", "uplift"] = "match"
    session: SessionData | None = None
    catalog: str | None = None
    faces: Literal["largest", "all"] = "largest"
    calibration: dict[str, Any] | None = Field(None, description="the user's calibration from /v1/correct")


class AnalyzeResponse(BaseModel):
    mood: dict[str, Any]
    tracks: list[TrackData]
    session: SessionData


class RecommendRequest(BaseModel):
    mood: dict[str, Any]
    n: int = Field(10, ge=0, le=MAX_TRACKS)
    strategy: Literal["match", "uplift"] = "match"
    session: SessionData | None = None
    catalog: str | None = None


class RecommendResponse(BaseModel):
    tracks: list[TrackData]
    session: SessionData


class FeedbackRequest(BaseModel):
    session: SessionData | None = None
    track: TrackData
    kind: Literal["like", "skip"]
    mood: dict[str, Any] | None = Field(None, description="the mood the list was made for (its valence and arousal "
                                                          "anchor the move); without it the last list's target is "
                                                          "taken as neutral")


class FeedbackResponse(BaseModel):
    session: SessionData


class CorrectRequest(BaseModel):
    mood: dict[str, Any] = Field(description="the mood from /v1/analyze the user corrects")
    emotion: Literal["angry", "disgust", "fear", "happy", "sad", "surprise", "neutral"]
    calibration: dict[str, Any] | None = Field(None, description="the user's calibration so far (from an earlier "
                                                                 "/v1/correct); the client keeps it, like the session")


class CorrectResponse(BaseModel):
    calibration: dict[str, Any]
    learned: list[str]


def _keep_uploads_in_memory() -> None:
    """Starlette spools a multipart file over 1 MB to a temp file on disk; moodtune keeps uploads in memory."""
    from starlette.formparsers import MultiPartParser

    MultiPartParser.spool_max_size = max(MultiPartParser.spool_max_size, MAX_BODY_BYTES)


def _public(track: Any) -> dict[str, Any]:
    """A track as clients see it: no local file path (library scans keep one in ``extras``)."""
    d = track.to_dict()
    d.pop("extras", None)
    return d


def create_app(engine: Any = None, *, warm: bool = True, max_queue: int = MAX_QUEUE) -> FastAPI:
    """The API around ``engine`` (default: a new ``MoodEngine(workers=2, threads=1)``, warmed at startup)."""
    from fusion import Calibration, MoodEngine, MoodReading, Profile
    from multimodal.errors import MoodtuneError
    from recommend import EMBEDDED, Session, Track, load_catalog, user_catalogs

    _keep_uploads_in_memory()
    state: dict[str, Any] = {"ready": False}
    slots = threading.BoundedSemaphore(max_queue + (getattr(engine, "workers", None) or 2))
    api_key = os.environ.get("MOODTUNE_API_KEY")

    async def lifespan(app: FastAPI):  # each worker process warms its own models before it answers
        state["engine"] = engine or MoodEngine(workers=2, threads=1)
        if warm:
            await asyncio.to_thread(state["engine"].warmup)
        state["ready"] = True
        yield
        state["engine"].close()

    app = FastAPI(title="moodtune", version="1", lifespan=lifespan,
                  description="Mood from face, voice and words, and music that fits it. Runs on your machine.")
    worker = f"{socket.gethostname()}:{os.getpid()}"

    @app.middleware("http")
    async def name_the_worker(request: Request, call_next: Any) -> Any:
        response = await call_next(request)
        response.headers["X-Moodtune-Worker"] = worker  # which process answered (replicas, uvicorn workers)
        return response

    async def guard(request: Request) -> None:
        if api_key and not hmac.compare_digest(request.headers.get("authorization", ""), f"Bearer {api_key}"):
            raise HTTPException(401, "send Authorization: Bearer <MOODTUNE_API_KEY>")
        length = request.headers.get("content-length")
        if length is not None and length.isdigit() and int(length) > MAX_BODY_BYTES:
            raise HTTPException(413, f"the request is larger than {MAX_BODY_BYTES // 2**20} MB")

    async def run(fn: Any, *args: Any, **kw: Any) -> Any:
        if not slots.acquire(blocking=False):
            raise HTTPException(503, "busy: too many requests are waiting; retry shortly", headers={"Retry-After": "2"})
        try:
            return await asyncio.to_thread(fn, *args, **kw)
        finally:
            slots.release()

    def catalog_of(name: str | None) -> Any:
        if name in (None, "", EMBEDDED):
            return None  # the engine's own (on Ray, the replica's copy from the object store)
        try:
            return load_catalog(name)
        except MoodtuneError as exc:
            raise HTTPException(422, str(exc)) from exc

    def session_of(data: SessionData | None) -> Any:
        return Session.from_dict(data.model_dump()) if data else Session()

    def mood_of(data: dict[str, Any]) -> Any:
        try:
            return MoodReading.from_dict(data)
        except (KeyError, ValueError, TypeError, AttributeError) as exc:
            raise HTTPException(422, f"not a mood from /v1/analyze: {exc}") from exc

    def analyze_and_rank(image: bytes | None, audio: bytes | None, fields: AnalyzeJSON) -> dict[str, Any]:
        eng = state["engine"]
        session = session_of(fields.session)
        profile = Profile(session, Calibration.from_dict(fields.calibration)) if fields.calibration else None
        n, strategy, catalog = fields.n, fields.strategy, catalog_of(fields.catalog)
        mood = eng.analyze(image=image, audio=audio, text=fields.text, faces=fields.faces, profile=profile)
        tracks = eng.recommend(mood, n=n, strategy=strategy, session=session, catalog=catalog) if mood.ok else []
        return {"mood": mood.to_dict(), "tracks": [_public(t) for t in tracks], "session": session.to_dict()}

    @app.get("/healthz")
    async def healthz() -> JSONResponse:
        return JSONResponse({"ready": state["ready"]}, status_code=200 if state["ready"] else 503)

    @app.get("/v1/catalogs", dependencies=[Depends(guard)])
    async def catalogs() -> dict[str, list[str]]:
        return {"catalogs": user_catalogs()}

    @app.post("/v1/analyze", response_model=AnalyzeResponse, dependencies=[Depends(guard)])
    async def analyze(request: Request) -> dict[str, Any]:
        if request.headers.get("content-type", "").startswith("application/json"):
            try:
                body = AnalyzeJSON.model_validate_json(await request.body())
                image = base64.b64decode(body.image_b64, validate=True) if body.image_b64 else None
                audio = base64.b64decode(body.audio_b64, validate=True) if body.audio_b64 else None
            except (ValueError, binascii.Error) as exc:
                raise HTTPException(422, f"malformed request: {exc}") from exc
            fields = body
        else:
            # parts stay in memory up to the body limit (_keep_uploads_in_memory)
            form = await request.form(max_files=2, max_fields=10, max_part_size=MAX_BODY_BYTES)
            try:
                files = {k: v for k, v in form.items() if isinstance(v, UploadFile)}
                text = {k: v for k, v in form.items() if isinstance(v, str)}  # a file sent as a field is ignored
                image = await files["image"].read() if "image" in files else None
                audio = await files["audio"].read() if "audio" in files else None
                fields = AnalyzeJSON.model_validate({
                    "text": text.get("text") or None, "n": text.get("n", 10), "strategy": text.get("strategy", "match"),
                    "catalog": text.get("catalog") or None, "faces": text.get("faces", "largest"),
                    "session": json.loads(text["session"]) if text.get("session") else None,
                    "calibration": json.loads(text["calibration"]) if text.get("calibration") else None})
            except (ValueError, TypeError) as exc:
                raise HTTPException(422, f"malformed request: {exc}") from exc
            finally:
                await form.close()
        return await run(analyze_and_rank, image, audio, fields)

    @app.post("/v1/recommend", response_model=RecommendResponse, dependencies=[Depends(guard)])
    async def recommend(body: RecommendRequest) -> dict[str, Any]:
        mood = mood_of(body.mood)
        session = session_of(body.session)
        tracks = await run(state["engine"].recommend, mood, n=body.n, strategy=body.strategy, session=session,
                           catalog=catalog_of(body.catalog))
        return {"tracks": [_public(t) for t in tracks], "session": session.to_dict()}

    @app.post("/v1/feedback", response_model=FeedbackResponse, dependencies=[Depends(guard)])
    async def feedback(body: FeedbackRequest) -> dict[str, Any]:
        session = session_of(body.session)
        track = Track.from_dict(body.track.model_dump())
        anchor = body.mood or {"valence": 0.0, "arousal": 0.0}
        try:
            mood = SimpleNamespace(valence=float(anchor["valence"]), arousal=float(anchor["arousal"]))
        except (KeyError, ValueError, TypeError) as exc:
            raise HTTPException(422, f"the mood needs valence and arousal: {exc}") from exc
        new = session.like(track, mood) if body.kind == "like" else session.skip(track, mood)
        return {"session": new.to_dict()}

    @app.post("/v1/correct", response_model=CorrectResponse, dependencies=[Depends(guard)])
    async def correct(body: CorrectRequest) -> dict[str, Any]:
        """The user says the mood was really ``emotion``: their calibration with it learned (nothing is kept here)."""
        mood = mood_of(body.mood)
        calibration = Calibration.from_dict(body.calibration) if body.calibration else Calibration()
        profile = await run(state["engine"].correct, mood, body.emotion, Profile(calibration=calibration))
        return {"calibration": profile.calibration.to_dict(), "learned": profile.calibration.explain()}

    @app.exception_handler(MoodtuneError)
    async def moodtune_error(_: Request, exc: MoodtuneError) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=422)

    return app
