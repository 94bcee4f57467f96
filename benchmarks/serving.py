"""Serving benchmark: the engine in process vs `moodtune serve` (1 and 2 workers) vs Ray Serve (1 and 2 replicas).

    pip install -e ".[serve]" && python benchmarks/serving.py [--users 16 --requests 25] [--write]

Each configuration gets the same load: ``users`` concurrent clients × ``requests`` mixed requests (a third text only,
a third text + a 640×480 webcam frame with a face, a third text + frame + 4 s of speech), each analysing and
recommending 10 tracks. Reported: requests/s, p50/p95 latency, errors, the resident memory of the serving processes
before (once ready) and after the load, and the time from start to a 200 from /healthz. Also: the overhead of one
text-only request over HTTP against the same call in process. Everything stays on 127.0.0.1 (Ray included:
``RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0`` keeps its node on loopback). ``--write`` writes docs/serving.md.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Callable

import numpy as np
import psutil

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from load_test import TEXTS, free_port, request_inputs  # noqa: E402
from run import timeit  # noqa: E402

from multimodal.files import write_atomic  # noqa: E402

KINDS = ("text", "text + face", "text + face + voice")


def tree_rss_mb(pids: list[int]) -> float:
    """Resident memory of these processes and their children, in MB."""
    seen, total = set(), 0.0
    for pid in pids:
        try:
            root = psutil.Process(pid)
            for p in [root, *root.children(recursive=True)]:
                if p.pid not in seen:
                    seen.add(p.pid)
                    total += p.memory_info().rss
        except psutil.NoSuchProcess:
            pass
    return total / 2**20


def ray_pids() -> list[int]:
    out = []
    for p in psutil.process_iter(["name", "cmdline"]):
        line = " ".join(p.info["cmdline"] or [])
        if p.info["name"] in ("raylet", "gcs_server") or "ray::" in line or any(
                f"ray/{part}/" in line for part in ("_private", "autoscaler", "dashboard")):  # monitor, dashboard too
            out.append(p.pid)
    return out


def listeners(processes: list[psutil.Process]) -> set[str]:
    """The addresses these processes listen on (TCP)."""
    out = set()
    for p in processes:
        try:
            out |= {c.laddr.ip for c in p.net_connections(kind="inet") if c.status == psutil.CONN_LISTEN}
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            pass
    return out


def replica_pids() -> list[int]:
    """Ray Serve's replica processes (``ray::ServeReplica:...``)."""
    return [p.pid for p in psutil.process_iter(["cmdline"]) if "ServeReplica" in " ".join(p.info["cmdline"] or [])]


def load_watching_replicas(call: Callable[[int], Any], users: int, requests: int) -> tuple[dict[str, Any], str]:
    """:func:`load`, counting Ray Serve's replica processes every half second: how far and how soon it scaled."""
    import threading

    seen: list[tuple[float, int]] = []
    done = threading.Event()
    start = time.perf_counter()

    def watch() -> None:
        while not done.wait(0.5):
            seen.append((time.perf_counter() - start, len(replica_pids())))

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    try:
        result = load(call, users, requests)
    finally:
        done.set()
        watcher.join()
    first = seen[0][1] if seen else 0
    peak = max((n for _, n in seen), default=0)
    grew = next((t for t, n in seen if n > first), None)
    when = f", the {first + 1}{'nd' if first == 1 else 'th'} from {grew:.0f} s into the load" if grew is not None else ""
    return result, f"replicas during the load: {first} at the start, {peak} at most{when}"


def warmed(call: Callable[[int], Any], users: int, pids: list[int]) -> float:
    """A concurrent warm-up round (each client sends one request of each kind), then the memory: the arenas and
    per-thread buffers the first concurrent requests allocate are not growth."""
    load(call, users, len(KINDS))
    return tree_rss_mb(pids)


def load(call: Callable[[int], Any], users: int, requests: int) -> dict[str, Any]:
    """``users`` threads × ``requests`` calls of ``call(i)``; latencies, errors, throughput."""
    latencies: list[float] = []
    errors: list[str] = []

    def user(u: int) -> None:
        for r in range(requests):
            t = time.perf_counter()
            try:
                call(u * requests + r)
                latencies.append(time.perf_counter() - t)
            except Exception as exc:  # noqa: BLE001 - every failure is counted and shown
                errors.append(f"{type(exc).__name__}: {str(exc)[:120]}")

    start = time.perf_counter()
    with ThreadPoolExecutor(users) as pool:
        list(pool.map(user, range(users)))
    wall = time.perf_counter() - start
    ms = np.array(latencies) * 1000
    return {"requests": users * requests, "errors": len(errors), "first_error": errors[0] if errors else "",
            "rps": len(latencies) / wall, "p50": float(np.percentile(ms, 50)) if len(ms) else float("nan"),
            "p95": float(np.percentile(ms, 95)) if len(ms) else float("nan"), "wall_s": wall}


