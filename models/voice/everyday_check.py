"""Check: how the shipped voice encoder reads real people who were not acting.

    apt-get install codec2-examples alsa-utils   # Debian/Ubuntu; CI installs both
    python -m models.voice.everyday_check

Two Debian packages carry recordings of real people that no model here trained on: codec2-examples (read sentences
and amateur-radio calls, several speakers, mostly 8-kHz telephone band) and alsa-utils (one speaker saying two-word
channel names). This prints each file's reading (with a transcript, as the encoder reads by default, and for emotion
only) and the counts per source; the model card reports them and ``tests/test_voice.py`` holds the angry share down.
"""

from __future__ import annotations

import argparse
from collections import Counter
from pathlib import Path

from multimodal import VoiceEncoder

SOURCES = {"codec2": Path("/usr/share/codec2/wav"), "alsa": Path("/usr/share/sounds/alsa")}


def everyday_files() -> dict[str, list[Path]]:
    """The WAV files of each source that is installed."""
    return {name: sorted(folder.glob("*.wav")) for name, folder in SOURCES.items() if folder.is_dir()}


def main(argv: list[str] | None = None) -> None:
    argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter).parse_args(argv)
    files = everyday_files()
    if not any(files.values()):
        raise SystemExit("neither codec2-examples nor alsa-utils is installed: apt-get install codec2-examples alsa-utils")
    for transcribe in (True, False):
        encoder = VoiceEncoder(transcribe=transcribe)
        how = "with a transcript" if transcribe else "emotion only"
        for source, paths in files.items():
            readings = encoder.predict_batch([str(p) for p in paths])
            for path, r in zip(paths, readings):
                said = f"  {r.extras.get('transcript', '')[:60]!r}" if r.ok and transcribe else ""
                what = f"{r.top_emotion} {max(r.probabilities.values()):.2f} (quality {r.quality:.2f})" if r.ok else r.message
                print(f"{how:17s} {source:6s} {path.name:20s} {what}{said}")
            tops = Counter(r.top_emotion for r in readings if r.ok)
            print(f"{how:17s} {source:6s} {sum(tops.values())} takes with speech of {len(paths)}: "
                  + ", ".join(f"{e} {n}" for e, n in tops.most_common()) + "\n")


if __name__ == "__main__":
    main()
