"""moodtune's HTTP API (FastAPI): ``moodtune serve``, or ``uvicorn --factory interfaces.http:serving_app``.

Requests are stateless: the session (likes, skips) and the user's calibration (corrections) travel in each request
and response, so any worker or replica can answer any call. A bad image or audio is that signal's status inside a 200
mood; 422 is for a malformed or out-of-bounds request (pydantic models with bounds: finite numbers, known signals,
emotions and features, sizes), 413 for a body over the limit (counted as it arrives), 408 for a body that does not
arrive in time, 503 (with ``Retry-After``) when this process's queue is full or, at ``/healthz``, while the models
load. Catalogs are named, never given as paths. Off loopback, set ``MOODTUNE_API_KEY`` and send
``Authorization: Bearer <key>``. TLS belongs to a reverse proxy in front.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hmac
import logging
import os
import socket
import threading
from types import SimpleNamespace
from typing import Annotated, Any, Literal

from fastapi import Depends, FastAPI, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator
from starlette.datastructures import UploadFile  # what request.form() gives (FastAPI's is a subclass)
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import ClientDisconnect
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from fusion.calibration import MAX_CORRECTIONS, SIGNALS
from multimodal.labels import EMOTIONS
from recommend.catalog import FEATURES
from recommend.session import MAX_IDS

MAX_BODY_BYTES = 30 * 1024 * 1024  # a 25 MB upload plus the form around it; counted as it arrives (chunked too)
#: /v1/recommend, /v1/feedback, /v1/correct carry a mood, a session and a calibration (200 corrections: ~100 kB);
#: a small limit keeps their JSON, which is parsed on the event loop, small.
MAX_SMALL_BODY_BYTES = 1024 * 1024
BODY_DEADLINE_S = 30.0  # a body not fully sent by then is dropped (408): slow clients cannot hold a connection
# Requests waiting for the models in this process beyond those running: a mixed request takes 0.1-1 s of the 2
# model threads, so a full queue waits about 15 s; beyond it, 503 with Retry-After.
MAX_QUEUE = 32
MAX_TRACKS = 50
FORM_FIELDS = frozenset({"text", "n", "strategy", "catalog", "faces", "session", "calibration", "image", "audio",
                         "explicit"})
log = logging.getLogger("moodtune.http")

Emotion = Literal["angry", "disgust", "fear", "happy", "sad", "surprise", "neutral"]
Signal = Literal["face", "voice", "text", "speech_text"]
Feature = Literal["valence", "energy", "danceability", "tempo", "acousticness", "mode"]
Unit = Annotated[float, Field(ge=0.0, le=1.0)]
Signed = Annotated[float, Field(ge=-1.0, le=1.0)]
Id = Annotated[str, Field(max_length=200)]
Words = Annotated[str, Field(max_length=2000)]
assert set(Emotion.__args__) == set(EMOTIONS) and set(Signal.__args__) == set(SIGNALS)  # type: ignore[attr-defined]
assert set(Feature.__args__) == set(FEATURES)  # type: ignore[attr-defined]


class Finite(BaseModel):
    """Numbers must be finite (``NaN``, ``"nan"`` and ``1e999`` are 422s, never values)."""

    model_config = ConfigDict(allow_inf_nan=False)


class Open(Finite):
    """A client's copy of something moodtune gave it: the known fields are checked, others pass through."""

    model_config = ConfigDict(allow_inf_nan=False, extra="allow")


class SessionData(Finite):
    offsets: dict[Feature, Annotated[float, Field(ge=-1e3, le=1e3)]] = Field(default_factory=dict)
    liked: list[Id] = Field(default_factory=list, max_length=MAX_IDS)
    skipped: list[Id] = Field(default_factory=list, max_length=MAX_IDS)


class SignalData(Finite):
    probabilities: list[Unit] = Field(min_length=len(EMOTIONS), max_length=len(EMOTIONS))
    weight: Annotated[float, Field(ge=0.0, le=1e3)]
    model: Annotated[str, Field(max_length=200)] = ""  # the model that read it: corrections of an older one drop


class CorrectionData(Finite):
    emotion: Emotion
    signals: dict[Signal, SignalData]
    time: Annotated[str, Field(max_length=40)] = ""


class CalibrationData(Finite):
    """A calibration from /v1/correct. Only its corrections count: the parameters are refitted from them."""

    corrections: list[CorrectionData] = Field(default_factory=list, max_length=MAX_CORRECTIONS)
    weight_factors: dict[Signal, float] = Field(default_factory=dict)
    biases: dict[Signal, list[float]] = Field(default_factory=dict)


