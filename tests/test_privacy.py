"""Privacy: after a demo session with uploads, no image or audio remains; secrets never appear in output."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from .conftest import free_port

AUDIO_IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".wav", ".flac", ".ogg", ".webm", ".mp3", ".webp"}

SESSION = r"""
import os, sys, numpy as np, cv2, soundfile as sf
from pathlib import Path
import app_gradio
from gradio_client import Client, handle_file
work = Path(sys.argv[1]); port = int(sys.argv[2])
img, wav = work / "inputs" / "me.png", work / "inputs" / "me.wav"
img.parent.mkdir(parents=True)
cv2.imwrite(str(img), np.full((120, 120, 3), 90, np.uint8))
sf.write(wav, (0.3 * np.sin(np.arange(32000) / 7)).astype(np.float32), 16000)
demo = app_gradio.build_demo(); demo.queue()
demo.launch(server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, quiet=True)
client = Client(f"http://127.0.0.1:{port}/", verbose=False)
for _ in range(2):
    out = client.predict(handle_file(str(img)), handle_file(str(wav)), "I feel fine", "match", 5, False, api_name="/analyze")
print("LABEL", out[0]["label"])
demo.close()
"""


@pytest.mark.slow  # a process, a model or many cases: seconds
def test_no_upload_remains_after_a_demo_session(tmp_path):
    temp = tmp_path / "gradio-temp"
    env = {**os.environ, "GRADIO_TEMP_DIR": str(temp), "TMPDIR": str(tmp_path / "tmp"),
           "SPOTIPY_CLIENT_SECRET": "shh-secret-42", "SPOTIPY_CLIENT_ID": "id-7"}
    (tmp_path / "tmp").mkdir()
    script = tmp_path / "session.py"
    script.write_text(SESSION)
    root = Path(__file__).resolve().parents[1]
    out = subprocess.run([sys.executable, str(script), str(tmp_path), str(free_port())], capture_output=True, text=True,
                         timeout=300, cwd=root, env=env)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "LABEL" in out.stdout
    assert temp.exists()  # Gradio did receive the uploads there...
    leftovers = [p for d in (temp, tmp_path / "tmp") if d.exists() for p in d.rglob("*")
                 if p.is_file() and p.suffix.lower() in AUDIO_IMAGE_SUFFIXES]
    assert leftovers == [], leftovers  # ...and none of them is left
    assert "shh-secret-42" not in out.stdout + out.stderr


@pytest.mark.slow  # a process, a model or many cases: seconds
def test_running_every_encoder_writes_nothing_in_the_home_folder(tmp_path):
    """No telemetry queue or device id (onnxruntime), no caches: a fresh HOME stays empty after face, voice and
    text readings."""
    home = tmp_path / "home"
    home.mkdir()
    code = ("import numpy as np; from fusion import MoodEngine; e = MoodEngine(); "
            "m = e.analyze(image=np.full((120, 120, 3), 90, np.uint8), "
            "audio=(16000, (0.3 * np.sin(np.arange(32000) / 7)).astype(np.float32)), text='I got the job!!'); "
            "e.recommend(m); print(m.top_emotion)")
    env = {k: v for k, v in os.environ.items() if k not in ("ORT_DISABLE_TELEMETRY", "MOODTUNE_HOME", "XDG_CACHE_HOME")}
    env["HOME"] = str(home)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, env=env,
                         cwd=Path(__file__).resolve().parents[1])
    assert out.returncode == 0, out.stderr[-2000:]
    assert [str(p.relative_to(home)) for p in home.rglob("*")] == []


@pytest.mark.slow  # a process, a model or many cases: seconds
def test_importing_the_demo_makes_no_folder_and_a_built_demo_a_private_one(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "GRADIO_TEMP_DIR"}
    env["TMPDIR"] = str(tmp_path)
    code = ("import os, app_gradio; d = os.environ['GRADIO_TEMP_DIR']; print(os.path.exists(d)); "
            "app_gradio.build_demo(); print(oct(os.stat(d).st_mode & 0o777))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, env=env,
                         cwd=Path(__file__).resolve().parents[1])
    assert out.stdout.split() == ["False", "0o700"], out.stderr[-2000:]
    assert not list(tmp_path.iterdir())  # and nothing is left once the process ends
