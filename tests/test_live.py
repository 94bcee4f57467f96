"""Live loops with a fake camera and a fake microphone stream."""

import queue

import numpy as np
import pytest

from multimodal import ModalityReading, Status
from multimodal.live import EmaSmoother, camera_loop, microphone_loop


class FakeCapture:
    def __init__(self, frames):
        self.frames, self.released = list(frames), False

    def read(self):
        return (True, self.frames.pop(0)) if self.frames else (False, None)

    def release(self):
        self.released = True


def test_smoother_averages_and_ignores_failed_frames():
    s = EmaSmoother(alpha=0.5)
    happy = ModalityReading.from_probs("face", np.eye(7)[3])
    sad = ModalityReading.from_probs("face", np.eye(7)[4])
    s.update(happy)
    probs = s.update(sad)
    assert probs["happy"] == pytest.approx(0.5) and probs["sad"] == pytest.approx(0.5)
    s.update(ModalityReading.failed("face", Status.NO_FACE, "no face"))
    assert s.probs[3] == pytest.approx(0.5)


def test_camera_loop_with_a_fake_device_prints_rolling_labels(face_encoder):
    frames = [np.zeros((240, 320, 3), np.uint8)] * 3
    cap = FakeCapture(frames)
    lines = []
    out = list(camera_loop(face_encoder, cap, show=False, emit=lines.append))
    assert len(out) == 3 and all(r.status == Status.NO_FACE for r, _ in out)
    assert cap.released and lines[-1] == "camera: no more frames"
    assert all("no_face" in line for line in lines[:3])


class FakeStream:
    def __init__(self):
        self.started = self.stopped = self.closed = False

    def start(self):
        self.started = True

    def stop(self):
        self.stopped = True

    def close(self):
        self.closed = True


def test_microphone_loop_with_a_fake_stream(voice_encoder):
    blocks = queue.Queue()
    for _ in range(12):  # 6 s of silence in 0.5-s blocks
        blocks.put(np.zeros(8000, np.float32))
    stream, lines = FakeStream(), []
    readings = list(microphone_loop(voice_encoder, stream, blocks, max_windows=2, emit=lines.append))
    assert len(readings) == 2 and all(r.status == Status.SILENCE for r in readings)
    assert stream.started and stream.stopped and stream.closed
    assert lines[0].startswith("voice: silence")


def test_microphone_without_portaudio_names_the_library(monkeypatch):
    import builtins

    from multimodal import live

    real_import = builtins.__import__

    def no_portaudio(name, *a, **k):
        if name == "sounddevice":
            raise OSError("PortAudio library not found")
        return real_import(name, *a, **k)

    monkeypatch.setattr(builtins, "__import__", no_portaudio)
    with pytest.raises(RuntimeError, match="libportaudio2"):
        live.open_microphone()
