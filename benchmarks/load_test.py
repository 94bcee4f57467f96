"""Load test of the demo: N concurrent gradio_client users × M requests on loopback.

    python benchmarks/load_test.py --users 16 --requests 25

Reports errors, p50/p95 latency and the server's memory growth (RSS after a warm-up vs at the end). Traffic
goes only to 127.0.0.1; every loop is bounded in count and time.
"""

from __future__ import annotations

import argparse
import socket
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

TEXTS = ["I am furious with you", "so proud of myself!!", "ugh, Mondays", "I feel calm and content",
         "I can't stop crying", "wow, I did not see that coming"]


def rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run(users: int, requests: int, timeout_s: float = 1800) -> dict:
    import app_gradio
    from gradio_client import Client

    demo = app_gradio.build_demo()
    demo.queue(default_concurrency_limit=2, max_size=256)
    port = free_port()
    demo.launch(server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, quiet=True)
    url = f"http://127.0.0.1:{port}/"
    try:
        warm = Client(url, verbose=False)
        for t in TEXTS:  # warm-up: models loaded, caches filled
            warm.predict(None, None, t, "match", 10, False, api_name="/analyze")
        base_rss = rss_mb()
        latencies: list[float] = []
        errors: list[str] = []
        lock = threading.Lock()
        deadline = time.monotonic() + timeout_s

        def user(u: int) -> None:
            client = Client(url, verbose=False)
            for r in range(requests):
                if time.monotonic() > deadline:
                    with lock:
                        errors.append("time limit")
                    return
                t0 = time.perf_counter()
                try:
                    out = client.predict(None, None, TEXTS[(u + r) % len(TEXTS)], ("match", "uplift")[r % 2], 10, False,
                                         api_name="/analyze")
                    assert out[0]["label"]
                    with lock:
                        latencies.append((time.perf_counter() - t0) * 1000)
                except Exception as exc:  # noqa: BLE001 - counted and reported
                    with lock:
                        errors.append(f"{type(exc).__name__}: {exc}"[:200])

        t0 = time.perf_counter()
        with ThreadPoolExecutor(users) as pool:
            list(pool.map(user, range(users)))
        wall = time.perf_counter() - t0
        end_rss = rss_mb()
    finally:
        demo.close()
    lat = np.array(latencies) if latencies else np.array([np.nan])
    return {"users": users, "requests": users * requests, "ok": len(latencies), "errors": len(errors),
            "first_errors": errors[:3], "p50_ms": float(np.percentile(lat, 50)), "p95_ms": float(np.percentile(lat, 95)),
            "throughput_rps": len(latencies) / wall, "rss_start_mb": base_rss, "rss_end_mb": end_rss,
            "rss_growth": (end_rss - base_rss) / base_rss}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--users", type=int, default=16)
    ap.add_argument("--requests", type=int, default=25)
    args = ap.parse_args()
    r = run(args.users, args.requests)
    print(f"{r['users']} users × {args.requests} requests: {r['ok']} ok, {r['errors']} errors; "
          f"p50 {r['p50_ms']:.0f} ms, p95 {r['p95_ms']:.0f} ms, {r['throughput_rps']:.1f} req/s; "
          f"RSS {r['rss_start_mb']:.0f} → {r['rss_end_mb']:.0f} MB ({r['rss_growth']:+.1%})")
    for e in r["first_errors"]:
        print("  error:", e)
    sys.exit(1 if r["errors"] or r["rss_growth"] > 0.10 else 0)


if __name__ == "__main__":
    main()