def wait_ready(url: str, proc: subprocess.Popen, workers: int = 1, timeout: float = 600) -> float:
    """Seconds from now until ``workers`` different processes (uvicorn workers, Serve replicas) have answered /healthz
    with 200: the first answers while the others still load their models, so the first 200 alone would start the load
    against one of two."""
    import httpx

    start = time.perf_counter()
    answered: set[str] = set()
    while time.perf_counter() - start < timeout:
        if proc.poll() is not None:
            raise RuntimeError(f"the server exited: {proc.stdout.read().decode()[-2000:] if proc.stdout else ''}")
        try:
            r = httpx.get(f"{url}/healthz", timeout=2)  # a new connection each time: any worker may take it
            if r.status_code == 200:
                answered.add(r.headers.get("X-Moodtune-Worker", ""))
                if len(answered) >= workers:
                    return time.perf_counter() - start
        except httpx.HTTPError:
            pass
        time.sleep(0.25)
    raise TimeoutError(f"{url}: {len(answered)} of {workers} workers ready in {timeout} s")


def http_call(url: str, image: bytes, audio: bytes) -> Callable[[int], Any]:
    import httpx

    client = httpx.Client(timeout=300, limits=httpx.Limits(max_connections=64))

    def call(i: int) -> None:
        kind = i % 3
        files = {}
        if kind >= 1:
            files["image"] = ("frame.png", image, "image/png")
        if kind == 2:
            files["audio"] = ("speech.wav", audio, "audio/wav")
        r = client.post(f"{url}/v1/analyze", data={"text": TEXTS[i % len(TEXTS)], "n": "10"}, files=files or None)
        if r.status_code != 200 or not r.json()["tracks"]:
            raise RuntimeError(f"{r.status_code}: {r.text[:200]}")

    return call


def overhead(call_http: Callable[[], Any], call_local: Callable[[], Any], n: int = 40) -> tuple[float, float]:
    """p50 of one text-only request over HTTP and in process (sequential, after a warm-up)."""
    return timeit(call_http, n, 5)[0], timeit(call_local, n, 5)[0]


JOINING = """## Ray: a private cluster, or joining one (token authentication)

Without `RAY_ADDRESS` or `--ray-address`, `moodtune serve --ray` starts a private one-machine cluster for itself: node
address 127.0.0.1 (Ray's single-machine mode, `RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0`; otherwise Ray 2.60 swaps
127.0.0.1 for the machine's network address), no dashboard, every Ray listener on loopback, and token authentication
on with a one-time token that lives only in that cluster's environment (nothing is written to `~/.ray`). SIGTERM or
Ctrl-C takes the deployment down and stops every process of that cluster, Ray's agents included (they outlive their
raylet for minutes otherwise).

To join a cluster started with `ray start`, give every node and moodtune the same token. Ray 2.59+ turns token
authentication on for a cluster that `ray.init` starts and keeps its token in `~/.ray/auth_token`; `ray start` turns it
on too when it finds that file, but a driver that joins does not send it, and was refused (`InvalidAuthToken`).
moodtune follows `ray start`'s rule when it joins: with `RAY_AUTH_MODE` unset and a token at hand (`RAY_AUTH_TOKEN`,
`RAY_AUTH_TOKEN_PATH` or `~/.ray/auth_token`) it sends the token (checked against clusters with authentication on and
off). On several machines:

```bash
ray get-auth-token --generate           # once: writes ~/.ray/auth_token; copy it to every node (owner-only)
export RAY_AUTH_MODE=token              # on every node, and where moodtune runs
ray start --head --disable-usage-stats  # the head; on the others: ray start --address HEAD_IP:6379 --disable-usage-stats
moodtune serve --ray --ray-address auto --replicas N   # on the head (add --host and MOODTUNE_API_KEY to serve beyond it)
```

`RAY_AUTH_TOKEN=<token>` in the environment works instead of the file (it wins over it); `RAY_AUTH_MODE=disabled` on
every node turns authentication off (a trusted network only). A refused token is one line from moodtune: `cannot join
the Ray cluster at ...` with a pointer here. `tests/test_ray_serve.py` starts its cluster this way, with a token of its
own in the environment, so a token left in `~/.ray` or another cluster beside it changes nothing."""