class ReadingData(Open):
    status: Annotated[str, Field(max_length=20)]
    probabilities: dict[Emotion, Unit] = Field(default_factory=dict)
    confidence: Unit = 0.0
    quality: Unit = 0.0
    valence: Signed | None = None
    arousal: Signed | None = None


class MoodData(Open):
    """A mood from /v1/analyze."""

    valence: Signed
    arousal: Signed
    probabilities: dict[Emotion, Unit]
    confidence: Unit = 0.0
    weights: dict[Signal, Unit] = Field(default_factory=dict)
    readings: dict[Signal, ReadingData] = Field(default_factory=dict)


class MoodAnchor(Open):
    """The valence and arousal a list was made for (a whole mood from /v1/analyze will do)."""

    valence: Signed
    arousal: Signed


class TrackData(Finite):
    id: Id
    name: Annotated[str, Field(max_length=500)]
    artist: Annotated[str, Field(max_length=500)]
    genre: Annotated[str, Field(max_length=200)] = ""
    features: dict[Annotated[str, Field(max_length=40)], float] = Field(max_length=32)
    score: float = 0.0
    explanation: Annotated[str, Field(max_length=2000)] = ""
    spotify_url: Annotated[str, Field(max_length=200)] | None = None

    @model_validator(mode="after")
    def _has_features(self) -> "TrackData":
        missing = [f for f in FEATURES if f not in self.features]
        if missing:
            raise ValueError(f"the track's features lack {', '.join(missing)}")
        return self


class AnalyzeJSON(Finite):
    image_b64: str | None = None
    audio_b64: str | None = None
    text: str | None = None
    n: int = Field(10, ge=0, le=MAX_TRACKS)
    strategy: Literal["match", "uplift"] = "match"
    session: SessionData | None = None
    catalog: Annotated[str, Field(max_length=64)] | None = Field(None, description="a name from /v1/catalogs")
    faces: Literal["largest", "all"] = "largest"
    calibration: CalibrationData | None = Field(None, description="the user's calibration from /v1/correct")
    explicit: bool = Field(False, description="also list tracks whose title or artist has explicit words")


class AnalyzeResponse(BaseModel):
    mood: dict[str, Any]
    tracks: list[TrackData]
    session: SessionData


class RecommendRequest(Finite):
    mood: MoodData
    n: int = Field(10, ge=0, le=MAX_TRACKS)
    strategy: Literal["match", "uplift"] = "match"
    session: SessionData | None = None
    catalog: Annotated[str, Field(max_length=64)] | None = Field(None, description="a name from /v1/catalogs")
    explicit: bool = Field(False, description="also list tracks whose title or artist has explicit words")


class RecommendResponse(BaseModel):
    tracks: list[TrackData]
    session: SessionData


class FeedbackRequest(Finite):
    session: SessionData | None = None
    track: TrackData
    kind: Literal["like", "skip"]
    mood: MoodAnchor | None = Field(None, description="the mood the list was made for (its valence and arousal "
                                                      "anchor the move); without it the last list's target is "
                                                      "taken as neutral")


class FeedbackResponse(BaseModel):
    session: SessionData


class CorrectRequest(Finite):
    mood: MoodData = Field(description="the mood from /v1/analyze the user corrects")
    emotion: Emotion
    calibration: CalibrationData | None = Field(None, description="the user's calibration so far (from an earlier "
                                                                  "/v1/correct); the client keeps it, like the session")


class CorrectResponse(BaseModel):
    calibration: dict[str, Any]
    learned: list[str]


class SlowBody(HTTPException):
    """The client did not send its whole body within :data:`BODY_DEADLINE_S`."""

    def __init__(self) -> None:
        super().__init__(408, "the request body did not arrive in time")


