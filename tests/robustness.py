"""The hostile-input table: every case of the bad-input suite through ``MoodEngine.analyze`` beside a good text,
with the status and message a user gets, the time it took and how far it pushed the process's memory.

    python -m tests.robustness --write     # → docs/robustness.md
"""

from __future__ import annotations

import argparse
import threading
import time
from pathlib import Path

import numpy as np
import psutil

from .hostile_inputs import BAD_AUDIO, BAD_IMAGES, BAD_TEXT, GOOD_TEXT

ROOT = Path(__file__).resolve().parents[1]


class PeakRSS:
    """The highest resident memory of this process while the block runs (sampled every 5 ms)."""

    def __enter__(self) -> "PeakRSS":
        self.proc, self.peak, self._stop = psutil.Process(), 0, threading.Event()
        self.base = self.proc.memory_info().rss
        self._thread = threading.Thread(target=self._watch, daemon=True)
        self._thread.start()
        return self

    def _watch(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, self.proc.memory_info().rss)
            time.sleep(0.005)

    def __exit__(self, *_) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self.proc.memory_info().rss)

    @property
    def growth_mb(self) -> float:
        return max(0, self.peak - self.base) / 2**20


def rows() -> list[tuple[str, str, str, str, float, float]]:
    from fusion import MoodEngine

    engine = MoodEngine()
    warm_audio = (16000, (0.3 * np.sin(np.arange(32000) / 7)).astype(np.float32))  # runs speech detection once
    engine.analyze(image=np.zeros((64, 64, 3), np.uint8), audio=warm_audio, text=GOOD_TEXT)
    out = []
    for signal, cases in (("face", BAD_IMAGES), ("voice", BAD_AUDIO), ("text", BAD_TEXT)):
        for name, value in cases.items():
            kwargs = {"image": value} if signal == "face" else {"audio": value} if signal == "voice" else {"text": value}
            if signal != "text":
                kwargs["text"] = GOOD_TEXT
            else:
                kwargs["image"] = np.zeros((10, 10), np.uint8)
            with PeakRSS() as mem:
                t = time.perf_counter()
                mood = engine.analyze(**kwargs)
                seconds = time.perf_counter() - t
            r = mood.readings[signal]
            message = (r.message or "").replace("|", "/").replace("\n", " ")
            fused = mood.top_emotion if mood.ok else "no mood"
            out.append((signal, name, r.status.value, message[:160], seconds, mem.growth_mb, fused))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--write", action="store_true", help="write docs/robustness.md")
    args = ap.parse_args()
    table = rows()
    lines = ["# Robustness: what a user gets for hostile input", "",
             f"`python -m tests.robustness --write` on {time.strftime('%Y-%m-%d')}. Each case goes through "
             f"`MoodEngine.analyze` beside the text \"{GOOD_TEXT}\" (text cases beside a blank image), in a warm "
             "process. The same cases are asserted in `tests/test_bad_input.py`: never `error`, never a lost request.",
             "", "| signal | case | status | message | fused mood | time | memory peak above steady |",
             "|---|---|---|---|---|---|---|"]
    for signal, name, status, message, seconds, mb, fused in table:
        lines.append(f"| {signal} | {name} | `{status}` | {message or '-'} | {fused} | {seconds:.2f} s | {mb:.0f} MB |")
        print(f"{signal:<6} {name:<36} {status:<10} {seconds:6.2f} s {mb:6.0f} MB  {message[:70]}")
    if args.write:
        from multimodal.files import write_atomic

        write_atomic(ROOT / "docs" / "robustness.md", "\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
