"""The HTTP API with FastAPI's test client (real models), and a real `moodtune serve` process on loopback."""

import json
import os
import subprocess
import sys
import time

import numpy as np
import pytest
from fastapi.testclient import TestClient

from interfaces.http import MAX_BODY_BYTES, create_app

from .conftest import free_port, wav_bytes


@pytest.fixture(scope="module")
def client(engine):
    with TestClient(create_app(engine, warm=False)) as c:
        yield c


def test_healthz_and_catalogs(client):
    assert client.get("/healthz").json() == {"ready": True}
    assert "embedded" in client.get("/v1/catalogs").json()["catalogs"]


def test_analyze_multipart_with_a_bad_image_still_answers_200_with_that_signals_status(client):
    r = client.post("/v1/analyze", data={"text": "I got the job!!", "n": "4"},
                    files={"image": ("me.png", b"\x89PNG\r\n\x1a\n" + bytes(100), "image/png"),
                           "audio": ("me.wav", wav_bytes(), "audio/wav")})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["mood"]["top_emotion"] == "happy" and len(body["tracks"]) == 4
    assert body["mood"]["readings"]["face"]["status"] == "invalid"
    assert body["mood"]["readings"]["voice"]["status"] in ("silence", "ok")
    assert body["session"] == {"offsets": body["session"]["offsets"], "liked": [], "skipped": []}


def test_analyze_accepts_base64_json(client):
    import base64

    body = {"text": "I am furious with you", "audio_b64": base64.b64encode(wav_bytes()).decode(),
            "image_b64": base64.b64encode(b"not an image").decode(), "n": 2}
    r = client.post("/v1/analyze", json=body)
    assert r.status_code == 200 and r.json()["mood"]["top_emotion"] == "angry"
    assert r.json()["mood"]["readings"]["face"]["status"] == "invalid" and len(r.json()["tracks"]) == 2


def test_analyze_json_recommend_and_feedback_round_trip_the_session(client):
    first = client.post("/v1/analyze", json={"text": "so stressed about tomorrow", "n": 5}).json()
    skipped = first["tracks"][0]
    fb = client.post("/v1/feedback", json={"session": first["session"], "track": skipped, "kind": "skip",
                                           "mood": first["mood"]})
    assert fb.status_code == 200 and fb.json()["session"]["skipped"] == [skipped["id"]]
    again = client.post("/v1/recommend", json={"mood": first["mood"], "n": 5, "session": fb.json()["session"]})
    assert again.status_code == 200 and skipped["id"] not in {t["id"] for t in again.json()["tracks"]}
    assert all("extras" not in t for t in again.json()["tracks"])  # never a local file path


def test_explicit_titles_are_hidden_unless_the_request_allows_them(client):
    import numpy as np

    from recommend import PERCEIVED, Catalog

    catalog = Catalog.default()
    hidden = set(catalog.frame["id"][catalog.explicit])
    # a mood where an explicit track sits in the plane: it would be listed if allowed
    plane, _ = catalog.plane(PERCEIVED)
    v, a = (float(x) for x in np.clip(plane[int(np.flatnonzero(catalog.explicit)[0])] / PERCEIVED.reach, -1, 1))
    mood = {**client.post("/v1/analyze", json={"text": "fine", "n": 1}).json()["mood"], "valence": v, "arousal": a}
    ids = {e: {t["id"] for t in client.post("/v1/recommend", json={"mood": mood, "n": 50, "explicit": e}).json()["tracks"]}
           for e in (False, True)}
    assert len(ids[False]) == 50 and not ids[False] & hidden and ids[True] & hidden
    form = client.post("/v1/analyze", data={"text": "fine", "n": "5", "explicit": "true"})
    assert form.status_code == 200 and len(form.json()["tracks"]) == 5