class BodyDeadline:
    """ASGI middleware: a request's body must arrive within ``deadline_s`` (a slow client is answered 408 and
    dropped), and a client that goes away is one log line, not a traceback. Starlette's own
    ``RequestBodyLimitMiddleware`` (FastAPI's ``max_body_size``) counts the bytes."""

    def __init__(self, app: ASGIApp, deadline_s: float | None = None) -> None:
        self.app = app
        self.deadline_s = BODY_DEADLINE_S if deadline_s is None else deadline_s

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.deadline_s
        client = "{}:{}".format(*(scope.get("client") or ("?", "?")))
        done = False  # once the body is in, receive() only waits for a disconnect: no deadline then

        async def receive_by_deadline() -> Message:
            nonlocal done
            if done:
                return await receive()
            try:
                message = await asyncio.wait_for(receive(), max(0.0, deadline - loop.time()))
            except asyncio.TimeoutError:
                log.warning("dropped %s: its request body did not arrive within %.0f s", client, self.deadline_s)
                raise SlowBody() from None
            done = message["type"] != "http.request" or not message.get("more_body", False)
            return message

        try:
            await self.app(scope, receive_by_deadline, send)
        except ClientDisconnect:
            log.warning("client %s went away before its request body arrived", client)


def _keep_uploads_in_memory() -> None:
    """Starlette spools a multipart file over 1 MB to a temp file on disk; moodtune keeps uploads in memory."""
    from starlette.formparsers import MultiPartParser

    MultiPartParser.spool_max_size = max(MultiPartParser.spool_max_size, MAX_BODY_BYTES)


class WorkerHeader:
    """ASGI middleware: ``X-Moodtune-Worker`` on every response says which process answered (replicas, uvicorn
    workers)."""

    def __init__(self, app: ASGIApp, worker: str) -> None:
        self.app = app
        self.header = (b"x-moodtune-worker", worker.encode())

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        async def named(message: Message) -> None:
            if message["type"] == "http.response.start":
                message = {**message, "headers": [*message.get("headers", []), self.header]}
            await send(message)

        await self.app(scope, receive, named if scope["type"] == "http" else send)


def _errors(errors: Any) -> list[dict[str, Any]]:
    """Validation errors as a client sees them: where and what, without the input echoed back (it may be huge, or
    an infinity that JSON cannot carry)."""
    return [{k: e[k] for k in ("loc", "msg", "type") if k in e} for e in list(errors)[:10]]


def _public(track: Any) -> dict[str, Any]:
    """A track as clients see it: no local file path (library scans keep one in ``extras``)."""
    d = track.to_dict()
    d.pop("extras", None)
    return d


