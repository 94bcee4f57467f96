"""The hostile uses of the service, the command line and the journal (issue 35), measured for docs/robustness.md.

Each case returns the status and message a user gets; :func:`service_rows` times it and takes its memory peak
(``http``: this process, which runs the app with real models; ``serve``/``cli``/``ray``: the process it starts).
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

import psutil

from .hostile_inputs import flac_bomb
from .robustness import PeakRSS

Row = tuple[str, str, str, str, float, Any, str]


def _cell(text: str) -> str:
    return " ".join(str(text).replace("|", "/").split())[:160]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _answer(r: Any) -> tuple[str, str]:
    try:
        detail = r.json().get("detail", r.json())
    except ValueError:
        detail = r.text
    if isinstance(detail, list):  # pydantic errors: where and what
        detail = "; ".join(f"{'.'.join(map(str, e.get('loc', [])))}: {e.get('msg')}" for e in detail[:2])
    return f"HTTP {r.status_code}", _cell(detail if r.status_code != 200 else r.text[:160])


def http_cases(engine: Any) -> list[tuple[str, Callable[[], tuple[str, str]]]]:
    """Requests through the app (FastAPI's test client: the app's own limits, its own threads)."""
    from fastapi.testclient import TestClient

    from interfaces.http import MAX_BODY_BYTES, create_app

    client = TestClient(create_app(engine, warm=False)).__enter__()
    first = client.post("/v1/analyze", json={"text": "so stressed about tomorrow", "n": 2}).json()
    mood, track = first["mood"], first["tracks"][0]
    corrections = [{"emotion": e, "signals": {m: {"probabilities": [1 / 7] * 7, "weight": 0.5}
                                              for m in ("face", "voice", "text", "speech_text")}}
                   for e in ["sad", "happy", "angry", "fear"] * 50]
    bomb = flac_bomb()

    def post(path: str, **kw: Any) -> Callable[[], tuple[str, str]]:
        return lambda: _answer(client.post(path, **kw))

    def flac() -> tuple[str, str]:
        r = client.post("/v1/analyze", data={"text": "I am furious with you"},
                        files={"audio": ("bomb.flac", bomb, "audio/flac")})
        voice = r.json()["mood"]["readings"]["voice"]
        return f"HTTP {r.status_code}", _cell(f"voice {voice['status']}: {voice['message']}")

    def correct_200() -> tuple[str, str]:
        from fusion import calibration

        calibration._fit_once.cache_clear()  # a calibration the server has not seen: the fit runs
        r = client.post("/v1/correct", json={"mood": mood, "emotion": "sad",
                                             "calibration": {"corrections": corrections}})
        return f"HTTP {r.status_code}", _cell(f"{len(r.json()['calibration']['corrections'])} corrections kept; "
                                              + "; ".join(r.json()["learned"]))

    def made_up_signals() -> tuple[str, str]:
        calibration = {"corrections": [{"emotion": "happy", "signals": {
            f"s{i}": {"probabilities": [1 / 7] * 7, "weight": 1} for i in range(4000)}}]}
        return _answer(client.post("/v1/correct", json={"mood": mood, "emotion": "sad", "calibration": calibration}))

    deep = "[" * 100_000 + "]" * 100_000
    huge = '{"text": "hi", "calibration": {"corrections": [{"emotion": "happy", "signals": {"text": ' \
           '{"probabilities": [' + "9" * 400 + ', 0, 0, 0, 0, 0, 0], "weight": 1}}}]}}'
    return [
        (f"FLAC of silence, 8 ch × 96 kHz × 10 min ({len(bomb) / 1e3:,.0f} kB)", flac),
        ("Content-Length of 300 MB", post("/v1/analyze", content=b"{}", headers={
            "content-type": "application/json", "content-length": str(300 * 2**20)})),
        ('catalog "/etc/passwd" (analyze)', post("/v1/analyze", json={"text": "hi", "catalog": "/etc/passwd"})),
        ("catalog as a path (recommend)", post("/v1/recommend", json={"mood": mood, "catalog": "../../x.csv"})),
        ("calibration with 4,000 made-up signals", made_up_signals),
        ("/v1/correct with 200 corrections", correct_200),
        ("a 400-digit integer in a calibration", post("/v1/analyze", content=huge,
                                                     headers={"content-type": "application/json"})),
        ("multipart session nested 10^5 deep", post("/v1/analyze", data={"text": "hi", "session": deep})),
        ("JSON body nested 10^5 deep (recommend)", post("/v1/recommend", content='{"mood": ' + '{"a": ' * 100_000 + "1"
                                                        + "}" * 100_001, headers={"content-type": "application/json"})),
        ('feedback with "features": {}', post("/v1/feedback", json={"track": {**track, "features": {}},
                                                                    "kind": "like"})),
        ('recommend with valence "nan"', post("/v1/recommend", json={"mood": {**mood, "valence": "nan"}})),
        ('feedback with valence "nan"', post("/v1/feedback", json={"track": track, "kind": "like",
                                                                   "mood": {"valence": "nan", "arousal": 0}})),
        ("JSON sent as a form (curl -d)", post("/v1/analyze", content=json.dumps({"text": "I am furious"}),
                                               headers={"content-type": "application/x-www-form-urlencoded"})),
        ("JSON without a content type", lambda: (lambda r: (f"HTTP {r.status_code}", _cell(
            f"read as JSON: {r.json()['mood']['top_emotion']}")))(
            client.post("/v1/analyze", content=json.dumps({"text": "I am furious with you"})))),
        ("a body that never arrives (headers, then nothing)", lambda: _slow_body(client.app)),
        ("a client that goes away before its body", lambda: _gone(client.app)),
        ("base64 audio of the FLAC bomb in JSON", post("/v1/analyze", json={
            "text": "hi", "audio_b64": base64.b64encode(bomb).decode()})),
        (f"Content-Length claims {MAX_BODY_BYTES // 2**20} MB + 1 byte", post("/v1/analyze", content=b"{}", headers={
            "content-type": "application/json", "content-length": str(MAX_BODY_BYTES + 1)})),
    ]


def _asgi(app: Any, receive: Callable[[], Any]) -> list[dict[str, Any]]:
    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST", "scheme": "http",
             "path": "/v1/analyze", "raw_path": b"/v1/analyze", "query_string": b"", "root_path": "",
             "headers": [(b"content-type", b"application/json"), (b"content-length", b"1000")],
             "client": ("127.0.0.1", 5555), "server": ("127.0.0.1", 80)}
    sent: list[dict[str, Any]] = []

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    asyncio.run(app(scope, receive, send))
    return sent


def _slow_body(app: Any) -> tuple[str, str]:
    async def never() -> dict[str, Any]:
        await asyncio.sleep(3600)
        return {}

    sent = _asgi(app, never)
    return f"HTTP {sent[0]['status']}", _cell(sent[1]["body"].decode())


def _gone(app: Any) -> tuple[str, str]:
    import logging

    lines: list[str] = []
    handler = logging.Handler()
    handler.emit = lambda record: lines.append(record.getMessage())  # type: ignore[method-assign]
    logging.getLogger("moodtune.http").addHandler(handler)
    try:
        async def gone() -> dict[str, Any]:
            return {"type": "http.disconnect"}

        sent = _asgi(app, gone)
    finally:
        logging.getLogger("moodtune.http").removeHandler(handler)
    return ("no response" if not sent else f"HTTP {sent[0]['status']}"), _cell(f"{len(lines)} log line: {lines[0]}")


def _cli(*args: str, env: dict[str, str], cwd: Path | None = None, timeout: float = 300) -> tuple[str, str, Any]:
    """``moodtune ARGS`` as a process: (exit status, its stderr's lines or stdout's first, peak memory)."""
    proc = subprocess.Popen([sys.executable, "-m", "interfaces.cli", *args], env={**env, "COLUMNS": "200"}, cwd=cwd,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    with PeakRSS(proc.pid) as mem:
        out, errors = proc.communicate(timeout=timeout)
    said = errors.strip().splitlines()
    shown = " ".join(line for line in out.splitlines() if line.startswith("Mood:"))
    message = (f"{shown}; " if shown else "") + (f"stderr ({len(said)} line): " + " / ".join(said) if said
                                                   else out.strip().splitlines()[0] if out.strip() else "")
    return f"exit {proc.returncode}", _cell(message), f"{mem.peak / 2**20:,.0f} MB (process)"


def cli_cases(tmp: Path) -> list[tuple[str, Callable[[], tuple[str, str, Any]]]]:
    """Journal, catalog, profile and serve commands in a moodtune folder of their own."""
    from interfaces.journal import Journal

    home = tmp / "home"
    env = {**os.environ, "MOODTUNE_HOME": str(home)}
    journal = home / "journal.sqlite3"
    file_home = {**env, "MOODTUNE_HOME": str(tmp / "a-file")}
    (tmp / "a-file").write_text("not a folder")

    def fresh(kind: str) -> None:
        shutil.rmtree(home, ignore_errors=True)
        home.mkdir(parents=True)
        if kind == "link":
            (tmp / "target.sqlite3").unlink(missing_ok=True)
            Journal(tmp / "target.sqlite3").turn_on(keep_words=True).close()
            journal.symlink_to(tmp / "target.sqlite3")
        elif kind == "corrupt":
            journal.write_bytes(b"\x13not SQLite" * 500)
        elif kind == "on":
            Journal(journal).turn_on().close()

    def case(kind: str, *args: str, run_env: dict[str, str] | None = None) -> Callable[[], tuple[str, str, Any]]:
        def run() -> tuple[str, str, Any]:
            return _cli(*args, env=run_env or env, cwd=tmp)
        return lambda: (fresh(kind), run())[1]

    def held_then_deleted() -> tuple[str, str, Any]:
        fresh("on")
        held = Journal(journal)  # the demo keeps its journal open
        held.record_analysis(_Mood())
        status, message, mem = _cli("journal", "delete", "--yes", env=env, cwd=tmp)
        after = held.record_analysis(_Mood())
        return status, _cell(f"{message}; the holder then records: {after}; file exists: {journal.exists()}"), mem

    def locked() -> tuple[str, str, Any]:
        fresh("on")
        lock = sqlite3.connect(journal, isolation_level=None)
        lock.execute("BEGIN EXCLUSIVE")
        try:
            return _cli("analyze", "--text", "I am furious with you", "--n", "3", env=env, cwd=tmp)
        finally:
            lock.execute("ROLLBACK")
            lock.close()

    profile = tmp / "profile.json"
    existing = tmp / "existing.csv"
    existing.write_text("the user's own file")
    from recommend import load_catalog

    csv = tmp / "small.csv"  # a catalog to import: 50 tracks of the embedded one
    load_catalog(None).frame.head(50).to_csv(csv, index=False)
    taken = socket.socket()  # kept open by the case below until it has run
    taken.bind(("127.0.0.1", 0))
    taken.listen()

    def port_taken() -> tuple[str, str, Any]:
        with taken:
            return _cli("serve", "--port", str(taken.getsockname()[1]), env=env, cwd=tmp)
    return [
        ("journal delete, journal a symlink", case("link", "journal", "delete", "--yes")),
        ("journal delete while the demo holds it", held_then_deleted),
        ("journal export over an existing file", case("on", "journal", "export", str(existing))),
        ("journal export /dev/full --force", case("on", "journal", "export", "/dev/full", "--force")),
        ("journal export into a missing folder", case("on", "journal", "export", str(tmp / "no" / "x.csv"))),
        ("journal, corrupt journal", case("corrupt", "journal")),
        ("journal on, corrupt journal", case("corrupt", "journal", "on")),
        ("journal off, corrupt journal", case("corrupt", "journal", "off")),
        ("journal export, corrupt journal", case("corrupt", "journal", "export", str(tmp / "x.csv"))),
        ("journal on, MOODTUNE_HOME a file", case("", "journal", "on", run_env=file_home)),
        ("catalog import, MOODTUNE_HOME a file", case("", "catalog", "import", str(csv), run_env=file_home)),
        ("analyze, journal locked by another writer", locked),
        ("analyze, corrupt journal", case("corrupt", "analyze", "--text", "I am furious with you", "--n", "3")),
        ("analyze --profile with a 400-digit integer", lambda: (profile.write_text(
            '{"session": {"offsets": {"valence": ' + "9" * 400 + "}}}"),
            _cli("analyze", "--text", "hi", "--profile", str(profile), env=env))[1]),
        ("analyze --profile nested 10^5 deep", lambda: (profile.write_text("[" * 100_000 + "]" * 100_000),
                                                         _cli("analyze", "--text", "hi", "--profile", str(profile),
                                                              env=env))[1]),
        ("analyze --feel, profile folder cannot be made", case("", "analyze", "--text", "I am furious with you",
                                                               "--profile", str(tmp / "a-file" / "me.json"),
                                                               "--feel", "sad")),
        ("serve --port 70000", case("", "serve", "--port", "70000")),
        ("serve --port -1", case("", "serve", "--port", "-1")),
        ("serve on a port already taken", port_taken),
    ]


class _Mood:
    ok, top_emotion, valence, arousal, confidence, weights = True, "sad", -0.5, 0.1, 0.5, {"text": 1.0}


def serve_start(tmp: Path) -> list[Row]:
    """`moodtune serve`: the line it prints, /healthz while loading, time to ready."""
    import httpx

    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    start = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-m", "interfaces.cli", "serve", "--port", str(port)],
                            env={**os.environ, "MOODTUNE_HOME": str(tmp / "serve")}, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    rows: list[Row] = []
    try:
        with PeakRSS(proc.pid) as mem:
            line = proc.stdout.readline().strip() if proc.stdout else ""
            said = time.perf_counter() - start
            first = httpx.get(f"{url}/healthz", timeout=5)
            at_first = time.perf_counter() - start
            while httpx.get(f"{url}/healthz", timeout=5).status_code != 200:
                time.sleep(0.1)
            ready = time.perf_counter() - start
            docs = httpx.get(f"{url}/docs", timeout=10)
        memory = f"{mem.peak / 2**20:,.0f} MB (process)"
        for megabytes in (120, 300):  # streamed from here: the memory is the server's
            with PeakRSS(proc.pid) as mem:
                t = time.perf_counter()
                status, message = _chunked(port, megabytes)
                seconds = time.perf_counter() - t
            rows.append(("serve", f"chunked JSON body of {megabytes} MB", status, message, seconds,
                         f"{mem.growth_mb:,.0f} MB (server)", "-"))
        rows += [("serve", "the line serve prints", "printed", _cell(line), said, memory, "-"),
                 ("serve", "/healthz while the models load", f"HTTP {first.status_code}", _cell(first.text),
                  at_first, memory, "-"),
                 ("serve", "/healthz once warm (time from start)", "HTTP 200", "{\"ready\":true}", ready, memory, "-"),
                 ("serve", "/docs offline", f"HTTP {docs.status_code}", _cell(
                     "Swagger UI from fastapi-offline's files: " + ", ".join(
                         p for p in ("swagger-ui-bundle.js", "swagger-ui.css") if p in docs.text)
                     + ("; no CDN" if "cdn" not in docs.text else "; a CDN!")), 0.0, memory, "-")]
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    return rows


def _chunked(port: int, megabytes: int) -> tuple[str, str]:
    """A JSON body of ``megabytes`` sent chunked (no Content-Length), as it is produced."""
    import http.client

    def body():
        yield b'{"text": "'
        for _ in range(megabytes):
            yield b"a" * 2**20
        yield b'"}'

    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    try:
        conn.request("POST", "/v1/analyze", body=body(), headers={"Content-Type": "application/json"},
                     encode_chunked=True)
        r = conn.getresponse()
        return f"HTTP {r.status}", _cell(r.read().decode())
    except OSError as exc:  # the server answered and closed while the body was still being sent
        return "closed", _cell(f"{type(exc).__name__}: {exc}")
    finally:
        conn.close()


def ray_rows(tmp: Path) -> list[Row]:
    """`moodtune serve --ray` with its own cluster: where it listens; how long SIGTERM takes to leave nothing."""
    from benchmarks.serving import listeners, wait_ready

    port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAY_")}
    start = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-m", "interfaces.cli", "serve", "--ray", "--replicas", "1", "--port",
                             str(port)], env={**env, "MOODTUNE_HOME": str(tmp / "ray")}, stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL, text=True, start_new_session=True)
    line = proc.stdout.readline().strip() if proc.stdout else ""
    wait_ready(f"http://127.0.0.1:{port}", proc, timeout=300)
    ready = time.perf_counter() - start
    service = psutil.Process(proc.pid)
    family = [service, *service.children(recursive=True)]
    listening = listeners(family)
    memory = f"{sum(p.memory_info().rss for p in family if p.is_running()) / 2**20:,.0f} MB (all its processes)"
    t = time.perf_counter()
    os.kill(proc.pid, signal.SIGTERM)
    gone, left = psutil.wait_procs(family, timeout=60)
    stopped = time.perf_counter() - t
    for p in left:
        p.kill()
    return [("ray", "serve --ray: its line, time to ready", "printed", _cell(line), ready, memory, "-"),
            ("ray", f"listeners of its {len(family)} processes", "loopback only" if listening <= {
                "127.0.0.1", "::ffff:127.0.0.1", "::1"} else "NOT loopback", _cell(", ".join(sorted(listening))),
             0.0, memory, "-"),
            ("ray", "SIGTERM until no process of it is left", f"{len(left)} left",
             _cell(f"{len(gone)} processes stopped"), stopped, "-", "-")]


def service_rows(ray: bool = False) -> list[Row]:
    from fusion import MoodEngine

    out: list[Row] = []
    engine = MoodEngine(workers=2, threads=1)
    engine.warmup()
    for name, case in http_cases(engine):
        with PeakRSS() as mem:
            t = time.perf_counter()
            status, message = case()
            seconds = time.perf_counter() - t
        out.append(("http", name, status, message, seconds, mem.growth_mb, "-"))
    with tempfile.TemporaryDirectory() as tmp:
        for name, cli_case in cli_cases(Path(tmp)):
            t = time.perf_counter()
            status, message, memory = cli_case()
            out.append(("cli", name, status, message, time.perf_counter() - t, memory, "-"))
        out += serve_start(Path(tmp))
        if ray:
            out += ray_rows(Path(tmp))
    return out