@pytest.mark.parametrize("request_kw,status", [
    ({"json": {"text": "hi", "strategy": "sideways"}}, 422),
    ({"json": {"text": "hi", "n": -1}}, 422),
    ({"json": {"text": "hi", "catalog": "no-such-catalog"}}, 422),
    ({"json": {"image_b64": "not base64!!"}}, 422),
    ({"json": {"text": "hi", "session": {"offsets": {"energy": "x"}}}}, 422),
    ({"data": {"text": "hi", "session": "{not json"}}, 422),
    ({"json": {"text": "hi", "faces": "everyone"}}, 422),
    ({"json": {"text": "hi", "calibration": {"corrections": [{"emotion": "joy", "signals": {}}]}}}, 422),
    ({"data": {"text": "hi", "calibration": "[1, 2]"}}, 422),
    ({"content": b"x" * 10, "headers": {"content-length": str(MAX_BODY_BYTES + 1),
                                         "content-type": "application/json"}}, 413),
])
def test_malformed_requests_are_4xx_never_5xx(client, request_kw, status):
    assert client.post("/v1/analyze", **request_kw).status_code == status


def test_corrections_travel_with_the_client_and_change_its_next_analyses(client):
    text = {"text": "The meeting was moved to Thursday.", "n": 3}
    first = client.post("/v1/analyze", json=text).json()
    calibration = None
    for _ in range(10):
        r = client.post("/v1/correct", json={"mood": first["mood"], "emotion": "sad", "calibration": calibration})
        assert r.status_code == 200, r.text
        calibration = r.json()["calibration"]
    assert len(calibration["corrections"]) == 10 and r.json()["learned"]
    again = client.post("/v1/analyze", data={**text, "calibration": json.dumps(calibration)}).json()
    assert again["mood"]["probabilities"]["sad"] > first["mood"]["probabilities"]["sad"]
    assert client.post("/v1/analyze", json=text).json()["mood"]["probabilities"] == first["mood"]["probabilities"]
    assert client.post("/v1/correct", json={"mood": first["mood"], "emotion": "joy"}).status_code == 422
    assert client.post("/v1/correct", json={"mood": {"x": 1}, "emotion": "sad"}).status_code == 422


def test_every_bad_input_of_the_suite_is_2xx_through_http(client):
    from .hostile_inputs import BAD_AUDIO, BAD_IMAGES

    for name, value in {**BAD_IMAGES, **BAD_AUDIO}.items():
        if isinstance(value, (bytes, str)):
            files = {"image" if name in BAD_IMAGES else "audio": ("x.bin", value if isinstance(value, bytes)
                                                                  else value.encode(), "application/octet-stream")}
            r = client.post("/v1/analyze", data={"text": "I am furious with you"}, files=files)
            assert r.status_code == 200 and r.json()["mood"]["top_emotion"] == "angry", (name, r.text[:200])


def test_a_full_queue_answers_503_with_retry_after(engine):
    with TestClient(create_app(engine, warm=False, max_queue=-2)) as c:  # no slot at all
        r = c.post("/v1/analyze", json={"text": "hi"})
    assert r.status_code == 503 and r.headers["retry-after"] == "2"


def test_api_key_when_set(engine, monkeypatch):
    monkeypatch.setenv("MOODTUNE_API_KEY", "k3y")
    with TestClient(create_app(engine, warm=False)) as c:
        assert c.get("/v1/catalogs").status_code == 401
        assert c.get("/v1/catalogs", headers={"Authorization": "Bearer k3y"}).status_code == 200


