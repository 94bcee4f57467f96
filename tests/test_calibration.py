"""Per-user calibration from corrections, and the profile that carries it."""

import json

import numpy as np
import pytest

from fusion import Calibration, CalibrationError, Profile
from fusion.late import LateFusion
from multimodal.labels import EMOTIONS
from multimodal.reading import ModalityReading
from recommend import ProfileError, Session


def reading(modality: str, probs) -> ModalityReading:
    return ModalityReading.from_probs(modality, np.asarray(probs, dtype=float))


def peaked(emotion: str, mass: float) -> np.ndarray:
    p = np.full(len(EMOTIONS), (1 - mass) / (len(EMOTIONS) - 1))
    p[EMOTIONS.index(emotion)] = mass
    return p


def stream(rng: np.random.Generator, n: int, sad_tilt: float):
    """A user's readings: text right 70% of the time, a face right 80% of the time but tilted toward sad."""
    for _ in range(n):
        truth = EMOTIONS[rng.integers(len(EMOTIONS))]
        text = peaked(truth if rng.random() < 0.7 else EMOTIONS[rng.integers(7)], 0.6)
        face = peaked(truth if rng.random() < 0.8 else EMOTIONS[rng.integers(7)], 0.7)
        face = face * np.where(np.array(EMOTIONS) == "sad", sad_tilt, 1.0)
        yield {"text": reading("text", text), "face": reading("face", face / face.sum())}, truth


def test_three_contrary_corrections_do_not_overturn_a_confident_reading():
    fusion = LateFusion()
    readings = {"text": reading("text", peaked("sad", 0.85)), "face": reading("face", peaked("sad", 0.8))}
    mood, cal = fusion.fuse(readings), Calibration()
    for _ in range(3):
        cal = cal.corrected(mood.readings, mood.weights, "happy")
    calibrated = fusion.fuse(readings, calibration=cal)
    assert calibrated.top_emotion == "sad"
    assert calibrated.probabilities["happy"] > mood.probabilities["happy"]  # nudged, not ignored


@pytest.mark.slow  # a process, a model or many cases: seconds
@pytest.mark.parametrize("tilt,min_gain", [(1.0, -0.02), (30.0, 0.10)])
def test_ten_corrections_fix_a_face_that_reads_sadder_and_leave_an_unbiased_user_alone(tilt, min_gain):
    rng = np.random.default_rng(0)
    fusion = LateFusion()
    gains = []
    for _ in range(8):
        cal, user = Calibration(), stream(rng, 400, tilt)
        for readings, truth in user:  # the user corrects the analyses that were wrong
            mood = fusion.fuse(readings, calibration=cal)
            if mood.top_emotion != truth:
                cal = cal.corrected(mood.readings, mood.weights, truth)
            if len(cal.corrections) == 10:
                break
        test = [next(user) for _ in range(100)]
        before = np.mean([fusion.fuse(r).top_emotion == t for r, t in test])
        after = np.mean([fusion.fuse(r, calibration=cal).top_emotion == t for r, t in test])
        gains.append(after - before)
    assert np.mean(gains) >= min_gain, gains
    if tilt > 1:
        assert cal.weight_factors_["face"] < 1 and any("face reads sadder" in line for line in cal.explain())


def test_a_calibration_travels_as_data_and_is_refitted_from_its_corrections():
    fusion = LateFusion()
    mood = fusion.fuse({"face": reading("face", peaked("sad", 0.7)), "text": reading("text", peaked("happy", 0.5))})
    cal = Calibration().corrected(mood.readings, mood.weights, "happy")
    data = json.loads(json.dumps(cal.to_dict()))
    assert Calibration.from_dict(data) == cal
    data["biases"]["face"] = [50.0] * 7  # tampered parameters are ignored: they are refitted
    assert Calibration.from_dict(data).biases_ == cal.biases_
    # a client sends its calibration with every request: the same corrections are fitted once
    assert Calibration.from_dict(data) is Calibration.from_dict(json.loads(json.dumps(data)))
    data["corrections"][0]["emotion"] = "sad"
    assert Calibration.from_dict(data).corrections[0].emotion == "sad"
    for bad in ({"corrections": [{"emotion": "joy", "signals": {}}]}, {"corrections": 3}, [],
                {"corrections": [{"emotion": "sad", "signals": {"face": {"probabilities": [1], "weight": 1}}}]}):
        with pytest.raises(CalibrationError):
            Calibration.from_dict(bad)
    with pytest.raises(CalibrationError, match="unknown emotion"):
        cal.corrected(mood.readings, mood.weights, "joy")


def test_a_corrected_mood_remembers_the_uncalibrated_readings():
    fusion = LateFusion()
    readings = {"face": reading("face", peaked("sad", 0.7)), "text": reading("text", peaked("happy", 0.6))}
    cal = Calibration()
    for _ in range(10):
        cal = cal.corrected(fusion.fuse(readings, calibration=cal).readings, fusion.fuse(readings).weights, "happy")
    calibrated = fusion.fuse(readings, calibration=cal)
    face = calibrated.readings["face"]
    assert face.extras["uncalibrated"] == readings["face"].probabilities
    assert face.probabilities["sad"] < readings["face"].probabilities["sad"]
    for c in cal.corrections:  # what is learned from is always the model's own reading
        np.testing.assert_allclose(c.signals["face"][0], readings["face"].vector, atol=1e-5)


def test_profile_round_trip_and_errors(tmp_path):
    fusion = LateFusion()
    mood = fusion.fuse({"text": reading("text", peaked("sad", 0.6))})
    profile = Profile(Session(liked=("a",)), Calibration().corrected(mood.readings, mood.weights, "angry"))
    assert Profile.load(profile.save(tmp_path / "p.json")) == profile
    assert Profile.load(tmp_path / "none.json", missing_ok=True) == Profile()
    (tmp_path / "bad.json").write_text('{"session": {}, "calibration": {"corrections": "x"}}')
    with pytest.raises(ProfileError, match="not a valid moodtune profile"):
        Profile.load(tmp_path / "bad.json")


def test_the_engine_learns_a_correction_into_the_profile_it_returns(engine):
    mood = engine.analyze(text="The meeting was moved to Thursday.")
    profile = None
    for _ in range(10):
        profile = engine.correct(mood, "sad", profile)
    assert len(profile.calibration.corrections) == 10 and profile.session == Session()
    again = engine.analyze(text="The meeting was moved to Thursday.", profile=profile)
    assert again.probabilities["sad"] > mood.probabilities["sad"]
    assert again.valence < mood.valence  # the music follows the calibrated mood
    assert engine.analyze(text="The meeting was moved to Thursday.").probabilities == mood.probabilities
    with pytest.raises(CalibrationError, match="no signal"):
        engine.correct(engine.analyze(text=""), "sad")


def test_a_reading_whose_probabilities_are_beyond_one_is_not_learned():
    # a mood sent back over HTTP carries its readings' extras; a forged "uncalibrated" distribution must not become a
    # calibration that every later request refuses
    forged = reading("text", peaked("happy", 0.6))
    forged = ModalityReading(**{**forged.__dict__, "extras": {"uncalibrated": {e: 1e308 for e in EMOTIONS}}})
    with pytest.raises(CalibrationError, match="from 0 to 1"):
        Calibration().corrected({"text": forged}, {"text": 1.0}, "sad")
