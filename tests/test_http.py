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
def test_moodtune_serve_process_warms_then_answers(tmp_path):
    import httpx

    port = free_port()
    env = {**os.environ, "MOODTUNE_HOME": str(tmp_path)}
    proc = subprocess.Popen([sys.executable, "-m", "interfaces.cli", "serve", "--port", str(port)], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        url = f"http://127.0.0.1:{port}"
        start, ready = time.time(), False
        while time.time() - start < 120 and not ready:
            try:
                ready = httpx.get(f"{url}/healthz", timeout=2).status_code == 200
            except httpx.HTTPError:
                time.sleep(0.5)
        assert ready, proc.stderr.read1().decode()[-2000:] if proc.poll() is not None else "not ready in 120 s"
        r = httpx.post(f"{url}/v1/analyze", data={"text": "I am furious", "session": json.dumps({"liked": ["x"]})},
                       files={"audio": ("me.wav", wav_bytes(), "audio/wav")}, timeout=60)
        assert r.status_code == 200 and r.json()["session"]["liked"] == ["x"] and r.json()["tracks"]
        assert httpx.get(f"{url}/docs", timeout=10).status_code == 200
    finally:
        proc.terminate()
        proc.wait(timeout=30)


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