@pytest.mark.slow  # a process, a model or many cases: seconds
def test_moodtune_serve_process_binds_first_says_where_then_warms_and_answers(tmp_path):
    import httpx

    port = free_port()
    env = {**os.environ, "MOODTUNE_HOME": str(tmp_path)}
    proc = subprocess.Popen([sys.executable, "-m", "interfaces.cli", "serve", "--port", str(port)], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        url = f"http://127.0.0.1:{port}"
        assert proc.stdout.readline().strip() == f"moodtune serving on {url} (loading models…)"
        first = httpx.get(f"{url}/healthz", timeout=5)  # the port is open while the models load
        assert first.status_code == 503 and first.json() == {"ready": False, "status": "loading"}
        start, ready = time.time(), False
        while time.time() - start < 120 and not ready:
            ready = httpx.get(f"{url}/healthz", timeout=5).status_code == 200
            time.sleep(0.25)
        assert ready, "not ready in 120 s"
        r = httpx.post(f"{url}/v1/analyze", data={"text": "I am furious", "session": json.dumps({"liked": ["x"]})},
                       files={"audio": ("me.wav", wav_bytes(), "audio/wav")}, timeout=60)
        assert r.status_code == 200 and r.json()["session"]["liked"] == ["x"] and r.json()["tracks"]
        docs = httpx.get(f"{url}/docs", timeout=10)
        assert docs.status_code == 200 and "cdn" not in docs.text  # Swagger UI from the package, offline
        assert "swagger-ui-bundle.js" in docs.text
        taken = subprocess.run([sys.executable, "-m", "interfaces.cli", "serve", "--port", str(port)], env=env,
                               capture_output=True, text=True, timeout=60)
        assert taken.returncode == 2 and "Address already in use" in " ".join(taken.stderr.split())
    finally:
        proc.terminate()
        proc.wait(timeout=30)


@pytest.mark.parametrize("port", ["70000", "-1", "0"])
def test_serve_checks_the_port_before_loading_anything(port):
    from typer.testing import CliRunner

    from interfaces.cli import app

    result = CliRunner().invoke(app, ["serve", "--port", port])
    assert result.exit_code == 2 and "--port" in result.output


def test_the_demo_as_a_client_of_the_service(client, monkeypatch, tmp_path):
    """The demo's handlers with the service as their engine (--backend): analyze, like, correct, live face."""
    import app_gradio
    from interfaces.remote import BackendError, RemoteEngine

    remote = RemoteEngine("http://testserver")
    remote._client = client  # FastAPI's test client is an httpx.Client on the app
    monkeypatch.setattr(app_gradio, "BACKEND", "http://testserver")
    monkeypatch.setattr(app_gradio, "_engine", remote)
    assert "embedded" in app_gradio.catalog_names()
    wav = tmp_path / "me.wav"
    wav.write_bytes(wav_bytes())
    out = app_gradio.analyze(None, str(wav), "I am furious with you", "match", 5, False, None)
    label, session, mood, tracks = out[0], *out[-3:]
    assert max(label, key=label.get) == "angry" and len(tracks) == 5 and mood.readings["voice"].status != "missing"
    table, _, _, session, new_tracks = app_gradio.feedback("skip", 0, "match", 5, False, session, mood, tracks)
    assert session.skipped == (tracks[0].id,) and tracks[0].id not in {t.id for t in new_tracks}
    calibration, note, label, _, _, _, given_tracks = app_gradio.correct("sad", mood, None, None, n=5)
    assert len(calibration.corrections) == 1 and "learned" in note and label == {"sad": 1.0} and len(given_tracks) == 5
    label, note, _ = app_gradio.live_face(np.zeros((120, 160, 3), np.uint8), None)
    assert "no face" in note.lower()
    with pytest.raises(BackendError, match="did not answer"):
        RemoteEngine("http://127.0.0.1:9", timeout=2).analyze(text="hi")
    with pytest.raises(BackendError, match="answered 422"):
        remote.recommend(mood, n=5, catalog="no-such-catalog")


# -- hostile but well-formed requests (issue 35): each is a 4xx with a message, never a 500 or a stall ----------------

def test_a_chunked_body_is_counted_as_it_arrives_and_refused_at_the_limit(client):
    sent = []

    def chunks():  # no Content-Length: only counting what arrives can stop it
        yield b'{"text": "'
        for _ in range(MAX_BODY_BYTES // 2**20 + 10):
            sent.append(1)
            yield b"a" * 2**20
        yield b'"}'

    r = client.post("/v1/analyze", content=chunks(), headers={"content-type": "application/json"})
    assert r.status_code == 413


@pytest.mark.parametrize("path,body,says", [
    ("/v1/analyze", {"text": "hi", "catalog": "/etc/passwd"}, "GET /v1/catalogs"),
    ("/v1/analyze", {"text": "hi", "catalog": "../catalogs/x"}, "GET /v1/catalogs"),
    ("/v1/analyze", {"text": "hi", "calibration": {"corrections": [
        {"emotion": "happy", "signals": {"text": {"probabilities": [int("9" * 400)] + [0] * 6, "weight": 1}}}]}},
     "finite"),
    ("/v1/analyze", {"text": "hi", "calibration": {"corrections": [
        {"emotion": "happy", "signals": {f"made-up-{i}": {"probabilities": [1 / 7] * 7, "weight": 1}
                                         for i in range(50)}}]}}, "face"),
    ("/v1/analyze", {"text": "hi", "session": {"offsets": {"valence": "nan"}}}, "finite"),
    ("/v1/analyze", {"text": "hi", "session": {"liked": ["x"] * 5000}}, "at most"),
])
def test_hostile_values_are_422s_that_reveal_nothing_of_the_server(client, path, body, says):
    r = client.post(path, json=body)
    assert r.status_code == 422 and says in r.text, r.text[:300]
    assert "root:" not in r.text and "Expected" not in r.text  # no line of a server file, no parser detail


def test_moods_and_tracks_with_nan_or_missing_features_are_refused(client):
    first = client.post("/v1/analyze", json={"text": "so stressed about tomorrow", "n": 2}).json()
    mood, track = first["mood"], first["tracks"][0]
    for path, body in [
        ("/v1/recommend", {"mood": {**mood, "valence": "nan"}}),
        ("/v1/recommend", {"mood": {**mood, "arousal": 2.0}}),
        ("/v1/feedback", {"track": track, "kind": "like", "mood": {"valence": "nan", "arousal": 0}}),
        ("/v1/feedback", {"track": {**track, "features": {}}, "kind": "like"}),
        ("/v1/correct", {"mood": {**mood, "weights": {**mood["weights"], "made-up": 0.5}}, "emotion": "sad"}),
    ]:
        r = client.post(path, json=body)
        assert r.status_code == 422, (path, r.text[:300])
    r = client.post("/v1/recommend", content=json.dumps({"mood": mood}).replace('"valence": ', '"valence": 1e999, "x": ', 1),
                    headers={"content-type": "application/json"})
    assert r.status_code == 422, r.text[:300]
    fb = client.post("/v1/feedback", json={"track": track, "kind": "like", "mood": mood})
    assert fb.status_code == 200 and all(np.isfinite(v) for v in fb.json()["session"]["offsets"].values())


def test_deep_nesting_is_a_422_in_a_form_field_and_in_a_json_body(client):
    deep = "[" * 100_000 + "]" * 100_000
    assert client.post("/v1/analyze", data={"text": "hi", "session": deep}).status_code == 422
    r = client.post("/v1/recommend", content='{"mood": ' + '{"a": ' * 100_000 + "1" + "}" * 100_001,
                    headers={"content-type": "application/json"})
    assert r.status_code == 422 and "nested" in r.text


def test_json_sent_without_its_content_type_is_read_or_refused_with_a_hint(client):
    # no content type at all: read as JSON
    r = client.post("/v1/analyze", content=json.dumps({"text": "I am furious with you"}))
    assert r.status_code == 200 and r.json()["mood"]["top_emotion"] == "angry"
    # curl -d sends JSON as a form: one odd field name, not an empty request answered 200 "no signal"
    r = client.post("/v1/analyze", content=json.dumps({"text": "I am furious"}),
                    headers={"content-type": "application/x-www-form-urlencoded"})
    assert r.status_code == 422 and "application/json" in r.text
    r = client.post("/v1/analyze", content=b"text=hi", headers={"content-type": "text/plain"})
    assert r.status_code == 415


def test_a_calibration_of_200_corrections_is_fitted_on_a_worker_thread(client, monkeypatch):
    import threading

    first = client.post("/v1/analyze", json={"text": "The meeting was moved to Thursday.", "n": 1}).json()
    corrections = [{"emotion": e, "signals": {m: {"probabilities": [1 / 7] * 7, "weight": 0.5}
                                              for m in ("face", "voice", "text", "speech_text")}}
                   for e in ["sad", "happy", "angry", "fear"] * 50]
    from fusion import calibration

    threads = []
    real = calibration.fit_calibration
    monkeypatch.setattr(calibration, "fit_calibration",
                        lambda *a, **k: threads.append(threading.current_thread().name) or real(*a, **k))
    calibration._fit_once.cache_clear()
    r = client.post("/v1/correct", json={"mood": first["mood"], "emotion": "sad",
                                         "calibration": {"corrections": corrections}})
    assert r.status_code == 200 and len(r.json()["calibration"]["corrections"]) == 200
    assert threads and threading.main_thread().name not in threads  # not on the thread that runs the event loop


def test_healthz_says_loading_until_the_models_are_warm():
    import threading

    warm = threading.Event()

    class Slow:
        workers = 2

        def warmup(self):
            warm.wait(30)

        def close(self):
            pass

    with TestClient(create_app(Slow(), warm="background")) as c:
        r = c.get("/healthz")
        assert r.status_code == 503 and r.json() == {"ready": False, "status": "loading"}
        warm.set()
        for _ in range(100):
            if c.get("/healthz").status_code == 200:
                break
            time.sleep(0.05)
        assert c.get("/healthz").json() == {"ready": True}


def test_a_slow_body_is_dropped_at_the_deadline_and_a_gone_client_is_one_log_line(engine, monkeypatch, caplog):
    import asyncio

    import interfaces.http as http

    monkeypatch.setattr(http, "BODY_DEADLINE_S", 0.2)
    app = create_app(engine, warm=False)
    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST", "scheme": "http",
             "path": "/v1/analyze", "raw_path": b"/v1/analyze", "query_string": b"", "root_path": "",
             "headers": [(b"content-type", b"application/json"), (b"content-length", b"1000")],
             "client": ("127.0.0.1", 5555), "server": ("127.0.0.1", 80)}

    async def call(receive):
        sent = []

        async def send(message):
            sent.append(message)

        await app(dict(scope), receive, send)
        return sent

    async def never():  # a client that sends its headers and then nothing
        await asyncio.sleep(3600)

    async def gone():
        return {"type": "http.disconnect"}

    sent = asyncio.run(asyncio.wait_for(call(never), 10))
    assert sent[0]["status"] == 408
    with caplog.at_level("WARNING", logger="moodtune.http"):
        asyncio.run(asyncio.wait_for(call(gone), 10))
    assert [r.getMessage() for r in caplog.records if "went away" in r.getMessage()] == \
        ["client 127.0.0.1:5555 went away before its request body arrived"]


def test_a_connection_that_never_finishes_its_headers_is_dropped(monkeypatch, caplog):
    # slowloris: without a header deadline, 512 such sockets would hold every slot of `moodtune serve`
    import socket
    import threading
    import time

    import uvicorn

    import interfaces.protocol as protocol
    from fastapi import FastAPI

    from .conftest import free_port

    monkeypatch.setattr(protocol, "HEADER_SECONDS", 0.5)
    app = FastAPI()

    @app.get("/ping")
    def ping() -> dict:
        return {"ok": True}

    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning",
                                          http=protocol.HeaderDeadlineProtocol))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        for _ in range(100):
            if server.started:
                break
            time.sleep(0.05)
        slow, idle, fine = (socket.create_connection(("127.0.0.1", port)) for _ in range(3))
        slow.sendall(b"GET /ping HTTP/1.1\r\nHost: x\r\n")  # and never the blank line
        fine.sendall(b"GET /ping HTTP/1.1\r\nHost: x\r\n\r\n")
        assert b"200 OK" in fine.recv(1000)
        for sock in (slow, idle):
            sock.settimeout(3)
            start = time.monotonic()
            assert sock.recv(1000) == b"" and time.monotonic() - start < 2.5  # closed by the server
        assert "no complete request headers" in caplog.text
    finally:
        server.should_exit = True
        thread.join(5)
