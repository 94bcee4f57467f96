"""Load test of the demo: N concurrent gradio_client users × M requests on loopback.

    python benchmarks/load_test.py --users 16 --requests 25

Every request sends what a demo user sends: a 640×480 webcam frame with a face (from FER2013 val when
../shared/data is there), 4 s of speech (espeak-ng; a synthetic voiced signal without it) and a line of text.
Reports errors, p50/p95 latency, throughput and the demo process's memory growth (RSS after a concurrent warm-up
round vs at the end, plus the peak). Traffic goes only to 127.0.0.1; every loop is bounded in count and time.
Exit status 1 on any error or on memory growth above 10%.
"""

from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

TEXTS = ["I am furious with you", "so proud of myself!!", "ugh, Mondays", "I feel calm and content",
         "I can't stop crying", "wow, I did not see that coming"]


def rss_mb(pid: int | str = "self") -> float:
    """Resident memory of a process (this one by default), in MB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def request_inputs(folder: Path, data: Path | None) -> tuple[Path, Path]:
    """A 640×480 frame with a real face (FER2013 val, when present) and 4 s of espeak-ng speech, as files."""
    import cv2
    import soundfile as sf

    from run import speech_clip, webcam_frame

    image, audio = folder / "frame.png", folder / "speech.wav"
    cv2.imwrite(str(image), cv2.cvtColor(webcam_frame(data), cv2.COLOR_RGB2BGR))
    sr, y = speech_clip()
    sf.write(audio, y, sr)
    return image, audio


def run(users: int, requests: int, timeout_s: float = 1800, data: Path | None = None,
        with_media: bool = True) -> dict:
    """Start the demo in its own process on loopback, warm it up with one concurrent round, time users × requests.

    Each request sends a face frame, a speech clip and a line of text (with_media=False: text only). Memory
    growth compares the RSS after the concurrent warm-up round (models loaded, per-thread allocator arenas
    created) with the RSS at the end; the RSS trace's peak is reported too.
    """
    import tempfile
    import urllib.request

    from gradio_client import Client, handle_file

    port = free_port()
    tmp = tempfile.TemporaryDirectory(prefix="moodtune-load-")
    log = open(Path(tmp.name) / "demo.log", "w+")  # the demo's stderr, shown if it dies
    server = subprocess.Popen([sys.executable, "-c", f"import app_gradio; app_gradio.launch(port={port})"], cwd=ROOT,
                              stdout=subprocess.DEVNULL, stderr=log, text=True)
    url = f"http://127.0.0.1:{port}/"
    try:
        for _ in range(240):  # the demo process starts (imports, UI build) within a minute
            if server.poll() is not None:
                log.seek(0)
                raise RuntimeError(f"the demo exited: {log.read()[-2000:]}")
            try:
                urllib.request.urlopen(url, timeout=2).close()
                break
            except OSError:
                time.sleep(0.25)
        image, audio = request_inputs(Path(tmp.name), data) if with_media else (None, None)
        clients = [Client(url, verbose=False) for _ in range(users)]
        latencies: list[float] = []
        errors: list[str] = []
        lock = threading.Lock()
        deadline = time.monotonic() + timeout_s

        def ask(client, text: str, strategy: str) -> None:
            files = (handle_file(str(image)), handle_file(str(audio))) if with_media else (None, None)
            out = client.predict(*files, text, strategy, 10, False, api_name="/analyze")
            assert out[0]["label"], "no mood label"
            assert out[5]["data"], "no recommendations"

        def user(u: int, count: int, record: bool) -> None:
            for r in range(count):
                if time.monotonic() > deadline:
                    with lock:
                        errors.append("time limit")
                    return
                t0 = time.perf_counter()
                try:
                    ask(clients[u], TEXTS[(u + r) % len(TEXTS)], ("match", "uplift")[r % 2])
                    if record:
                        with lock:
                            latencies.append((time.perf_counter() - t0) * 1000)
                except Exception as exc:  # noqa: BLE001 - counted and reported
                    with lock:
                        errors.append(f"{type(exc).__name__}: {exc}"[:200])

        with ThreadPoolExecutor(users) as pool:  # warm-up: every user twice (match, uplift), concurrently
            list(pool.map(lambda u: user(u, 2, False), range(users)))
        base_rss = rss_mb(server.pid)
        trace: list[float] = []
        done = threading.Event()

        def sample() -> None:
            while not done.wait(0.5):
                trace.append(rss_mb(server.pid))

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        t0 = time.perf_counter()
        with ThreadPoolExecutor(users) as pool:
            list(pool.map(lambda u: user(u, requests, True), range(users)))
        wall = time.perf_counter() - t0
        done.set()
        sampler.join()
        end_rss = rss_mb(server.pid)
    finally:
        server.terminate()
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
        log.close()
        tmp.cleanup()
    lat = np.array(latencies) if latencies else np.array([np.nan])
    return {"users": users, "requests": users * requests, "ok": len(latencies), "errors": len(errors),
            "first_errors": errors[:3], "p50_ms": float(np.percentile(lat, 50)), "p95_ms": float(np.percentile(lat, 95)),
            "throughput_rps": len(latencies) / wall, "rss_start_mb": base_rss, "rss_end_mb": end_rss,
            "rss_peak_mb": max(trace, default=end_rss),
            "rss_trace_mb": [trace[int(i)] for i in np.linspace(0, len(trace) - 1, 11)] if trace else [], "rss_growth": (end_rss - base_rss) / base_rss,
            "with_media": with_media}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--users", type=int, default=16)
    ap.add_argument("--requests", type=int, default=25)
    ap.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data",
                    help="FER2013 val supplies the face in the test frame (a blank frame without it)")
    ap.add_argument("--text-only", action="store_true", help="send only text (no image or audio)")
    ap.add_argument("--write", action="store_true", help="also write the result to docs/load_test.md")
    args = ap.parse_args()
    r = run(args.users, args.requests, data=args.data if args.data.exists() else None,
            with_media=not args.text_only)
    summary = (f"{r['users']} users × {args.requests} requests: {r['ok']} ok, {r['errors']} errors; "
               f"p50 {r['p50_ms']:.0f} ms, p95 {r['p95_ms']:.0f} ms, {r['throughput_rps']:.1f} req/s; "
               f"RSS {r['rss_start_mb']:.0f} → {r['rss_end_mb']:.0f} MB ({r['rss_growth']:+.1%}, "
               f"peak {r['rss_peak_mb']:.0f} MB); {'face + voice + text' if r['with_media'] else 'text only'} "
               f"per request, {os.cpu_count()} cores")
    trace = "RSS over the run (MB, 0%..100%): " + " ".join(f"{v:.0f}" for v in r["rss_trace_mb"])
    print(summary)
    print(trace)
    if args.write:
        (ROOT / "docs" / "load_test.md").write_text(
            f"# Load test\n\nLatest run: `python benchmarks/load_test.py --users {args.users} --requests {args.requests} "
            f"--write` on {time.strftime('%Y-%m-%d')}.\n\n- {summary}\n- {trace}\n\nThe demo runs in its own process "
            "(`app_gradio.launch`, queue concurrency 2); latency includes the wait in its queue, so p50 ≈ users × "
            "service time / 2. Memory is the demo process's RSS after a concurrent warm-up round vs at the end.\n")
    for e in r["first_errors"]:
        print("  error:", e)
    sys.exit(1 if r["errors"] or r["rss_growth"] > 0.10 else 0)


if __name__ == "__main__":
    main()