def closing(rows: list[tuple[str, dict[str, Any], float, float, float, str]]) -> str:
    """What the rows mean on this machine, from the rows themselves."""
    rps = {name.split(" (")[0]: r["rps"] for name, r, *_ in rows}
    parts = [f"This machine has {os.cpu_count()} cores, and they are the limit: the engine in one process already runs "
             "two model threads."]
    one, two = rps.get("moodtune serve --workers 1"), rps.get("moodtune serve --workers 2")
    if one and two:
        gain = 100 * (two / one - 1)
        why = ("one process leaves the cores idle while Python holds its lock between model calls" if gain >= 5 else
               "one process already kept both cores busy in this run")
        parts.append(f"A second `moodtune serve` worker changed throughput by {gain:+.0f}% here ({why}), for another "
                     "copy of the models in memory.")
    r1, r2 = rps.get("Ray Serve, 1 replica"), rps.get("Ray Serve, 2 replicas")
    if r1 and r2 and one:
        parts.append(f"Ray Serve pays for its proxy hop and its own processes on the same two cores: {r1:.1f} and "
                     f"{r2:.1f} req/s with 1 and 2 replicas against {one:.1f} for one `moodtune serve` worker.")
    auto = next((r for name, r, *_ in rows if "autoscaled" in name), None)
    if auto and r1:
        versus = (f"{auto['rps']:.1f} req/s against {r1:.1f} for a fixed single replica: on the same two cores the new "
                  "replica's model loading competes with the one already answering" if auto["rps"] <= r1 else
                  f"{auto['rps']:.1f} req/s against {r1:.1f} for a fixed single replica and {r2 or 0:.1f} for two: the "
                  "second replica helps once loaded, and its loading costs the first one cores meanwhile")
        parts.append("Autoscaled between 1 and 2 replicas, Serve started the second one during the load (Ray's default "
                     f"upscale delay is 30 s; the row says when) and every request was answered; {versus}. The memory "
                     "grows by a replica's worth.")
    parts.append("So on one small machine, replicas cannot add much throughput; what these rows measure is correctness "
                 "under concurrency (errors), the overhead of each layer, memory and start-up time. Replicas add "
                 "throughput when they bring more cores: more machines (`ray start --address ...` on each, then the same "
                 "`moodtune serve --ray --replicas N`) or a bigger one.")
    return " ".join(parts)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=16)
    parser.add_argument("--requests", type=int, default=25)
    parser.add_argument("--data", type=Path, default=None)
    parser.add_argument("--write", action="store_true")
    parser.add_argument("--skip-ray", action="store_true")
    args = parser.parse_args()
    from multimodal.datasets import default_data_dir

    data = args.data or default_data_dir()
    tmp = Path(tempfile.mkdtemp(prefix="moodtune-serving-"))
    image_path, audio_path = request_inputs(tmp, data)
    image, audio = image_path.read_bytes(), audio_path.read_bytes()
    env = {**os.environ, "MOODTUNE_HOME": str(tmp), "RAY_USAGE_STATS_ENABLED": "0"}
    rows: list[tuple[str, dict[str, Any], float, float, float, str]] = []

    # -- in process -----------------------------------------------------------------------------
    from fusion import MoodEngine

    engine = MoodEngine(workers=2, threads=1)
    t = time.perf_counter()
    engine.warmup()
    ready = time.perf_counter() - t

    def local(i: int) -> None:
        kind = i % 3
        mood = engine.analyze(image=image if kind >= 1 else None, audio=audio if kind == 2 else None,
                              text=TEXTS[i % len(TEXTS)])
        if not engine.recommend(mood, n=10):
            raise RuntimeError("no tracks")

    before = warmed(local, args.users, [os.getpid()])
    result = load(local, args.users, args.requests)
    rows.append(("in process (MoodEngine(workers=2, threads=1))", result, ready, before, tree_rss_mb([os.getpid()]),
                 "1 process"))
    print(rows[-1], flush=True)
    local_text = lambda: engine.recommend(engine.analyze(text="I got the job!!"), n=10)  # noqa: E731

    # -- moodtune serve -------------------------------------------------------------------------
    overhead_ms = None
    for workers in (1, 2):
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        proc = subprocess.Popen([sys.executable, "-m", "interfaces.cli", "serve", "--port", str(port),
                                 "--workers", str(workers)], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        try:
            ready = wait_ready(url, proc, workers)
            call = http_call(url, image, audio)
            before = warmed(call, args.users, [proc.pid])
            if workers == 1:
                import httpx

                client = httpx.Client(timeout=60)
                remote_text = lambda: client.post(f"{url}/v1/analyze", json={"text": "I got the job!!", "n": 10})  # noqa: E731
                overhead_ms = overhead(remote_text, local_text)
            result = load(call, args.users, args.requests)
            rows.append((f"moodtune serve --workers {workers}", result, ready, before, tree_rss_mb([proc.pid]),
                         f"{workers} worker process{'es' if workers > 1 else ''} + uvicorn's supervisor"))
            print(rows[-1], flush=True)
        finally:
            proc.terminate()
            proc.wait(timeout=60)
    engine.close()

    # -- Ray Serve -------------------------------------------------------------------------------
    ray_cli = shutil.which("ray", path=os.path.dirname(sys.executable)) or shutil.which("ray")
    replica_mb: list[float] = []
    if ray_cli and not args.skip_ray:
        from interfaces.ray_serve import private_cluster_environment

        ray_env = dict(env)
        private_cluster_environment(ray_env)  # loopback, and a token of its own (docs/serving.md, last section)
        for replicas in ("1", "2", "1-2"):
            gcs = free_port()
            subprocess.run([ray_cli, "start", "--head", "--node-ip-address=127.0.0.1", f"--port={gcs}",
                            "--num-cpus=2", "--include-dashboard=false", "--disable-usage-stats"], env=ray_env,
                           check=True, capture_output=True, timeout=180)
            port = free_port()
            url = f"http://127.0.0.1:{port}"
            proc = subprocess.Popen([sys.executable, "-m", "interfaces.cli", "serve", "--ray", "--replicas",
                                     replicas, "--port", str(port)], env={**ray_env, "RAY_ADDRESS": f"127.0.0.1:{gcs}"},
                                    stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
            try:
                ready = wait_ready(url, proc, int(replicas.split("-")[0]))  # an autoscaled service starts at its minimum
                call = http_call(url, image, audio)
                before = warmed(call, args.users, [proc.pid, *ray_pids()])
                replica_mb = [tree_rss_mb([p]) for p in replica_pids()] or replica_mb
                result, scaled = load_watching_replicas(call, args.users, args.requests)
                label = (f"Ray Serve, autoscaled {replicas} replicas" if "-" in replicas else
                         f"Ray Serve, {replicas} replica{'s' if replicas != '1' else ''}")
                rows.append((f"{label} (num_cpus=1 each)", result, ready, before, tree_rss_mb([proc.pid, *ray_pids()]),
                             f"driver + GCS + raylet + Serve controller + proxy + replicas; {scaled}"))
                print(rows[-1], flush=True)
            finally:
                proc.terminate()
                proc.wait(timeout=120)
                subprocess.run([ray_cli, "stop", "--force"], env=ray_env, capture_output=True, timeout=120)

    lines = ["# Serving: in process, `moodtune serve`, Ray Serve", "",
             f"`python benchmarks/serving.py --users {args.users} --requests {args.requests} --write` on "
             f"{time.strftime('%Y-%m-%d')}, {os.cpu_count()} CPU cores, no GPU, everything on 127.0.0.1. Each row: "
             f"{args.users} concurrent clients × {args.requests} requests, mixed in thirds ({'; '.join(KINDS)}), each "
             "analysing and recommending 10 tracks. Memory: resident set of every process that serves (for Ray, the "
             "whole cluster on this machine) after a concurrent warm-up round (each client one request of each kind), "
             "and after the load. Ready: start to a 200 from `/healthz` from every worker (all three models loaded "
             "and warmed; for Ray, after `ray start`).", "",
             "| configuration | req/s | p50 | p95 | errors | ready | memory warmed → after | processes |",
             "|---|---|---|---|---|---|---|---|"]
    for name, r, ready, before, after, procs in rows:
        lines.append(f"| {name} | {r['rps']:.2f} | {r['p50']:.0f} ms | {r['p95']:.0f} ms | {r['errors']} of "
                     f"{r['requests']} | {ready:.1f} s | {before:,.0f} → {after:,.0f} MB ({100 * (after / before - 1):+.1f}%) "
                     f"| {procs} |")
    if overhead_ms:
        lines += ["", f"One text-only analyze + recommend, sequential: p50 {overhead_ms[0]:.1f} ms through "
                  f"`moodtune serve` vs {overhead_ms[1]:.1f} ms in process: **{overhead_ms[0] - overhead_ms[1]:.1f} ms of "
                  "HTTP, JSON and pydantic overhead**."]
    if replica_mb:
        lines += ["", f"One replica costs about {np.mean(replica_mb):,.0f} MB resident (its three models, the catalog "
                  "from the object store, Python and Ray's worker) and the CPU it reserves (`num_cpus`, = its math "
                  "threads, 1 by default); the Ray processes around them (GCS, raylet, Serve controller and proxy) "
                  "cost the rest of the cluster row. To size a cluster: replicas ≈ cores ÷ threads per replica, "
                  "memory ≈ replicas × that figure + about 1 GB per node."]
    lines += ["", closing(rows), "", JOINING]
    text = "\n".join(lines) + "\n"
    print(text)
    if args.write:
        write_atomic(ROOT / "docs" / "serving.md", text)
    shutil.rmtree(tmp, ignore_errors=True)
    if any(r["errors"] for _, r, *_ in rows):
        sys.exit(1)


if __name__ == "__main__":
    main()
