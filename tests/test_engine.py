"""The whole pipeline: inputs → encoders → fusion → mood → tracks; and the CLI."""

import json
import shutil
import subprocess
import sys

import numpy as np
import pytest

import fusion
from multimodal import Status
from recommend import Catalog

from .conftest import needs_espeak, speech


def test_text_only_analysis_and_recommendations(engine):
    mood = engine.analyze(text="I am furious with you")
    assert mood.ok and mood.top_emotion == "angry"
    assert mood.weights["text"] == pytest.approx(1.0)
    assert mood.readings["face"].status == Status.MISSING and mood.readings["voice"].status == Status.MISSING
    assert mood.valence < 0 < mood.arousal
    tracks = engine.recommend(mood, n=10)
    assert len(tracks) == 10 and all(t.explanation for t in tracks)


def test_bad_inputs_never_lose_the_rest_of_the_request(engine):
    mood = engine.analyze(image=np.zeros((10, 10, 3), np.uint8), audio=(16000, np.zeros(16000)),
                          text="I'm so happy, what a wonderful day")
    assert mood.ok and mood.top_emotion == "happy"
    assert mood.readings["face"].status == Status.NO_FACE
    assert mood.readings["voice"].status == Status.SILENCE
    assert mood.weights["face"] == 0 and mood.weights["voice"] == 0


def test_nothing_usable_is_reported_not_raised(engine):
    mood = engine.analyze(image=b"garbage", audio="/nope.wav", text="   ")
    assert not mood.ok and mood.status == "no_signal" and mood.top_emotion is None
    assert "image" in mood.message and "empty" in mood.message
    assert engine.analyze().status == "no_signal"


@needs_espeak
def test_speech_becomes_its_own_text_signal(engine, tmp_path):
    path = speech("I am so angry and furious with everyone today", tmp_path)
    mood = engine.analyze(audio=path)
    assert mood.readings["voice"].ok
    said = mood.readings["speech_text"]
    assert said.ok and said.top_emotion == "angry" and said.modality == "speech_text"
    assert mood.weights["speech_text"] > 0 and mood.readings.get("text").status == Status.MISSING


def test_engine_accepts_a_catalog_and_recommend_accepts_another(engine, tmp_path):
    small = Catalog(Catalog.default().frame.head(50), name="small")
    eng = fusion.MoodEngine(catalog=small, text=engine.text)
    mood = eng.analyze(text="I feel calm and content")
    assert {t.id for t in eng.recommend(mood, n=5)} <= set(small.frame["id"])
    other = Catalog(Catalog.default().frame.tail(40), name="other")
    assert {t.id for t in eng.recommend(mood, n=5, catalog=other)} <= set(other.frame["id"])


def test_workers_run_the_models_on_a_fixed_pool_of_threads(engine):
    import threading
    from concurrent.futures import ThreadPoolExecutor

    seen: set[str] = set()
    real_predict = engine.text.predict

    class Recording(type(engine.text)):
        def __init__(self):  # shares the loaded model of the session engine
            self.__dict__.update(engine.text.__dict__)

        def predict(self, x, **kw):
            seen.add(threading.current_thread().name)
            return real_predict(x, **kw)

    pooled = fusion.MoodEngine(text=Recording(), face=engine.face, voice=engine.voice, workers=2)
    with ThreadPoolExecutor(8) as callers:  # eight caller threads, like a web server's worker pool
        moods = list(callers.map(lambda i: pooled.analyze(text=f"I am so happy today, take {i}"), range(24)))
    assert all(m.top_emotion == "happy" for m in moods)
    assert 1 <= len(seen) <= 2 and all(name.startswith("moodtune-model") for name in seen)
    assert fusion.MoodEngine(text=engine.text, workers=None)._submit(threading.current_thread) is threading.current_thread()


def test_module_level_api():
    mood = fusion.analyze(text="I can't stop crying")
    assert mood.top_emotion == "sad"
    assert len(fusion.recommend(mood, n=3, strategy="uplift")) == 3


def test_mood_serialises_to_json(engine):
    mood = engine.analyze(text="wow, I did not see that coming")
    data = json.loads(json.dumps(mood.to_dict()))
    from multimodal import EMOTIONS

    assert list(data["probabilities"]) == list(EMOTIONS)
    assert data["readings"]["text"]["status"] == "ok"


def run_cli(*args, timeout=240):
    exe = shutil.which("moodtune")
    cmd = [exe, *args] if exe else [sys.executable, "-m", "interfaces.cli", *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env={**__import__("os").environ,
                                                                                     "COLUMNS": "160"})


@pytest.mark.slow  # a process, a model or many cases: seconds
def test_cli_analyze_json():
    out = run_cli("analyze", "--text", "I am furious with you", "--n", "5", "--json")
    assert out.returncode == 0, out.stderr
    data = json.loads(out.stdout)
    assert data["mood"]["top_emotion"] == "angry" and len(data["tracks"]) == 5
    assert data["mood"]["readings"]["face"]["status"] == "missing"


