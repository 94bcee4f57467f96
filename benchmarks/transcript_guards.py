"""How Whisper's guards treat real and invented transcripts (models/voice/MODEL_CARD.md, "Transcript guards").

    python benchmarks/transcript_guards.py [--data ../shared/data]        # espeak-ng, codec2-examples, alsa-utils

Prints, per source, how many transcripts are used as heard, repaired (one phrase said again and again back to back,
kept once) or given no weight, and by which guard (multimodal.voice.check_transcript): RAVDESS speech (two known
sentences, 6 per actor of 16: 96 clips), the Debian recordings of real people (tests/conftest.py), and espeak-ng's
"Good morning" cut to 0.5-1.0 s (the issue's invented transcript) and ten whole espeak sentences. For RAVDESS it also
counts transcripts that hold every word of the sentence said.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from collections import Counter
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from models.voice.everyday_check import everyday_files  # noqa: E402
from multimodal import VoiceEncoder  # noqa: E402

STATEMENTS = {"01": "kids are talking by the door", "02": "dogs are sitting by the door"}
SENTENCES = ("I got the job", "I am so tired of all this", "What a lovely day", "Leave me alone",
             "I can't believe you did that", "Thank you so much", "I miss her every day", "This is the best news ever",
             "Why does this always happen to me", "Good night")


def outcome(reading) -> str:
    """used / repaired / no weight: <guard>, from a voice reading's extras."""
    problem, note = reading.extras.get("transcript_problem", ""), reading.extras.get("transcript_note", "")
    if not reading.ok or not reading.extras.get("transcript", "").strip():
        return "no words"
    if problem:
        return "no weight: " + problem.split(" (")[0]
    return "repaired" if note else "used"


def report(name: str, readings: list, extra: str = "") -> None:
    counts = Counter(outcome(r) for r in readings)
    rates = [r.extras["transcript_guards"]["words_per_second"] for r in readings if r.ok and "transcript_guards" in r.extras]
    print(f"{name}: {len(readings)} clips: " + ", ".join(f"{k} {v}" for k, v in counts.most_common())
          + (f"; words a second of speech: median {np.median(rates):.1f}, max {max(rates):.1f}" if rates else "") + extra)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data")
    args = ap.parse_args()
    encoder = VoiceEncoder()
    d = np.load(args.data / "voice" / "ravdess_actors01-16.npz")
    audio, offsets, rate = d["audio"], d["offsets"], int(d["sample_rate"])
    picks = np.concatenate([np.flatnonzero(d["actors"] == a)[::10][:6] for a in sorted(set(d["actors"]))])
    clips = [(audio[offsets[i]:offsets[i + 1]].astype(np.float32) / 32768, rate) for i in picks]
    readings = encoder.predict_batch(clips)
    whole = sum(set(STATEMENTS[d["statement"][i]].split()) <= set(r.extras.get("transcript", "").lower().strip(".!?").replace(",", "").split())
                for i, r in zip(picks, readings) if outcome(r) in ("used", "repaired"))
    report("RAVDESS", readings, f"; every word of the sentence in {whole} of the used ones")
    for source, paths in everyday_files().items():
        report(f"Debian {source}", encoder.predict_batch([str(p) for p in paths]))
    with tempfile.TemporaryDirectory() as tmp:
        def spoken(text: str) -> Path:
            path = Path(tmp) / "s.wav"
            subprocess.run(["espeak-ng", "-w", str(path), text], check=True)
            return path
        import soundfile as sf

        y, sr = sf.read(spoken("Good morning"))
        cuts = [(y[:int(s * sr)].astype(np.float32), sr) for s in (0.5, 0.6, 0.7, 0.8, 0.9, 1.0)]
        cut_readings = encoder.predict_batch(cuts)
        report("espeak 'Good morning' cut to 0.5-1.0 s", cut_readings,
               "; kept: " + ", ".join(repr(r.extras.get("transcript", "")) for r in cut_readings))
        report("espeak sentences", [encoder.predict(str(spoken(s))) for s in SENTENCES])


if __name__ == "__main__":
    main()
