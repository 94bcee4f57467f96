"""Library scan on generated audio: sine chords at different tempi and modes."""

import numpy as np
import soundfile as sf

from recommend.library import scan

SR = 22050


def chord_track(path, freqs, bpm, loud, seconds=12.0, bright=False):
    t = np.arange(int(SR * seconds)) / SR
    tone = sum(np.sin(2 * np.pi * f * t) + (0.5 * np.sin(2 * np.pi * 3 * f * t) if bright else 0) for f in freqs)
    beat = 60 / bpm
    env = np.exp(-((t % beat) / (0.25 * beat)))  # a plucked note on every beat
    clicks = (np.random.default_rng(0).standard_normal(len(t)) * np.exp(-((t % beat) / 0.01))) * (0.6 if bright else 0)
    y = loud * (tone / len(freqs) * env + clicks)
    sf.write(path, (y / max(1, np.abs(y).max())).astype(np.float32) * loud, SR)


def test_scan_orders_energy_and_valence_and_caches(tmp_path):
    music = tmp_path / "music" / "Me"
    music.mkdir(parents=True)
    c_major = [261.63, 329.63, 392.00]
    a_minor = [220.00, 261.63, 329.63]
    chord_track(music / "happy_fast.wav", c_major, bpm=140, loud=0.9, bright=True)
    chord_track(music / "sad_slow.wav", a_minor, bpm=66, loud=0.15)
    (music / "broken.wav").write_bytes(b"not audio")
    cache = tmp_path / "cache.json"
    catalog, failed = scan(tmp_path / "music", cache=cache, progress=False)
    assert len(catalog) == 2 and failed == ["broken.wav: " + failed[0].split(": ")[1]]
    tracks = {t.name: t for t in catalog}
    happy, sad = tracks["happy_fast"].features, tracks["sad_slow"].features
    assert happy["energy"] > sad["energy"] + 0.2
    assert happy["valence"] > sad["valence"]
    assert happy["mode"] == 1 and sad["mode"] == 0
    assert abs(happy["tempo"] - 140) < 15 or abs(happy["tempo"] - 70) < 8  # allow half-tempo
    assert tracks["happy_fast"].extras["estimated"] is True and tracks["happy_fast"].artist == "Me"
    # cached: a second scan reads no audio
    import recommend.library as lib

    calls = []
    original = lib.estimate_features
    lib.estimate_features = lambda *a, **k: calls.append(a) or original(*a, **k)
    try:
        again, _ = scan(tmp_path / "music", cache=cache, progress=False)
    finally:
        lib.estimate_features = original
    assert len(again) == 2 and len(calls) == 1  # only the broken file is retried