@pytest.mark.slow  # a process, a model or many cases: seconds
def test_cli_analyze_table_and_errors(tmp_path):
    out = run_cli("analyze", "--text", "so proud of myself!!", "--strategy", "uplift", "--n", "3")
    assert out.returncode == 0, out.stderr
    assert "Mood: happy" in out.stdout and "Recommendations (uplift)" in out.stdout
    bad = run_cli("analyze", "--text", "hi", "--strategy", "sideways")
    assert bad.returncode == 2 and "match, uplift" in bad.stderr
    none = run_cli("analyze")
    assert none.returncode == 2
    missing_cat = run_cli("analyze", "--text", "hi", "--catalog", str(tmp_path / "none.csv"))
    assert missing_cat.returncode == 2 and "no catalog file" in missing_cat.stderr


def test_engine_closes_its_worker_threads():
    import threading

    from fusion import MoodEngine

    with MoodEngine(workers=2) as engine:
        assert engine.analyze(text="I am furious with you").top_emotion == "angry"
        threads = set(engine._pool._threads)
        assert threads and all(t.is_alive() for t in threads)
    assert not any(t.is_alive() for t in threads) and engine._pool is None
    assert not any(t in threading.enumerate() for t in threads)


def test_priors_beside_a_ready_fusion_are_refused_not_ignored():
    from fusion import LateFusion, MoodEngine

    with pytest.raises(ValueError, match="priors"):
        MoodEngine(fusion=LateFusion("poe"), priors={"face": 2.0})


def test_the_core_imports_nothing_from_the_shell_or_the_lab():
    """multimodal → fusion → recommend is the core; interfaces/ (CLI, uploads), models/ (recipes, evaluation),
    benchmarks/ and app_gradio sit around it and are never imported by it."""
    code = ("import sys, multimodal, fusion, recommend; from fusion import MoodEngine, LateFusion, MoodReading; "
            "import fusion.engine, fusion.late, fusion.mood, recommend.ranking, recommend.spotify, recommend.library; "
            "print(sorted(m for m in sys.modules if m.split('.')[0] in "
            "('interfaces', 'models', 'benchmarks', 'app_gradio', 'tests')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-1000:]
    assert out.stdout.strip() == "[]"


def test_mood_and_tracks_round_trip_through_json(engine):
    from fusion import MoodReading
    from recommend import Track

    mood = engine.analyze(image=np.zeros((10, 10), np.uint8), text="I got the job!!")
    back = MoodReading.from_dict(json.loads(json.dumps(mood.to_dict())))
    assert back.to_dict() == mood.to_dict() and back.readings["face"].status == mood.readings["face"].status
    tracks = engine.recommend(mood, n=3)
    again = [Track.from_dict(json.loads(json.dumps(t.to_dict()))) for t in tracks]
    assert again == tracks
    assert [t.id for t in engine.recommend(back, n=3)] == [t.id for t in tracks]


@pytest.mark.slow  # a process, a model or many cases: seconds
def test_threads_and_warmup_make_an_engine_ready(monkeypatch):
    from fusion import MoodEngine
    from multimodal import runtime

    monkeypatch.setattr(runtime, "_threads", None)  # the setting is process-wide: undone after this test
    before = sys.modules["torch"].get_num_threads() if "torch" in sys.modules else None
    engine = MoodEngine(threads=1)
    assert runtime.math_threads() == 1
    seconds = engine.warmup()
    assert set(seconds) == {"face", "voice", "text"}
    assert all(enc._backend is not None for enc in (engine.face, engine.voice, engine.text))
    with pytest.raises(ValueError, match="at least 1"):
        MoodEngine(threads=0)
    if before is not None:
        sys.modules["torch"].set_num_threads(before)


@pytest.mark.slow  # a process, a model or many cases: seconds
def test_cli_feel_shows_the_mood_given_and_music_for_it_in_the_same_run(tmp_path):
    profile = tmp_path / "me.json"
    out = run_cli("analyze", "--text", "fine.", "--profile", str(profile), "--feel", "sad", "--n", "3", "--json")
    assert out.returncode == 0, out.stderr
    data = json.loads(out.stdout)
    assert data["mood"]["top_emotion"] == "happy" and data["given"]["top_emotion"] == "sad"
    happy = json.loads(run_cli("analyze", "--text", "fine.", "--n", "3", "--json").stdout)["tracks"]
    assert {t["id"] for t in data["tracks"]}.isdisjoint({t["id"] for t in happy})  # music for sad, not for happy
    table = run_cli("analyze", "--text", "fine.", "--profile", str(profile), "--feel", "sad", "--n", "3")
    assert "Your mood, as you gave it: sad" in table.stdout and "Recommendations (match, for sad)" in table.stdout


def test_cli_help_shows_no_type_placeholders():
    for args in (("--help",), ("analyze", "--help"), ("train", "--help"), ("journal", "delete", "--help")):
        out = run_cli(*args)
        assert out.returncode == 0 and "<bool>" not in out.stdout and "<list[str]>" not in out.stdout, out.stdout
    assert "{signal}" not in run_cli("train", "--help").stdout


def test_cli_journal_delete_answered_no_keeps_it_and_exits_0(tmp_path):
    import os

    env = {**os.environ, "MOODTUNE_HOME": str(tmp_path)}
    cmd = [sys.executable, "-m", "interfaces.cli", "journal", "delete"]
    out = subprocess.run(cmd, input="n\n", capture_output=True, text=True, timeout=60, env=env)
    assert out.returncode == 0 and "kept your journal" in out.stdout and "Aborted" not in out.stdout + out.stderr
