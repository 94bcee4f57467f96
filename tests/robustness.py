"""The hostile-input table: every case of the bad-input suite through ``MoodEngine.analyze`` beside a good text,
then the hostile uses of the service, the command line and the journal (issue 35), each with what a user gets, the
time it took and how far it pushed memory.

    python -m tests.robustness --write          # → docs/robustness.md
    python -m tests.robustness --write --ray    # ... with `moodtune serve --ray` (its listeners, its SIGTERM)
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
    """The highest resident memory of this process (or of process ``pid``) while the block runs (sampled every 5 ms)."""

    def __init__(self, pid: int | None = None) -> None:
        self.pid = pid

    def __enter__(self) -> "PeakRSS":
        self.proc, self.peak, self._stop = psutil.Process(self.pid), 0, threading.Event()
        try:
            self.base = self.proc.memory_info().rss
        except psutil.NoSuchProcess:  # a process that was over before it was watched
            self.base = 0
        self._thread = threading.Thread(target=self._watch, daemon=True)
        self._thread.start()
        return self

    def _watch(self) -> None:
        while not self._stop.is_set():
            try:
                self.peak = max(self.peak, self.proc.memory_info().rss)
            except psutil.NoSuchProcess:
                return
            time.sleep(0.005)

    def __exit__(self, *_) -> None:
        self._stop.set()
        self._thread.join()
        if self.pid is None:
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
    ap.add_argument("--ray", action="store_true", help="also start `moodtune serve --ray` (a minute more)")
    args = ap.parse_args()
    from .hostile_service import service_rows

    table = rows() + service_rows(ray=args.ray)
    lines = ["# Robustness: what a user gets for hostile input", "",
             f"`python -m tests.robustness --write{' --ray' if args.ray else ''}` on {time.strftime('%Y-%m-%d')}, "
             f"{psutil.cpu_count()} CPU cores. The signal cases go through "
             f"`MoodEngine.analyze` beside the text \"{GOOD_TEXT}\" (text cases beside a blank image), in a warm "
             "process; they are asserted in `tests/test_bad_input.py`: never `error`, never a lost request. The "
             "service, command-line and journal cases (`tests/hostile_service.py`) are the hostile uses of issue 35: "
             "`http` through the app in this process (real models), `serve` and `cli` as processes of their own "
             "(memory: that process's peak resident set), `ray` a `moodtune serve --ray` with its own cluster. They "
             "are asserted in `tests/test_http.py`, `tests/test_journal.py`, `tests/test_files.py` and "
             "`tests/test_ray_serve.py`.",
             "", "| signal | case | status | message | fused mood | time | memory peak above steady |",
             "|---|---|---|---|---|---|---|"]
    for signal, name, status, message, seconds, mb, fused in table:
        memory = mb if isinstance(mb, str) else f"{mb:.0f} MB"
        lines.append(f"| {signal} | {name} | `{status}` | {message or '-'} | {fused} | {seconds:.2f} s | {memory} |")
        print(f"{signal:<6} {name:<36} {status:<10} {seconds:6.2f} s {memory:>16}  {message[:70]}")
    if args.write:
        from multimodal.files import write_atomic

        write_atomic(ROOT / "docs" / "robustness.md", "\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
