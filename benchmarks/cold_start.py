"""Cold start: the whole process of a first command, as a new user meets it (docs/cold_start.md).

    python benchmarks/cold_start.py [--runs 5] [--tree PATH ...] [--audio]

Runs ``python -m interfaces.cli analyze --text "I got the job"`` (with ``--audio``: ``analyze --audio`` of a 4-s
espeak-ng clip instead) ``--runs`` times in fresh processes for each
source tree given (default: this one; give another checkout to compare), alternating between trees so that a busy
machine slows both alike, and prints the median and range of the wall time and of the peak memory (max RSS).
``MOODTUNE_HOME`` is a temporary folder, so no profile or journal of yours is read.
"""

from __future__ import annotations

import argparse
import os
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
COMMAND = ["-m", "interfaces.cli", "analyze", "--text", "I got the job"]


def one_run(tree: Path, home: str, command: list[str]) -> tuple[float, float]:
    """(seconds, peak MB) of one whole process of ``command`` with ``tree`` first on the path."""
    env = {**os.environ, "PYTHONPATH": str(tree), "MOODTUNE_HOME": home}
    start = time.perf_counter()
    proc = subprocess.Popen([sys.executable, *command], cwd=tempfile.gettempdir(), env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    _, status, usage = os.wait4(proc.pid, 0)
    seconds = time.perf_counter() - start
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"{tree}: the command failed")
    return seconds, usage.ru_maxrss / 1024


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--tree", type=Path, action="append", help="a source tree to time (repeatable)")
    ap.add_argument("--audio", action="store_true", help="time analyze --audio of a 4-s spoken clip instead")
    args = ap.parse_args()
    trees = args.tree or [ROOT]
    results: dict[Path, list[tuple[float, float]]] = {t: [] for t in trees}
    with tempfile.TemporaryDirectory() as home:
        command = COMMAND
        if args.audio:
            clip = Path(home) / "clip.wav"
            subprocess.run(["espeak-ng", "-s", "120", "-w", str(clip),
                            "I really did not expect this to go so well, I am thrilled"], check=True)
            command = ["-m", "interfaces.cli", "analyze", "--audio", str(clip)]
        for _ in range(args.runs):
            for tree in trees:
                results[tree].append(one_run(tree, home, command))
    load = os.getloadavg()[0]
    print(f"`moodtune {shlex.join(command[2:])}`, {args.runs} whole processes per tree, "
          f"{os.cpu_count()} cores, load average {load:.1f}")
    for tree, runs in results.items():
        secs, mbs = [r[0] for r in runs], [r[1] for r in runs]
        print(f"{tree}: median {statistics.median(secs):.2f} s ({min(secs):.2f}-{max(secs):.2f}), "
              f"peak memory median {statistics.median(mbs):.0f} MB")


if __name__ == "__main__":
    main()