def create_app(engine: Any = None, *, warm: bool | Literal["background"] = True, max_queue: int = MAX_QUEUE) -> FastAPI:
    """The API around ``engine`` (default: a new ``MoodEngine(workers=2, threads=1)``). ``warm=True`` warms the
    models before the app answers (Ray replicas); ``"background"`` answers at once (``/healthz`` says 503
    "loading" until they are warm; ``moodtune serve``); ``False`` leaves them to load on first use."""
    from fastapi.exception_handlers import http_exception_handler
    from fastapi_offline import FastAPIOffline

    from fusion import Calibration, MoodEngine, MoodReading, Profile
    from multimodal.errors import MoodtuneError
    from recommend import EMBEDDED, Session, Track, load_catalog, user_catalogs

    _keep_uploads_in_memory()
    state: dict[str, Any] = {"ready": False, "status": "loading"}
    slots = threading.BoundedSemaphore(max_queue + (getattr(engine, "workers", None) or 2))
    api_key = os.environ.get("MOODTUNE_API_KEY")

    async def warm_up() -> None:
        try:
            await asyncio.to_thread(state["engine"].warmup)
        except Exception as exc:  # noqa: BLE001 - any load failure: /healthz says so, requests still try
            log.error("the models could not be warmed: %s", exc)
            state["status"] = "failed"
            return
        state.update(ready=True, status="ready")

    async def lifespan(app: FastAPI):  # each worker process warms its own models
        state["engine"] = engine or MoodEngine(workers=2, threads=1)
        task = None
        if warm == "background":  # the port is already open: /healthz answers 503 "loading" meanwhile
            task = asyncio.create_task(warm_up())
        elif warm:
            await warm_up()
        else:
            state.update(ready=True, status="ready")
        yield
        if task is not None:
            task.cancel()
        state["engine"].close()

    # Swagger UI and ReDoc from fastapi-offline's own copies: /docs works without internet
    app = FastAPIOffline(title="moodtune", version="1", lifespan=lifespan, max_body_size=MAX_BODY_BYTES,
                         description="Mood from face, voice and words, and music that fits it. Runs on your machine.")
    app.add_middleware(WorkerHeader, worker=f"{socket.gethostname()}:{os.getpid()}")
    app.add_middleware(BodyDeadline)  # added last: outermost, so a client that went away ends here

    async def guard(request: Request) -> None:
        if api_key and not hmac.compare_digest(request.headers.get("authorization", ""), f"Bearer {api_key}"):
            raise HTTPException(401, "send Authorization: Bearer <MOODTUNE_API_KEY>")

    async def run(fn: Any, *args: Any, **kw: Any) -> Any:
        if not slots.acquire(blocking=False):
            raise HTTPException(503, "busy: too many requests are waiting; retry shortly", headers={"Retry-After": "2"})
        try:
            return await asyncio.to_thread(fn, *args, **kw)
        finally:
            slots.release()

    def catalog_of(name: str | None) -> Any:
        """An imported catalog by the name /v1/catalogs lists (never a path; loaded on a worker thread)."""
        if name in (None, "", EMBEDDED):
            return None  # the engine's own (on Ray, the replica's copy from the object store)
        if name not in user_catalogs():
            raise HTTPException(422, f"no catalog named {name!r}: GET /v1/catalogs lists the names to use")
        try:
            return load_catalog(name)
        except MoodtuneError as exc:  # the server's files are none of the client's business: no path, no detail
            log.warning("catalog %r cannot be loaded: %s", name, exc)
            raise HTTPException(422, f"the catalog {name!r} cannot be loaded on this server") from exc

    def session_of(data: SessionData | None) -> Any:
        return Session.from_dict(data.model_dump()) if data else Session()

    def calibration_of(data: CalibrationData | None) -> Any:
        return Calibration.from_dict(data.model_dump()) if data else Calibration()

    def mood_of(data: MoodData) -> Any:
        try:
            return MoodReading.from_dict(data.model_dump())
        except (KeyError, ValueError, TypeError, AttributeError) as exc:
            raise HTTPException(422, f"not a mood from /v1/analyze: {str(exc)[:200]}") from exc

    def analyze_and_rank(image: bytes | None, audio: bytes | None, fields: AnalyzeJSON) -> dict[str, Any]:
        eng = state["engine"]
        session = session_of(fields.session)
        profile = Profile(session, calibration_of(fields.calibration)) if fields.calibration else None
        n, strategy, catalog = fields.n, fields.strategy, catalog_of(fields.catalog)
        mood = eng.analyze(image=image, audio=audio, text=fields.text, faces=fields.faces, profile=profile)
        tracks = eng.recommend(mood, n=n, strategy=strategy, session=session, catalog=catalog,
                               allow_explicit=fields.explicit) if mood.ok else []
        return {"mood": mood.to_dict(), "tracks": [_public(t) for t in tracks], "session": session.to_dict()}

    def recommend_for(body: RecommendRequest) -> dict[str, Any]:
        session = session_of(body.session)
        tracks = state["engine"].recommend(mood_of(body.mood), n=body.n, strategy=body.strategy, session=session,
                                           catalog=catalog_of(body.catalog), allow_explicit=body.explicit)
        return {"tracks": [_public(t) for t in tracks], "session": session.to_dict()}

    def corrected(body: CorrectRequest) -> dict[str, Any]:
        profile = state["engine"].correct(mood_of(body.mood), body.emotion,
                                          Profile(calibration=calibration_of(body.calibration)))
        return {"calibration": profile.calibration.to_dict(), "learned": profile.calibration.explain()}

    async def form_fields(request: Request) -> tuple[bytes | None, bytes | None, AnalyzeJSON]:
        # parts stay in memory up to the body limit (_keep_uploads_in_memory)
        form = await request.form(max_files=2, max_fields=10, max_part_size=MAX_BODY_BYTES)
        try:
            unknown = sorted(set(form.keys()) - FORM_FIELDS)
            if unknown:  # e.g. curl -d '{"text": ...}': JSON sent as a form arrives as one odd field name
                raise HTTPException(422, f"unknown form field {unknown[0][:60]!r}; the fields are "
                                         f"{', '.join(sorted(FORM_FIELDS))} (send JSON as Content-Type: application/json)")
            files = {k: v for k, v in form.items() if isinstance(v, UploadFile)}
            text = {k: v for k, v in form.items() if isinstance(v, str)}  # a file sent as a field is ignored
            image = await files["image"].read() if "image" in files else None
            audio = await files["audio"].read() if "audio" in files else None
            # session and calibration are JSON inside a field: pydantic parses them (with its depth limit)
            fields = AnalyzeJSON.model_validate({
                "text": text.get("text") or None, "n": text.get("n", 10), "strategy": text.get("strategy", "match"),
                "catalog": text.get("catalog") or None, "faces": text.get("faces", "largest"),
                "explicit": text.get("explicit", False),
                "session": SessionData.model_validate_json(text["session"]) if text.get("session") else None,
                "calibration": CalibrationData.model_validate_json(text["calibration"])
                if text.get("calibration") else None})
        finally:
            await form.close()
        return image, audio, fields

    @app.get("/healthz")
    async def healthz() -> JSONResponse:
        if state["ready"]:
            return JSONResponse({"ready": True})
        return JSONResponse({"ready": False, "status": state["status"]}, status_code=503, headers={"Retry-After": "2"})

    @app.get("/v1/catalogs", dependencies=[Depends(guard)])
    async def catalogs() -> dict[str, list[str]]:
        return {"catalogs": await asyncio.to_thread(user_catalogs)}

    @app.post("/v1/analyze", response_model=AnalyzeResponse, dependencies=[Depends(guard)])
    async def analyze(request: Request) -> dict[str, Any]:
        """JSON (base64 image and audio), or multipart/form-data with ``image`` and ``audio`` files; JSON without a
        content type is read as JSON."""
        kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
        try:
            if kind in ("multipart/form-data", "application/x-www-form-urlencoded"):
                image, audio, fields = await form_fields(request)
            elif kind in ("", "application/json") or kind.endswith("+json"):
                fields = AnalyzeJSON.model_validate_json(await request.body())
                image = base64.b64decode(fields.image_b64, validate=True) if fields.image_b64 else None
                audio = base64.b64decode(fields.audio_b64, validate=True) if fields.audio_b64 else None
            else:
                raise HTTPException(415, "send application/json or multipart/form-data")
        except ValidationError as exc:
            raise HTTPException(422, _errors(exc.errors())) from exc
        except (ValueError, binascii.Error) as exc:
            raise HTTPException(422, f"malformed request: {str(exc)[:200]}") from exc
        return await run(analyze_and_rank, image, audio, fields)

    @app.post("/v1/recommend", response_model=RecommendResponse, dependencies=[Depends(guard)],
              max_body_size=MAX_SMALL_BODY_BYTES)
    async def recommend(body: RecommendRequest) -> dict[str, Any]:
        return await run(recommend_for, body)

    @app.post("/v1/feedback", response_model=FeedbackResponse, dependencies=[Depends(guard)],
              max_body_size=MAX_SMALL_BODY_BYTES)
    async def feedback(body: FeedbackRequest) -> dict[str, Any]:
        session = session_of(body.session)
        track = Track.from_dict(body.track.model_dump())
        mood = SimpleNamespace(valence=body.mood.valence, arousal=body.mood.arousal) if body.mood else \
            SimpleNamespace(valence=0.0, arousal=0.0)
        new = session.like(track, mood) if body.kind == "like" else session.skip(track, mood)
        return {"session": new.to_dict()}

    @app.post("/v1/correct", response_model=CorrectResponse, dependencies=[Depends(guard)],
              max_body_size=MAX_SMALL_BODY_BYTES)
    async def correct(body: CorrectRequest) -> dict[str, Any]:
        """The user says the mood was really ``emotion``: their calibration with it learned (nothing is kept here;
        the fit runs on a worker thread)."""
        return await run(corrected, body)

    @app.exception_handler(RequestValidationError)
    async def invalid(_: Request, exc: RequestValidationError) -> JSONResponse:
        return JSONResponse({"detail": _errors(exc.errors())}, status_code=422)

    @app.exception_handler(StarletteHTTPException)  # the class FastAPI's body parsing raises (and ours derive from)
    async def http_error(request: Request, exc: StarletteHTTPException) -> Any:
        if exc.status_code == 400 and isinstance(exc.__cause__, RecursionError):  # FastAPI's json.loads gave up
            return JSONResponse({"detail": "malformed request: the JSON is nested too deeply"}, status_code=422)
        return await http_exception_handler(request, exc)

    @app.exception_handler(MoodtuneError)
    async def moodtune_error(_: Request, exc: MoodtuneError) -> JSONResponse:
        return JSONResponse({"detail": str(exc)[:300]}, status_code=422)

    return app


def serving_app() -> FastAPI:
    """``moodtune serve``'s app (a uvicorn factory): it answers at once and warms its models in the background."""
    return create_app(warm="background")
